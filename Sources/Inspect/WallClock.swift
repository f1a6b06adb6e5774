#if canImport(Glibc)
import Glibc
#endif

/// Wall-clock times as `watch` and `snapshot` print them (CLOCK_REALTIME, UTC), without Foundation.
public enum WallClock {
    /// Nanoseconds since the epoch.
    public static func now() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    /// `2026-12-06T05:00:00.123Z` (milliseconds), or only `05:00:00.123` with `timeOnly`.
    public static func iso8601(_ nanoseconds: Int64, timeOnly: Bool = false) -> String {
        var seconds = time_t(nanoseconds / 1_000_000_000)
        let millis = Int(nanoseconds / 1_000_000 % 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        let ms = millis < 10 ? "00\(millis)" : millis < 100 ? "0\(millis)" : "\(millis)"
        let clock = "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(ms)"
        if timeOnly { return clock }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(clock)Z"
    }
}

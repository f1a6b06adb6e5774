import Foundation

/// Polling for something a test waits on (a ready file, a process's exit, the kernel's deferred release).
public enum Wait {
    /// Checks `condition` every `interval` seconds until it holds or `timeout` seconds have passed, and
    /// says whether it held. The last check is made once the deadline has passed.
    public static func until(timeout: TimeInterval, interval: TimeInterval = 0.02,
                             _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if try condition() { return true }
            if Date() >= deadline { return false }
            usleep(UInt32(interval * 1_000_000))
        }
    }
}

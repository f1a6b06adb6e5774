/// Where `serve` listens: `HOST:PORT`, `[IPV6]:PORT` or `:PORT` (loopback). Loopback unless asked,
/// because the page and the API show every namespace, link, address and route of the host and run
/// traces as root.
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public static let loopback = ListenAddress(host: "127.0.0.1", port: 8080)

    /// Parses `--listen`; the reason when it does not parse, for the usage error.
    public static func parse(_ text: String) -> Result<ListenAddress, ListenAddressError> {
        var host: Substring, port: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[close...].hasPrefix("]:") else {
                return .failure(ListenAddressError(text: text, reason: "an IPv6 address is written [ADDRESS]:PORT"))
            }
            host = text[text.index(after: text.startIndex)..<close]
            port = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else {
                return .failure(ListenAddressError(text: text, reason: "no port (HOST:PORT, e.g. 127.0.0.1:8080)"))
            }
            host = text[..<colon]
            port = text[text.index(after: colon)...]
            if host.contains(":") {
                return .failure(ListenAddressError(text: text, reason: "an IPv6 address is written [ADDRESS]:PORT"))
            }
        }
        if host.isEmpty { host = "127.0.0.1" }
        guard let number = Int(port), (0...65535).contains(number) else {
            return .failure(ListenAddressError(text: text, reason: "port '\(port)' is not a number from 0 to 65535"))
        }
        return .success(ListenAddress(host: String(host), port: number))
    }

    /// 127.0.0.0/8, ::1 and localhost: reachable from this machine only.
    public var isLoopback: Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

public struct ListenAddressError: Error, Sendable, Equatable, CustomStringConvertible {
    public var text: String
    public var reason: String
    public var description: String { "--listen \(text): \(reason)" }
}

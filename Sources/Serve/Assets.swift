import ProcNS

/// The page's files, decoded once from what AssetPlugin embedded, each with its content type.
struct Assets: Sendable {
    struct File: Sendable {
        let contentType: String
        let bytes: [UInt8]
    }

    let files: [String: File]

    /// Decodes every embedded file; a corrupt one (only a broken build makes one) is left out and named.
    static func embedded() -> (assets: Assets, corrupt: [String]) {
        var files: [String: File] = [:]
        var corrupt: [String] = []
        for (name, literal) in EmbeddedAssets.files {
            guard let bytes = literal.withUTF8Buffer({ Base64.decode($0) }) else {
                corrupt.append(name)
                continue
            }
            files[name] = File(contentType: contentType(of: name), bytes: bytes)
        }
        return (Assets(files: files), corrupt)
    }

    static func contentType(of name: String) -> String {
        switch name.split(separator: ".").last {
        case "html": "text/html; charset=utf-8"
        case "js": "text/javascript; charset=utf-8"
        case "css": "text/css; charset=utf-8"
        case "svg": "image/svg+xml"
        case "png": "image/png"
        case "json": "application/json"
        default: "application/octet-stream"
        }
    }
}

import Foundation
import Testing
@testable import Lab

/// Files of the package, found from this source file (Tests/LabTests/…).
enum Files {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static func text(_ relativePath: String) throws -> String {
        try String(contentsOf: packageRoot.appendingPathComponent(relativePath), encoding: .utf8)
    }

    static var examples: [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: packageRoot.appendingPathComponent("examples").path)) ?? []
        return names.filter { $0.hasSuffix(".yaml") }.sorted().map { "examples/" + $0 }
    }

    static func lab(_ relativePath: String) throws -> LabFile {
        try LabFile.load(try text(relativePath), path: relativePath)
    }
}

/// The problems of a lab file given as text: the one that stopped reading it, or all that validation found.
func problems(_ yaml: String) -> [LabProblem] {
    do {
        _ = try LabFile.load(yaml)
        return []
    } catch {
        return error.problems
    }
}

/// Checks that `yaml` has a problem at `line`:`column` whose message contains `message`.
func expectProblem(
    _ yaml: String, _ message: String, at line: Int, _ column: Int, sourceLocation: SourceLocation = #_sourceLocation
) {
    let found = problems(yaml)
    let match = found.first { $0.message.contains(message) }
    #expect(match != nil, "no problem containing \"\(message)\" in: \(found)", sourceLocation: sourceLocation)
    if let match {
        #expect(
            (match.position.line, match.position.column) == (line, column),
            "\(match) is not at \(line):\(column)", sourceLocation: sourceLocation)
    }
}

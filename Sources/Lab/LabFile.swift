import Yams

/// A lab file read into a `LabSpec`: our schema (docs/lab-format.md) or pyns2's, told apart by shape.
///
/// ```swift
/// let lab = try LabFile.load(text, path: "examples/two-routers.yaml")   // read and validated
/// let plan = LabPlan.make(lab.spec)
/// ```
public struct LabFile: Sendable {
    public enum Format: String, Sendable {
        /// Our schema: a `lab:` key at the top.
        case nsinspect
        /// pyns2's: one top-level key (the lab's name) holding `host:` and `netns:`.
        case pyns2
    }

    public let format: Format
    public let spec: LabSpec

    /// Reads the file's structure without judging the lab; use `load` to do both.
    public init(parsing text: String, path: String? = nil) throws(LabFileError) {
        do throws(LabProblem) {
            let root = try LabFile.compose(text)
            let top = try root.mapping("a lab: a mapping with 'lab:' at the top (or a pyns2 file)")
            if let entry = Pyns2Reader.labEntry(top) {
                format = .pyns2
                spec = try Pyns2Reader.read(top, lab: entry)
            } else {
                format = .nsinspect
                spec = try LabSchemaReader.read(top)
            }
        } catch {
            throw LabFileError(path: path, problems: [error])
        }
    }

    /// Reads the file and checks the lab (`LabSpec.problems()`); throws every problem found.
    public static func load(_ text: String, path: String? = nil) throws(LabFileError) -> LabFile {
        let file = try LabFile(parsing: text, path: path)
        let problems = file.spec.problems()
        guard problems.isEmpty else { throw LabFileError(path: path, problems: problems) }
        return file
    }

    /// The document's root node; malformed YAML becomes a problem at the position libyaml reports.
    static func compose(_ text: String) throws(LabProblem) -> YAMLNode {
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw problem(error)
        } catch {
            throw LabProblem(.unknown, "cannot read the file as YAML: \(error)")
        }
        guard let node else { throw LabProblem(SourcePosition(line: 1, column: 1), "the file is empty; expected a lab") }
        return YAMLNode(node)
    }

    private static func problem(_ error: YamlError) -> LabProblem {
        func at(_ mark: Mark) -> SourcePosition { SourcePosition(line: mark.line, column: mark.column) }
        func context(_ c: YamlError.Context?) -> String {
            c.map { " (\($0.text) at \($0.mark.line):\($0.mark.column))" } ?? ""
        }
        switch error {
        case .scanner(let c, let problem, let mark, _), .parser(let c, let problem, let mark, _),
            .composer(let c, let problem, let mark, _):
            return LabProblem(at(mark), "malformed YAML: \(problem)\(context(c))")
        case .duplicatedKeysInMapping(let duplicates, let c):
            return LabProblem(at(c.mark), "duplicate key \(duplicates.map { "'\($0)'" }.joined(separator: ", ")) in one mapping")
        case .reader(let problem, let offset, _, let yaml):
            return LabProblem(position(ofOffset: offset ?? 0, in: yaml), "malformed YAML: \(problem)")
        default:
            return LabProblem(.unknown, "malformed YAML: \(error)")
        }
    }

    /// Line and column of a character offset (Yams counts `Character`s there).
    private static func position(ofOffset offset: Int, in text: String) -> SourcePosition {
        var line = 1, column = 1
        for (i, c) in text.enumerated() {
            if i == offset { break }
            if c == "\n" { line += 1; column = 1 } else { column += 1 }
        }
        return SourcePosition(line: line, column: column)
    }
}

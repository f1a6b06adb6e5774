import ProcNS

/// Where something is written in a lab file: 1-based line and column, columns counted in Unicode scalars
/// as libyaml counts them.
///
/// Equality and hashing ignore the position on purpose: two specs are equal when they describe the same lab,
/// wherever and in whichever format it was written. Compare `line` and `column` to compare positions.
public struct SourcePosition: Hashable, Sendable, CustomStringConvertible {
    public let line: Int
    public let column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    /// For values that were not read from a file.
    public static let unknown = SourcePosition(line: 0, column: 0)

    public static func == (_: SourcePosition, _: SourcePosition) -> Bool { true }
    public func hash(into hasher: inout Hasher) {}

    public var description: String { "\(line):\(column)" }

    /// The position `columns` further along the same line.
    func advanced(by columns: Int) -> SourcePosition {
        line == 0 ? self : SourcePosition(line: line, column: column + columns)
    }

    func precedes(_ other: SourcePosition) -> Bool {
        (line, column) < (other.line, other.column)
    }
}

/// One thing wrong with a lab file: where, and what was expected there.
public struct LabProblem: Error, Sendable, CustomStringConvertible {
    public let position: SourcePosition
    public let message: String

    public init(_ position: SourcePosition, _ message: String) {
        self.position = position
        self.message = message
    }

    /// `LINE:COLUMN: message`, as compilers print it.
    public var description: String { "\(position): \(message)" }
}

/// Everything wrong with a lab file, in file order: one problem when it could not be read, all of them
/// when it was read but does not describe a lab that can be built.
public struct LabFileError: Error, Sendable, CustomStringConvertible {
    /// The file, when the text came from one; printed before each position.
    public var path: String?
    public var problems: [LabProblem]

    public init(path: String? = nil, problems: [LabProblem]) {
        self.path = path
        self.problems = problems.sorted { $0.position.precedes($1.position) }
    }

    /// One line per problem: `FILE:LINE:COLUMN: message`.
    public var description: String {
        problems.map { (path.map { "\($0):" } ?? "") + $0.description }.joined(separator: "\n")
    }

    /// The problems as the CLI's one-line errors: `lab up: two-routers.yaml:3:5: unknown key 'adress' …`.
    public func operationErrors(_ operation: String) -> [OperationError] {
        problems.map { OperationError(operation, (path.map { "\($0):" } ?? "") + "\($0.position)", $0.message) }
    }
}

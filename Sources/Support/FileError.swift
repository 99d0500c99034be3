/// A file that cannot be read or used, naming it: "PATH REASON".
public struct FileError: Error, Sendable, CustomStringConvertible {
    /// The file, possibly with what it is for ("CA key PATH").
    public var path: String
    /// What is wrong, as a sentence's predicate ("cannot be read").
    public var reason: String

    /// Creates an error.
    public init(path: String, _ reason: String) {
        self.path = path
        self.reason = reason
    }

    /// "PATH REASON".
    public var description: String { "\(self.path) \(self.reason)" }
}

/// A refusal a command-line tool reports as one line and a non-zero exit; control
/// characters from stored or peer-supplied text in it are shown escaped.
public struct CLIError: Error, CustomStringConvertible {
    /// The line shown, escaped.
    public var description: String

    /// A refusal saying `description`.
    public init(_ description: String) { self.description = TerminalText.escape(description) }
}

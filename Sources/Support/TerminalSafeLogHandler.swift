import Logging

/// A log handler that escapes control characters (``TerminalText/escape(_:style:)``) in
/// every message and metadata value before another handler writes them.
///
/// Log values carry peer-supplied text (a hub's REJECT message, a record field in an error,
/// a line of a tailed file): printed raw, a newline in one fakes a log line and an escape
/// sequence drives the operator's terminal. Both CLIs wrap their stream handler in it.
public struct TerminalSafeLogHandler: LogHandler {
    private var base: any LogHandler

    /// Wraps `base`.
    public init(_ base: any LogHandler) {
        self.base = base
    }

    /// Standard error, one line per event, at `level` and above: what the CLIs bootstrap.
    public static func standardError(label: String, level: Logger.Level) -> TerminalSafeLogHandler {
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return TerminalSafeLogHandler(handler)
    }

    public func log(event: LogEvent) {
        var event = event
        event.message = Logger.Message(stringLiteral: TerminalText.escape(event.message.description))
        if let error = event.error {
            // The handler would print the error's description raw.
            event.error = nil
            event.metadata = (event.metadata ?? [:]).merging(["error": .string("\(error)")]) { old, _ in old }
        }
        event.metadata = event.metadata.map(Self.escape)
        self.base.log(event: event)
    }

    public var metadataProvider: Logger.MetadataProvider? {
        get { self.base.metadataProvider }
        set { self.base.metadataProvider = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.base[metadataKey: key] }
        set { self.base[metadataKey: key] = newValue }
    }

    public var metadata: Logger.Metadata {
        get { self.base.metadata }
        set { self.base.metadata = newValue }
    }

    public var logLevel: Logger.Level {
        get { self.base.logLevel }
        set { self.base.logLevel = newValue }
    }

    static func escape(_ metadata: Logger.Metadata) -> Logger.Metadata {
        metadata.mapValues(Self.escape)
    }

    static func escape(_ value: Logger.Metadata.Value) -> Logger.Metadata.Value {
        switch value {
        case .string(let text): .string(TerminalText.escape(text))
        case .stringConvertible(let convertible): .string(TerminalText.escape(convertible.description))
        case .array(let values): .array(values.map(Self.escape))
        case .dictionary(let values): .dictionary(Self.escape(values))
        }
    }
}

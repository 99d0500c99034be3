import Logging
import Testing

@testable import Support

/// One escaping function for everything printed to an operator's terminal.
@Suite struct TerminalTextTests {
    @Test func controlsAreShownAndOrdinaryTextIsKept() {
        #expect(TerminalText.escape("Zürich 🚉 \"ok\" \\ path") == "Zürich 🚉 \"ok\" \\ path")
        #expect(TerminalText.escape("a\u{1B}[2Jb") == #"a\u{1B}[2Jb"#)
        #expect(TerminalText.escape("x\u{0}y\u{7F}z\u{85}") == #"x\u{0}y\u{7F}z\u{85}"#)
        #expect(TerminalText.escape("tab\tline\nreturn\r") == #"tab\tline\nreturn\r"#)
        #expect(TerminalText.escape("abc\u{202E}fed\u{2066}\u{2028}") == #"abc\u{202E}fed\u{2066}\u{2028}"#)
    }

    @Test func jsonStyleKeepsTheLineValidJSON() {
        #expect(TerminalText.escape("{\"c\":\"a\\u001bb\u{7F}\"}", style: .json) == #"{"c":"a\u001bb\u007F"}"#)
        #expect(TerminalText.escape("\u{202E}", style: .json) == #"\u202E"#)
    }

    @Test func excerptsAreShortQuotedAndEscaped() {
        #expect(TerminalText.excerpt("short") == "\"short\"")
        let long = String(repeating: "x", count: 1_000) + "\u{1B}"
        #expect(TerminalText.excerpt(long) == "\"" + String(repeating: "x", count: 40) + "…\" (1001 bytes)")
        #expect(TerminalText.excerpt("a\u{1B}b") == #""a\u{1B}b""#)
    }

    /// Collects what the wrapped handler was asked to log.
    final class Collector: LogHandler, @unchecked Sendable {
        var events: [LogEvent] = []
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { self.metadata[key] }
            set { self.metadata[key] = newValue }
        }
        func log(event: LogEvent) { self.events.append(event) }
    }

    @Test func logLinesCarryNoRawControlCharacters() throws {
        let collector = Collector()
        let logger = Logger(label: "test") { _ in TerminalSafeLogHandler(collector) }
        struct Refusal: Error, CustomStringConvertible { var description: String { "refused:\n\u{1B}[31mfake line" } }
        logger.warning(
            "bad line\u{1B}[2J",
            error: Refusal(),
            metadata: ["reason": "score \"3\u{1B}[2J\"", "lines": ["a\nb"], "nested": ["k": "\r"]]
        )
        let event = try #require(collector.events.first)
        #expect(event.message.description == #"bad line\u{1B}[2J"#)
        #expect(event.metadata?["reason"] == .string(#"score "3\u{1B}[2J""#))
        #expect(event.metadata?["lines"] == .array([.string(#"a\nb"#)]))
        #expect(event.metadata?["nested"] == .dictionary(["k": .string(#"\r"#)]))
        #expect(event.metadata?["error"] == .string(#"refused:\n\u{1B}[31mfake line"#))
        #expect(event.error == nil)
    }
}

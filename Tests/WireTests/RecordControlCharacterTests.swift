import Foundation
import NIOCore
import TestSupport
import Testing
import Wire

/// Issue 12 item 8 (PROTOCOL.md §2.4): record text holds no C0 control or DEL, except TAB,
/// LF and CR in a comment; the sealer's validation and the decoder both refuse such a record
/// as `invalidRecord` naming the field.
@Suite struct RecordControlCharacterTests {
    /// A field and how to put `text` in it, with the field name the error must carry.
    static let fields: [(name: String, set: @Sendable (inout FeedbackRecord, String) -> Void)] = [
        ("site", { $0.site = $1 }),
        ("channel", { $0.channel = $1 }),
        ("subject", { $0.subject = $1 }),
        ("topic", { $0.topic = $1 }),
        ("survey", { $0.survey = $1 }),
        ("customer", { $0.customer = $1 }),
        ("comment", { $0.comment = $1 }),
        ("attributes", { $0.attributes = ["k\($1)": "v"] }),
        ("attributes.locale", { $0.attributes = ["locale": "de\($1)DE"] }),
    ]

    private func expectRefused(_ record: FeedbackRecord, field: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(sourceLocation: sourceLocation) {
            try record.validate()
        } throws: { ($0 as? WireError)?.code == .invalidRecord && ($0 as? WireError)?.field == field }
        // The decoder, from bytes a sender that skipped validation could write.
        var buffer = ByteBuffer()
        RecordCodec.encode(record, into: &buffer)
        #expect(sourceLocation: sourceLocation) {
            _ = try RecordCodec.decode(from: &buffer, origin: record.origin)
        } throws: { ($0 as? WireError)?.code == .invalidRecord && ($0 as? WireError)?.field == field }
    }

    @Test func everyTextFieldRefusesControlCharacters() {
        for (name, set) in Self.fields {
            for control in ["\u{0}", "\u{1B}[2J", "\u{7F}", "\u{8}"] {
                var record = Samples.popupRecord(1)
                set(&record, "a" + control + "b")
                self.expectRefused(record, field: name)
            }
        }
    }

    @Test func lineBreaksAndTabsAreAllowedInACommentOnly() throws {
        var record = Samples.popupRecord(1)
        record.comment = "Line one\r\nline two\tand a tab"
        try record.validate()
        var buffer = ByteBuffer()
        RecordCodec.encode(record, into: &buffer)
        #expect(try RecordCodec.decode(from: &buffer, origin: record.origin) == record)
        for (name, set) in Self.fields where name != "comment" {
            for control in ["\t", "\n", "\r"] {
                var record = Samples.popupRecord(1)
                set(&record, "a" + control + "b")
                self.expectRefused(record, field: name)
            }
        }
    }

    @Test func otherUnicodeIsStillAllowed() throws {
        var record = Samples.popupRecord(1)
        record.site = "Zürich Hbf 🚉"
        record.comment = "\u{85}C1 next line, \u{202E}bidi override, \u{2028} line separator"
        try record.validate()
        var buffer = ByteBuffer()
        RecordCodec.encode(record, into: &buffer)
        #expect(try RecordCodec.decode(from: &buffer, origin: record.origin) == record)
    }
}

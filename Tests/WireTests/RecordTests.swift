import Foundation
import NIOCore
import TestSupport
import Testing
import Wire

@Suite struct RecordTests {
    private func roundTrip(_ record: FeedbackRecord) throws -> FeedbackRecord {
        var buffer = ByteBuffer()
        RecordCodec.encode(record, into: &buffer)
        let decoded = try RecordCodec.decode(from: &buffer, origin: record.origin)
        #expect(buffer.readableBytes == 0)
        return decoded
    }

    private func expectInvalid(_ field: String, _ change: (inout FeedbackRecord) -> Void) {
        var record = Samples.popupRecord(1)
        change(&record)
        #expect {
            try record.validate()
        } throws: { error in
            let wire = error as? WireError
            return wire?.code == .invalidRecord && wire?.field == field
        }
    }

    @Test func typicalRecordsRoundTrip() throws {
        for index in 0..<30 {
            #expect(try self.roundTrip(Samples.kioskRecord(index)) == Samples.kioskRecord(index))
            #expect(try self.roundTrip(Samples.popupRecord(index)) == Samples.popupRecord(index))
        }
    }

    @Test func fieldsAtTheirMaximumRoundTrip() throws {
        var record = Samples.popupRecord(2)
        let limits = RecordLimits.protocolMaximum
        record.site = String(repeating: "s", count: limits.site)
        record.customer = String(repeating: "ü", count: limits.customer / 2)
        record.comment = String(repeating: "c", count: limits.comment)
        record.attributes = Dictionary(uniqueKeysWithValues: (0..<limits.attributeCount).map {
            ("k\($0)", String(repeating: "v", count: limits.attributeValue))
        })
        try record.validate()
        #expect(try self.roundTrip(record) == record)
    }

    @Test(arguments: FeedbackRecord.Scale.allCases)
    func scoresOutsideTheScaleAreRefused(scale: FeedbackRecord.Scale) throws {
        for score in UInt8(0)...UInt8(12) {
            var record = Samples.kioskRecord()
            record.scale = scale
            record.score = score
            if scale.range.contains(score) {
                try record.validate()
            } else {
                #expect(throws: WireError.self) { try record.validate() }
            }
        }
    }

    @Test func negativeScoresFollowTheDesign() {
        let negatives: [FeedbackRecord.Scale: [UInt8]] = [
            .nps: Array(0...6), .csat: [1, 2], .ces: [1, 2, 3], .smiley: [1, 2], .binary: [0],
        ]
        for scale in FeedbackRecord.Scale.allCases {
            for score in scale.range {
                #expect(scale.isNegative(score) == negatives[scale]!.contains(score), "\(scale) \(score)")
            }
        }
    }

    @Test func invalidFieldsAreNamed() {
        let limits = RecordLimits.protocolMaximum
        self.expectInvalid("score") { $0.score = 11 }
        self.expectInvalid("id") { $0.id = UUID(uuidString: "3f2504e0-4f89-11d3-9a0c-0305e82c3301")! }
        self.expectInvalid("occurredAt") { $0.occurredAt = -1 }
        self.expectInvalid("capturedAt") { $0.capturedAt = limits.maxTimestamp + 1 }
        self.expectInvalid("site") { $0.site = String(repeating: "x", count: limits.site + 1) }
        self.expectInvalid("channel") { $0.channel = String(repeating: "x", count: limits.channel + 1) }
        self.expectInvalid("subject") { $0.subject = String(repeating: "x", count: limits.subject + 1) }
        self.expectInvalid("topic") { $0.topic = String(repeating: "x", count: limits.topic + 1) }
        self.expectInvalid("survey") { $0.survey = String(repeating: "x", count: limits.survey + 1) }
        self.expectInvalid("customer") { $0.customer = String(repeating: "x", count: limits.customer + 1) }
        // Limits count UTF-8 bytes, not characters: 1001 two-byte characters are too long.
        self.expectInvalid("comment") { $0.comment = String(repeating: "é", count: limits.comment / 2 + 1) }
        self.expectInvalid("attributes") { $0.attributes = ["": "x"] }
        self.expectInvalid("attributes") {
            $0.attributes = Dictionary(uniqueKeysWithValues: (0...limits.attributeCount).map { ("k\($0)", "v") })
        }
        self.expectInvalid("attributes.plan") { $0.attributes["plan"] = String(repeating: "v", count: 256) }
    }

    @Test func encodingIsCanonicalWhateverTheDictionaryOrder() {
        var a = Samples.popupRecord(3)
        a.attributes = ["b": "2", "a": "1", "c": "3"]
        var b = a
        b.attributes = ["c": "3", "a": "1", "b": "2"]
        var bytesA = ByteBuffer()
        var bytesB = ByteBuffer()
        RecordCodec.encode(a, into: &bytesA)
        RecordCodec.encode(b, into: &bytesB)
        #expect(bytesA == bytesB)
    }

    @Test func everyTruncationIsRefusedWithoutTrapping() {
        var full = ByteBuffer()
        RecordCodec.encode(Samples.popupRecord(0), into: &full)
        for cut in 0..<full.readableBytes {
            var prefix = full.getSlice(at: 0, length: cut)!
            #expect(throws: WireError.self) {
                _ = try RecordCodec.decode(from: &prefix, origin: Samples.agentID)
            }
        }
    }

    @Test func malformedBytesAreRefusedWithTheRightCode() throws {
        var encoded = ByteBuffer()
        RecordCodec.encode(Samples.kioskRecord(0), into: &encoded)
        let good = Array(encoded.readableBytesView)
        let siteLengthOffset = RecordCodec.fixedLength

        func decode(_ bytes: [UInt8]) -> WireError? {
            var buffer = ByteBuffer(bytes: bytes)
            do {
                _ = try RecordCodec.decode(from: &buffer, origin: Samples.agentID)
                return nil
            } catch {
                return error as? WireError
            }
        }

        var badVersion = good
        badVersion[0] = 2
        #expect(decode(badVersion)?.code == .unsupportedVersion)

        var badSource = good
        badSource[17] = 9
        #expect(decode(badSource)?.field == "source")

        var badScale = good
        badScale[18] = 0
        #expect(decode(badScale)?.field == "scale")

        var outOfScale = good
        outOfScale[19] = 5  // smiley is 1–4
        #expect(decode(outOfScale)?.field == "score")

        var tooLong = good
        tooLong[siteLengthOffset] = 65  // above the 64-byte site limit: refused before reading
        #expect(decode(tooLong)?.code == .lengthOutOfRange)

        var badUTF8 = good
        badUTF8[siteLengthOffset + 1] = 0xC3
        badUTF8[siteLengthOffset + 2] = 0x28
        #expect(decode(badUTF8)?.code == .invalidUTF8)

        var tooManyAttributes = good
        tooManyAttributes[tooManyAttributes.count - 1] = 17
        #expect(decode(tooManyAttributes)?.code == .lengthOutOfRange)
    }

    @Test func unsortedAttributesAreRefused() {
        var buffer = ByteBuffer()
        var record = Samples.kioskRecord(0)
        record.attributes = [:]
        RecordCodec.encode(record, into: &buffer)
        buffer.moveWriterIndex(to: buffer.writerIndex - 1)
        buffer.writeInteger(UInt8(2))
        for key in ["b", "a"] {
            buffer.writeInteger(UInt8(1))
            buffer.writeString(key)
            buffer.writeInteger(UInt8(1))
            buffer.writeString("v")
        }
        #expect {
            _ = try RecordCodec.decode(from: &buffer, origin: Samples.agentID)
        } throws: { ($0 as? WireError)?.field == "attributes" }
    }

    @Test func anEmptyAttributeKeyOnTheWireIsRefused() {
        var buffer = ByteBuffer()
        var record = Samples.kioskRecord(0)
        record.attributes = [:]
        RecordCodec.encode(record, into: &buffer)
        buffer.moveWriterIndex(to: buffer.writerIndex - 1)
        buffer.writeBytes([1, 0, 1, UInt8(ascii: "v")])  // one attribute: "" = "v"
        #expect {
            _ = try RecordCodec.decode(from: &buffer, origin: Samples.agentID)
        } throws: { ($0 as? WireError)?.field == "attributes" }
    }

    @Test func jsonFormRoundTripsAndNamesBadEnums() throws {
        let record = Samples.popupRecord(3)
        let json = try JSONEncoder().encode(record)
        #expect(try JSONDecoder().decode(FeedbackRecord.self, from: json) == record)
        let text = String(decoding: json, as: UTF8.self)
        #expect(text.contains(#""source":"popup""#) && text.contains(#""scale":"nps""#))
        let bad = text.replacingOccurrences(of: #""scale":"nps""#, with: #""scale":"stars""#)
        #expect {
            _ = try JSONDecoder().decode(FeedbackRecord.self, from: Data(bad.utf8))
        } throws: { "\($0)".contains("stars") }
    }

    @Test func namesMapBothWays() {
        for scale in FeedbackRecord.Scale.allCases { #expect(FeedbackRecord.Scale(name: scale.name) == scale) }
        for source in FeedbackRecord.Source.allCases { #expect(FeedbackRecord.Source(name: source.name) == source) }
        #expect(FeedbackRecord.Scale(name: "stars") == nil)
    }
}

import Crypto
import Foundation
import NIOCore
import TestSupport
import Testing
import Wire

@Suite struct BatchTests {
    let limits = BatchLimits()

    private func seal(_ records: [FeedbackRecord], sequence: UInt64 = 7) throws -> SealedBatch {
        try BatchSealer(origin: Samples.agentID, signingKey: Samples.agentKey).seal(records, sequence: sequence)
    }

    private func open(_ bytes: ByteBuffer, key: Curve25519.Signing.PublicKey = Samples.agentKey.publicKey) throws -> [FeedbackRecord] {
        let batch = try SealedBatch(parsing: bytes)
        return try batch.open(verifyingWith: key, limits: self.limits, decompressor: ZstdDecompressor())
    }

    private func expectCode(_ code: WireError.Code, field: String? = nil, _ body: () throws -> Void) {
        #expect {
            try body()
        } throws: { error in
            guard let wire = error as? WireError else { return false }
            return wire.code == code && (field == nil || wire.field == field)
        }
    }

    @Test func sealedRecordsOpenUnchanged() throws {
        let records = (0..<500).map { $0 % 2 == 0 ? Samples.kioskRecord($0) : Samples.popupRecord($0) }
        let batch = try self.seal(records, sequence: 42)
        #expect(batch.header.origin == Samples.agentID)
        #expect(batch.header.sequence == 42)
        #expect(batch.header.recordCount == 500)
        #expect(batch.header.keyID == KeyID(Samples.agentKey.publicKey))
        #expect(batch.header.compressedLength < batch.header.uncompressedLength / 3)
        #expect(try self.open(batch.bytes) == records)
    }

    @Test func aBatchSignedByAnotherKeyIsRefused() throws {
        let batch = try self.seal([Samples.kioskRecord()])
        // The other key's id differs from the header's: refused as the wrong key.
        self.expectCode(.keyMismatch) { _ = try self.open(batch.bytes, key: Samples.otherKey.publicKey) }
        // A batch claiming the agent's key id but signed by another key: bad signature.
        let forged = Samples.forgeBatch(
            header: batch.header,
            payload: Array(batch.payload.readableBytesView),
            key: Samples.otherKey
        )
        self.expectCode(.badSignature) { _ = try self.open(forged) }
    }

    @Test func anyFlippedBitBreaksTheSignature() throws {
        let batch = try self.seal([Samples.kioskRecord(), Samples.popupRecord(1)])
        let bytes = Array(batch.bytes.readableBytesView)
        // Flip one bit in each signed region that the structural checks do not catch first.
        let positions = [6, 22, 30, 38, BatchHeader.length, bytes.count - 65, bytes.count - 1]
        for position in positions {
            var tampered = bytes
            tampered[position] ^= 0x01
            #expect(throws: WireError.self, "bit flipped at \(position)") {
                _ = try self.open(ByteBuffer(bytes: tampered))
            }
        }
    }

    @Test func truncatedAndOverlongBatchesAreRefused() throws {
        let batch = try self.seal([Samples.kioskRecord()])
        let bytes = Array(batch.bytes.readableBytesView)
        self.expectCode(.truncated) { _ = try self.open(ByteBuffer(bytes: bytes.dropLast(1))) }
        self.expectCode(.truncated) { _ = try self.open(ByteBuffer(bytes: bytes.prefix(20))) }
        self.expectCode(.trailingBytes) { _ = try self.open(ByteBuffer(bytes: bytes + [0])) }
        var badMagic = bytes
        badMagic[0] = 0x47
        self.expectCode(.badMagic) { _ = try self.open(ByteBuffer(bytes: badMagic)) }
        var badCodec = bytes
        badCodec[4] = 9
        self.expectCode(.unknownCodec) { _ = try self.open(ByteBuffer(bytes: badCodec)) }
    }

    @Test func aZstdBombIsRefusedBeforeItExpands() throws {
        // 64 MiB of zeros compress to a few KiB.
        var zeros = ByteBuffer(repeating: 0, count: 64 << 20)
        var bomb = ByteBuffer()
        try ZstdCompressor(level: 19).compress(zeros, into: &bomb)
        zeros = ByteBuffer()
        let payload = Array(bomb.readableBytesView)

        // Declaring the true size breaks the uncompressed limit and the ratio: refused from the header alone.
        var honest = BatchHeader(
            origin: Samples.agentID,
            sequence: 1,
            keyID: KeyID(Samples.agentKey.publicKey),
            recordCount: 1,
            uncompressedLength: UInt32(64 << 20),
            compressedLength: UInt32(payload.count)
        )
        self.expectCode(.limitExceeded, field: "maxUncompressedBytes") {
            _ = try self.open(Samples.forgeBatch(header: honest, payload: payload))
        }
        // Declaring a small size passes the header checks but stops at the declared length.
        honest.uncompressedLength = 4096
        self.expectCode(.decompressionFailed) {
            _ = try self.open(Samples.forgeBatch(header: honest, payload: payload))
        }
        // A payload that expands more than the ratio allows is refused before decompression.
        var ratio = honest
        ratio.uncompressedLength = UInt32(min(payload.count * 201, self.limits.maxUncompressedBytes))
        self.expectCode(.limitExceeded, field: "maxCompressionRatio") {
            _ = try self.open(Samples.forgeBatch(header: ratio, payload: payload))
        }
    }

    @Test func headerLiesAreCaught() throws {
        let batch = try self.seal([Samples.kioskRecord(0), Samples.kioskRecord(1)])
        let payload = Array(batch.payload.readableBytesView)

        // Problems inside a signed payload are all reported as an invalid record.
        var moreRecords = batch.header
        moreRecords.recordCount = 3
        self.expectCode(.invalidRecord, field: "record.version") {
            _ = try self.open(Samples.forgeBatch(header: moreRecords, payload: payload))
        }

        var fewerRecords = batch.header
        fewerRecords.recordCount = 1
        self.expectCode(.invalidRecord, field: "batch payload") {
            _ = try self.open(Samples.forgeBatch(header: fewerRecords, payload: payload))
        }

        var tooMany = batch.header
        tooMany.recordCount = UInt32(self.limits.maxRecords + 1)
        self.expectCode(.limitExceeded, field: "maxRecords") {
            _ = try self.open(Samples.forgeBatch(header: tooMany, payload: payload))
        }

        var zeroSequence = batch.header
        zeroSequence.sequence = 0
        self.expectCode(.lengthOutOfRange) { _ = try self.open(Samples.forgeBatch(header: zeroSequence, payload: payload)) }

        var garbage = batch.header
        garbage.compressedLength = 100
        self.expectCode(.decompressionFailed) {
            _ = try self.open(Samples.forgeBatch(header: garbage, payload: Array(repeating: 0xAB, count: 100)))
        }
    }

    @Test func onlyOneZstdFrameIsAccepted() throws {
        let batch = try self.seal([Samples.kioskRecord()])
        // A skippable frame (magic 0x184D2A50, 4 bytes of content) after the real one.
        let payload = Array(batch.payload.readableBytesView) + [0x50, 0x2A, 0x4D, 0x18, 4, 0, 0, 0, 1, 2, 3, 4]
        var header = batch.header
        header.compressedLength = UInt32(payload.count)
        self.expectCode(.decompressionFailed) { _ = try self.open(Samples.forgeBatch(header: header, payload: payload)) }
    }

    @Test func aBatchOverTheLimitsStillParsesSoItCanBeRefusedAlone() throws {
        var small = BatchLimits()
        small.maxRecords = 2
        let batch = try self.seal((0..<3).map { Samples.kioskRecord($0) })
        var wire = Samples.bytes(of: .batch(batch))
        guard case .batch(let parsed)? = try Frame.read(from: &wire, limits: FrameLimits(batch: small)) else {
            Issue.record("expected a BATCH frame")
            return
        }
        #expect(parsed.key == BatchKey(origin: Samples.agentID, sequence: 7))
        #expect {
            _ = try parsed.open(verifyingWith: Samples.agentKey.publicKey, limits: small, decompressor: ZstdDecompressor())
        } throws: { ($0 as? WireError)?.rejectCode == .batchTooLarge }
    }

    @Test func anInvalidRecordInsideASignedBatchIsRefused() throws {
        var record = Samples.kioskRecord()
        record.score = 9  // not on the smiley scale
        var plain = ByteBuffer()
        RecordCodec.encode(record, into: &plain)
        var compressed = ByteBuffer()
        try ZstdCompressor().compress(plain, into: &compressed)
        let header = BatchHeader(
            origin: Samples.agentID,
            sequence: 3,
            keyID: KeyID(Samples.agentKey.publicKey),
            recordCount: 1,
            uncompressedLength: UInt32(plain.readableBytes),
            compressedLength: UInt32(compressed.readableBytes)
        )
        self.expectCode(.invalidRecord, field: "score") {
            _ = try self.open(Samples.forgeBatch(header: header, payload: Array(compressed.readableBytesView)))
        }
    }

    @Test func theSealerRefusesWhatAHubWouldRefuse() throws {
        let sealer = BatchSealer(origin: Samples.agentID, signingKey: Samples.agentKey)
        var invalid = Samples.kioskRecord()
        invalid.score = 0
        self.expectCode(.invalidRecord, field: "score") { _ = try sealer.seal([invalid], sequence: 1) }
        let foreign = Samples.kioskRecord(origin: Samples.hubID)
        self.expectCode(.invalidRecord, field: "origin") { _ = try sealer.seal([foreign], sequence: 1) }
        self.expectCode(.limitExceeded, field: "maxRecords") { _ = try sealer.seal([], sequence: 1) }
        self.expectCode(.lengthOutOfRange, field: "batch.sequence") { _ = try sealer.seal([Samples.kioskRecord()], sequence: 0) }
    }

    @Test func aPayloadTooRepetitiveToCompressWithinTheRatioLimitIsStoredAndOpens() throws {
        let records = (0..<500).map { index in
            // Every field at its largest and the same in every record: only the id differs.
            var record = Samples.popupRecord(index)
            record.comment = String(repeating: "a", count: 2_000)
            record.customer = String(repeating: "c", count: 128)
            record.attributes = Dictionary(uniqueKeysWithValues: (0..<16).map { key in
                (String(format: "attribute-%02d", key).padding(toLength: 32, withPad: "k", startingAt: 0), String(repeating: "v", count: 255))
            })
            return record
        }
        let batch = try self.seal(records)
        let header = batch.header
        #expect(Int(header.uncompressedLength) <= Int(header.compressedLength) * self.limits.maxCompressionRatio)
        #expect(Int(header.compressedLength) > Int(header.uncompressedLength), "stored, not compressed")
        #expect(try self.open(batch.bytes) == records)
    }
}

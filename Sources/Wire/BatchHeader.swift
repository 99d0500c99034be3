import NIOCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// How a batch payload is compressed. The raw value is the byte on the wire.
public enum BatchCodec: UInt8, Sendable, Hashable {
    /// One zstd frame that records its content size.
    case zstd = 1
}

/// The signed, fixed-size header at the front of every sealed batch (49 bytes, big-endian).
///
/// `magic "FMB1"`, `u8 codec`, `16 origin`, `u64 sequence`, `u64 keyId`, `u32 recordCount`,
/// `u32 uncompressedLength`, `u32 compressedLength`. The magic also separates batch
/// signatures from every other thing an agent signs.
public struct BatchHeader: Sendable, Hashable {
    /// "FMB1": FeedbackMesh batch, format 1.
    public static let magic: UInt32 = 0x464D_4231
    /// Encoded size of the header.
    public static let length = 49

    /// The payload's compression.
    public var codec: BatchCodec
    /// Node id of the agent that captured and sealed the records.
    public var origin: UUID
    /// The origin's batch sequence number, from 1, never reused.
    public var sequence: UInt64
    /// Id of the origin's key that signed the batch.
    public var keyID: KeyID
    /// Number of records in the payload.
    public var recordCount: UInt32
    /// Bytes of the encoded records before compression.
    public var uncompressedLength: UInt32
    /// Bytes of the compressed payload that follows the header.
    public var compressedLength: UInt32

    /// Creates a header.
    public init(
        codec: BatchCodec = .zstd,
        origin: UUID,
        sequence: UInt64,
        keyID: KeyID,
        recordCount: UInt32,
        uncompressedLength: UInt32,
        compressedLength: UInt32
    ) {
        self.codec = codec
        self.origin = origin
        self.sequence = sequence
        self.keyID = keyID
        self.recordCount = recordCount
        self.uncompressedLength = uncompressedLength
        self.compressedLength = compressedLength
    }

    /// Appends the 49 header bytes to `buffer`.
    public func write(into buffer: inout ByteBuffer) {
        buffer.writeMultipleIntegers(Self.magic, self.codec.rawValue)
        buffer.writeUUID(self.origin)
        buffer.writeMultipleIntegers(
            self.sequence,
            self.keyID.rawValue,
            self.recordCount,
            self.uncompressedLength,
            self.compressedLength
        )
    }

    /// Reads a header and checks its structure: magic, codec, sequence and counts from 1.
    /// Limits are checked separately (``check(_:)``), so a batch over a receiver's limits is
    /// still identified by origin and sequence and can be refused on its own.
    public static func read(from buffer: inout ByteBuffer) throws -> BatchHeader {
        let magic = try buffer.readWire(UInt32.self, "batch.magic")
        guard magic == Self.magic else {
            throw WireError(.badMagic, field: "batch.magic", "batch does not start with FMB1")
        }
        let codecByte = try buffer.readWire(UInt8.self, "batch.codec")
        guard let codec = BatchCodec(rawValue: codecByte) else {
            throw WireError(.unknownCodec, field: "batch.codec", "batch codec \(codecByte) is not known")
        }
        let origin = try buffer.readUUID("batch.origin")
        guard
            let (sequence, keyID, recordCount, uncompressed, compressed) = buffer.readMultipleIntegers(
                as: (UInt64, UInt64, UInt32, UInt32, UInt32).self
            )
        else {
            throw WireError.truncated("batch.header")
        }
        let header = BatchHeader(
            codec: codec,
            origin: origin,
            sequence: sequence,
            keyID: KeyID(rawValue: keyID),
            recordCount: recordCount,
            uncompressedLength: uncompressed,
            compressedLength: compressed
        )
        guard sequence >= 1 else {
            throw WireError(.lengthOutOfRange, field: "batch.sequence", "batch sequence numbers start at 1")
        }
        guard recordCount >= 1, compressed >= 1 else {
            throw WireError(.lengthOutOfRange, field: "batch.recordCount", "a batch holds at least one record and one payload byte")
        }
        return header
    }

    /// Checks the declared counts and sizes against `limits`: run before verifying or
    /// decompressing anything.
    public func check(_ limits: BatchLimits) throws {
        let records = Int(self.recordCount)
        let uncompressed = Int(self.uncompressedLength)
        let compressed = Int(self.compressedLength)
        guard records >= 1, records <= limits.maxRecords else {
            throw WireError(.limitExceeded, field: "maxRecords", "batch holds \(records) records; allowed 1...\(limits.maxRecords)")
        }
        guard uncompressed <= limits.maxUncompressedBytes else {
            throw WireError(
                .limitExceeded,
                field: "maxUncompressedBytes",
                "batch declares \(uncompressed) uncompressed bytes; the limit is \(limits.maxUncompressedBytes)"
            )
        }
        guard uncompressed >= records * RecordCodec.minimumLength else {
            throw WireError(
                .lengthOutOfRange,
                field: "batch.uncompressedLength",
                "\(uncompressed) bytes cannot hold \(records) records"
            )
        }
        guard compressed >= 1, compressed <= limits.maxCompressedBytes else {
            throw WireError(
                .limitExceeded,
                field: "maxCompressedBytes",
                "batch payload is \(compressed) bytes; allowed 1...\(limits.maxCompressedBytes)"
            )
        }
        guard uncompressed <= compressed * limits.maxCompressionRatio else {
            throw WireError(
                .limitExceeded,
                field: "maxCompressionRatio",
                "batch would expand \(compressed) bytes to \(uncompressed), more than \(limits.maxCompressionRatio) times"
            )
        }
    }
}

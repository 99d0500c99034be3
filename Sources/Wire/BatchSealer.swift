import Crypto
import NIOCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Seals records into signed batches for one origin: encode, compress with zstd, sign.
///
/// Holds a compression context, so it is not thread-safe: one sealer per task or thread.
public final class BatchSealer {
    /// The origin whose records this sealer signs.
    public let origin: UUID
    /// The id of the signing key.
    public let keyID: KeyID
    private let signingKey: Curve25519.Signing.PrivateKey
    private let compressor: ZstdCompressor
    private let limits: BatchLimits
    private var scratch = ByteBuffer()

    /// Creates a sealer.
    ///
    /// - Parameters:
    ///   - origin: the node id of the agent; every sealed record must carry it.
    ///   - signingKey: the agent's Ed25519 key.
    ///   - level: zstd level, 1...19.
    ///   - limits: the sealer refuses to produce a batch a hub with these limits would refuse.
    public init(
        origin: UUID,
        signingKey: Curve25519.Signing.PrivateKey,
        level: Int32 = 3,
        limits: BatchLimits = BatchLimits()
    ) {
        self.origin = origin
        self.signingKey = signingKey
        self.keyID = KeyID(signingKey.publicKey)
        self.compressor = ZstdCompressor(level: level)
        self.limits = limits
    }

    /// Seals `records` as batch number `sequence` of this origin.
    ///
    /// - Throws: ``WireError`` if a record is invalid or belongs to another origin, or the
    ///   batch would break the limits.
    public func seal(_ records: [FeedbackRecord], sequence: UInt64) throws -> SealedBatch {
        guard sequence >= 1 else {
            throw WireError(.lengthOutOfRange, field: "batch.sequence", "batch sequence numbers start at 1")
        }
        self.scratch.clear()
        for record in records {
            guard record.origin == self.origin else {
                throw WireError.invalid("origin", "record \(record.id) belongs to origin \(record.origin), not \(self.origin)")
            }
            try record.validate(limits: self.limits.record)
            RecordCodec.encode(record, into: &self.scratch)
        }
        let uncompressed = self.scratch.readableBytes
        var bytes = ByteBuffer()
        bytes.reserveCapacity(BatchHeader.length + uncompressed / 2 + SealedBatch.signatureLength + 64)
        bytes.moveWriterIndex(forwardBy: BatchHeader.length)
        var compressed = try self.compressor.compress(self.scratch, into: &bytes)
        if uncompressed > compressed * self.limits.maxCompressionRatio {
            // So repetitive a receiver would take it for a zstd bomb: store it instead.
            bytes.moveWriterIndex(to: BatchHeader.length)
            compressed = ZstdCompressor.store(self.scratch, into: &bytes)
        }
        let header = BatchHeader(
            origin: self.origin,
            sequence: sequence,
            keyID: self.keyID,
            recordCount: UInt32(truncatingIfNeeded: records.count),
            uncompressedLength: UInt32(truncatingIfNeeded: uncompressed),
            compressedLength: UInt32(truncatingIfNeeded: compressed)
        )
        guard records.count <= Int(UInt32.max), uncompressed <= Int(UInt32.max) else {
            throw WireError(.limitExceeded, field: "batch", "batch is too large to encode")
        }
        try header.check(self.limits)
        var headerBytes = ByteBuffer()
        header.write(into: &headerBytes)
        bytes.setBuffer(headerBytes, at: 0)
        let signature = try bytes.withUnsafeReadableBytes { try self.signingKey.signature(for: $0) }
        bytes.writeBytes(signature)
        return SealedBatch(header: header, bytes: bytes)
    }
}

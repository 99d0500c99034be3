import Crypto
import NIOCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A signed batch exactly as it travels: header, compressed payload, Ed25519 signature.
///
/// Parsing checks the structure and the limits only. The records can be reached only
/// through ``open(verifyingWith:limits:decompressor:)``, which verifies the signature
/// before it decompresses anything. A relay forwards ``bytes`` unchanged, so the origin's
/// signature still holds at the hub.
public struct SealedBatch: Sendable, Hashable {
    /// Bytes of an Ed25519 signature.
    public static let signatureLength = 64
    /// The smallest well-formed sealed batch: header, one payload byte, signature.
    public static let minimumLength = BatchHeader.length + 1 + signatureLength

    /// The parsed header.
    public let header: BatchHeader
    /// The whole batch: header, payload and signature.
    public let bytes: ByteBuffer

    /// Parses a sealed batch whose bytes are exactly `bytes`. Checks structure only; the
    /// receiver's limits are checked by ``open(verifyingWith:limits:decompressor:)``.
    ///
    /// - Throws: ``WireError`` for a bad magic or codec, a zero sequence or count, or a
    ///   length that does not match `compressedLength`.
    public init(parsing bytes: ByteBuffer) throws {
        var reader = bytes
        let header = try BatchHeader.read(from: &reader)
        let expected = Int(header.compressedLength) + Self.signatureLength
        guard reader.readableBytes >= expected else {
            throw WireError.truncated("batch")
        }
        guard reader.readableBytes == expected else {
            throw WireError(.trailingBytes, field: "batch", "\(reader.readableBytes - expected) bytes after the batch signature")
        }
        self.header = header
        self.bytes = bytes
    }

    init(header: BatchHeader, bytes: ByteBuffer) {
        self.header = header
        self.bytes = bytes
    }

    /// The compressed payload.
    public var payload: ByteBuffer {
        self.bytes.getSlice(at: self.bytes.readerIndex + BatchHeader.length, length: Int(self.header.compressedLength))
            ?? ByteBuffer()
    }

    /// Checks the header against `limits`, then the signature under `publicKey`, whose key
    /// id must be the header's. Only a verified batch can be decompressed: a hub checks for
    /// duplicates between this step and ``VerifiedBatch/records(limits:decompressor:)``.
    public func verified(by publicKey: Curve25519.Signing.PublicKey, limits: BatchLimits) throws -> VerifiedBatch {
        try self.header.check(limits)
        guard KeyID(publicKey) == self.header.keyID else {
            throw WireError(.keyMismatch, field: "batch.keyId", "batch key id \(self.header.keyID) is not the id of the given key")
        }
        let signedLength = BatchHeader.length + Int(self.header.compressedLength)
        let valid = self.bytes.withUnsafeReadableBytes { raw in
            publicKey.isValidSignature(
                UnsafeRawBufferPointer(rebasing: raw[signedLength..<(signedLength + Self.signatureLength)]),
                for: UnsafeRawBufferPointer(rebasing: raw[0..<signedLength])
            )
        }
        guard valid else {
            throw WireError(.badSignature, field: "batch.signature", "batch signature does not verify under key \(self.header.keyID)")
        }
        return VerifiedBatch(batch: self)
    }

    /// Verifies (``verified(by:limits:)``), then decompresses (capped at the declared
    /// length), decodes and validates every record.
    ///
    /// - Returns: the records in batch order, each with the batch's origin.
    public func open(
        verifyingWith publicKey: Curve25519.Signing.PublicKey,
        limits: BatchLimits,
        decompressor: ZstdDecompressor
    ) throws -> [FeedbackRecord] {
        try self.verified(by: publicKey, limits: limits).records(limits: limits, decompressor: decompressor)
    }
}

/// A sealed batch whose limits and signature have been checked: the only way to its records.
public struct VerifiedBatch: Sendable, Hashable {
    /// The batch as received.
    public let batch: SealedBatch

    fileprivate init(batch: SealedBatch) {
        self.batch = batch
    }

    /// Decompresses the payload (never past the declared length), decodes and validates
    /// every record.
    ///
    /// - Throws: ``WireError`` `decompressionFailed`, or `invalidRecord` for anything wrong
    ///   inside the payload, naming the record and field.
    public func records(limits: BatchLimits, decompressor: ZstdDecompressor) throws -> [FeedbackRecord] {
        let header = self.batch.header
        return try decompressor.withDecompressed(self.batch.payload, expectedLength: Int(header.uncompressedLength)) { plain in
            do {
                return try RecordCodec.decodeAll(plain, count: Int(header.recordCount), origin: header.origin, limits: limits.record)
            } catch let error as WireError {
                // Whatever is wrong inside a signed payload, the batch holds a bad record.
                throw WireError(.invalidRecord, field: error.field, error.detail)
            }
        }
    }
}

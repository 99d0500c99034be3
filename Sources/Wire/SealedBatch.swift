import Crypto
import Foundation
import NIOCore

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

    /// Parses a sealed batch whose bytes are exactly `bytes`.
    ///
    /// - Throws: ``WireError`` for a bad magic or codec, a header outside `limits`, or a
    ///   length that does not match `compressedLength`.
    public init(parsing bytes: ByteBuffer, limits: BatchLimits) throws {
        var reader = bytes
        let header = try BatchHeader.read(from: &reader, limits: limits)
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

    /// Whether the signature verifies under `publicKey`, whose key id must be the header's.
    public func verifySignature(_ publicKey: Curve25519.Signing.PublicKey) throws {
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
    }

    /// Verifies the signature, then decompresses (capped at the declared length), decodes
    /// and validates every record.
    ///
    /// - Returns: the records in batch order, each with the batch's origin.
    public func open(
        verifyingWith publicKey: Curve25519.Signing.PublicKey,
        limits: BatchLimits,
        decompressor: ZstdDecompressor
    ) throws -> [FeedbackRecord] {
        try self.header.check(limits)
        try self.verifySignature(publicKey)
        let expected = Int(self.header.uncompressedLength)
        var plain = ByteBuffer()
        plain.reserveCapacity(expected)
        try decompressor.decompress(self.payload, expectedLength: expected, into: &plain)
        let count = Int(self.header.recordCount)
        var records = [FeedbackRecord]()
        records.reserveCapacity(count)
        for _ in 0..<count {
            records.append(try RecordCodec.decode(from: &plain, origin: self.header.origin, limits: limits.record))
        }
        try plain.expectFullyRead("batch payload")
        return records
    }
}

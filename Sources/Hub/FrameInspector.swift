import Crypto
import Foundation
import NIOCore
import Wire

/// Decodes a captured byte stream of frames, as a hub would receive it, and opens every
/// BATCH (and FORWARD's batch) with the given key: a tool for people writing their own client of the protocol.
public struct FrameInspector {
    /// One decoded frame, with what opening it found for a BATCH.
    public struct Entry {
        /// The frame.
        public var frame: Frame
        /// For a BATCH with a key given: its records, or the error that refused it.
        public var opened: Result<[FeedbackRecord], WireError>?
    }

    private let limits: FrameLimits
    private let publicKey: Curve25519.Signing.PublicKey?

    /// Creates an inspector. Without a key, batches are parsed but not opened.
    public init(publicKey: Curve25519.Signing.PublicKey?, limits: FrameLimits = FrameLimits()) {
        self.publicKey = publicKey
        self.limits = limits
    }

    /// Decodes every frame in `bytes`.
    ///
    /// - Throws: ``WireError`` for the first malformed frame, or `truncated` when the bytes
    ///   end inside a frame.
    public func inspect(_ bytes: [UInt8]) throws -> [Entry] {
        var buffer = ByteBuffer(bytes: bytes)
        var entries: [Entry] = []
        let decompressor = ZstdDecompressor()
        while buffer.readableBytes > 0 {
            guard let frame = try Frame.read(from: &buffer, limits: self.limits) else {
                throw WireError(.truncated, field: "frame", "the input ends inside a frame (\(buffer.readableBytes) bytes left)")
            }
            var entry = Entry(frame: frame, opened: nil)
            if let batch = frame.sealedBatch, let key = self.publicKey {
                do {
                    entry.opened = .success(try batch.open(verifyingWith: key, limits: self.limits.batch, decompressor: decompressor))
                } catch let error as WireError {
                    entry.opened = .failure(error)
                }
            }
            entries.append(entry)
        }
        return entries
    }
}

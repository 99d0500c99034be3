#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Names one batch: its origin and sequence. Unique across the whole mesh.
public struct BatchKey: Sendable, Hashable, CustomStringConvertible {
    /// The origin agent's node id.
    public var origin: UUID
    /// The origin's sequence number.
    public var sequence: UInt64

    /// Creates a key.
    public init(origin: UUID, sequence: UInt64) {
        self.origin = origin
        self.sequence = sequence
    }

    /// `origin#sequence`.
    public var description: String { "\(self.origin)#\(self.sequence)" }
}

extension SealedBatch {
    /// This batch's key.
    public var key: BatchKey { BatchKey(origin: self.header.origin, sequence: self.header.sequence) }
}

extension Ack {
    /// The acknowledged batch's key.
    public var key: BatchKey { BatchKey(origin: self.origin, sequence: self.sequence) }
}

extension Reject {
    /// The refused batch's key (meaningless for a connection-level REJECT).
    public var key: BatchKey { BatchKey(origin: self.origin, sequence: self.sequence) }
}

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Wire

/// A sealed batch waiting in the spool for the upstream's acknowledgement: one this node
/// sealed, or one it holds for another node (a relay's), with the hops it came through.
public struct SpoolBatch: Sendable, Hashable {
    /// The sealed batch, byte for byte as sealed by its origin.
    public var batch: SealedBatch
    /// The relays the batch passed through before this node, first hop first; empty for a
    /// batch this node sealed (or one its origin sent straight here).
    public var path: [UUID]

    /// Creates one.
    public init(batch: SealedBatch, path: [UUID] = []) {
        self.batch = batch
        self.path = path
    }

    /// The batch's origin and sequence.
    public var key: BatchKey { self.batch.key }
}

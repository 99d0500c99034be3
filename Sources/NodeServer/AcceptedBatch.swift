import Foundation
import Wire

/// A batch the server has checked and hands to its ``IngestBackend``: within the limits,
/// signed by its origin's registered key, decompressed, decoded, every record valid and for
/// a site the origin may name.
public struct AcceptedBatch: Sendable {
    /// The batch as it arrived, so a relay can keep and forward it byte for byte.
    public var sealed: SealedBatch
    /// Its records, decoded.
    public var records: [FeedbackRecord]
    /// When the server received it, ms since the epoch.
    public var receivedAt: Int64
    /// The HELLO of the connected node that sent it (the origin itself, or a relay).
    public var node: Hello
    /// The relays the batch came through, nearest the origin first; empty when its origin
    /// sent it directly.
    public var path: [UUID]

    /// The batch's origin and sequence.
    public var key: BatchKey { self.sealed.key }

    /// Creates an accepted batch.
    public init(sealed: SealedBatch, records: [FeedbackRecord], receivedAt: Int64, node: Hello, path: [UUID]) {
        self.sealed = sealed
        self.records = records
        self.receivedAt = receivedAt
        self.node = node
        self.path = path
    }
}

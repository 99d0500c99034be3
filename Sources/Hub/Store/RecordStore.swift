import Foundation
import Wire

/// A batch ready to commit: verified, decompressed and validated.
public struct IncomingBatch: Sendable {
    /// Origin and sequence.
    public var key: BatchKey
    /// The records, each already valid.
    public var records: [FeedbackRecord]
    /// When the hub received it, ms since the epoch.
    public var receivedAt: Int64

    /// Creates a batch to commit.
    public init(key: BatchKey, records: [FeedbackRecord], receivedAt: Int64) {
        self.key = key
        self.records = records
        self.receivedAt = receivedAt
    }
}

/// What committing one batch did.
public enum CommitOutcome: Sendable, Hashable {
    /// First time this (origin, sequence) was seen: stored; `newRecords` of its records were
    /// new (the others were already stored under their ids, from another batch).
    case stored(newRecords: Int)
    /// This (origin, sequence) was already committed; nothing was written.
    case duplicate
}

/// Where the hub keeps ratings: records and the batches that brought them. Every method
/// blocks; call them off the event loops and off Swift concurrency's threads (the group
/// committer's thread, a server's blocking pool, or ``StoreAccess``).
///
/// Implementations make ``commit(_:)`` durable before it returns (the hub acknowledges
/// batches on its return) and evaluate the alert rules, through ``AlertEvaluator``, inside
/// the commit's transaction for every record stored for the first time: an alert is raised
/// exactly once, and only for a rating stored for the first time, whichever store holds it.
public protocol RecordStore: Sendable {
    /// Commits `batches` in one transaction and returns one outcome per batch, in order.
    /// Duplicates (same origin and sequence) store nothing; a record already stored under
    /// its id is skipped. The alerts the new records raise are written in the same
    /// transaction.
    func commit(_ batches: [IncomingBatch]) throws -> [CommitOutcome]

    /// Commits in one transaction the batches `next` hands over, one at a time until it
    /// returns nil, and returns one outcome per batch in the order handed; otherwise as
    /// ``commit(_:)``. The group committer decides as the transaction goes whether it ends
    /// early (a fresh alert's batch is waiting). A store that must have every batch before
    /// it starts (PostgreSQL's array statements) takes them all first: the default.
    func commit(pulling next: () -> IncomingBatch?) throws -> [CommitOutcome]

    /// Whether ``commit(pulling:)`` takes each batch as the transaction goes (SQLite), so
    /// a batch handed late joins a transaction under way; false: it takes them all first.
    var takesBatchesAsItGoes: Bool { get }

    /// Whether the batch (origin, sequence) is committed.
    func isCommitted(_ key: BatchKey) throws -> Bool

    /// The highest committed sequence of `origin`, 0 when none.
    func committedSequence(origin: UUID) throws -> UInt64

    /// Number of stored records.
    func recordCount() throws -> Int

    /// Number of committed batches.
    func batchCount() throws -> Int

    /// How many commits may run at once (from different threads). Commits for one origin
    /// are never made at once.
    var commitWriters: Int { get }
}

extension RecordStore {
    /// One: a store with a single writer (SQLite).
    public var commitWriters: Int { 1 }

    /// False: ``commit(pulling:)`` takes every batch first.
    public var takesBatchesAsItGoes: Bool { false }

    /// Takes every batch `next` hands over, then commits them together.
    public func commit(pulling next: () -> IncomingBatch?) throws -> [CommitOutcome] {
        var batches: [IncomingBatch] = []
        while let batch = next() { batches.append(batch) }
        return batches.isEmpty ? [] : try self.commit(batches)
    }
}

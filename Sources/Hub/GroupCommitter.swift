import CoreMetrics
import Dispatch
import Foundation
import Logging
import NIOCore
import Support
import Synchronization
import Wire

/// Commits batches from every connection together: one store transaction (and so one
/// fsync) for whatever arrived while the previous transaction was being written.
///
/// Each of `writers` writer threads (one for SQLite; ``RecordStore/commitWriters``) takes
/// the batches waiting for it (up to ``Limits``), commits them in one transaction, then
/// completes each batch's promise on its own event loop. A batch goes to the writer its
/// origin maps to, so one origin's batches commit in the order they came. A failed
/// transaction fails every batch in it; nothing in it is acknowledged.
public final class GroupCommitter: Sendable {
    /// How much one transaction may hold.
    public struct Limits: Sendable {
        /// Most batches per transaction.
        public var maxBatches = 512
        /// Most records per transaction (a batch is never split).
        public var maxRecords = 200_000

        /// The defaults.
        public init() {}
    }

    private let writers: [Writer]

    /// Starts `writers` writer threads (at least one).
    public init(store: any RecordStore, writers: Int = 1, limits: Limits = Limits(), metrics: HubMetrics, logger: Logger) {
        self.writers = (0..<max(1, writers)).map { index in
            Writer(name: "hub-commit-\(index + 1)", store: store, limits: limits, metrics: metrics, logger: logger)
        }
    }

    /// Queues `batch`; the future completes once its transaction is durable.
    public func submit(_ batch: IncomingBatch, on eventLoop: any EventLoop) -> EventLoopFuture<CommitOutcome> {
        self.writers[Self.writer(of: batch.key.origin, among: self.writers.count)].submit(batch, on: eventLoop)
    }

    /// Batches queued or being committed.
    public var pendingCount: Int {
        self.writers.reduce(0) { $0 + $1.pendingCount }
    }

    /// Commits everything already queued, refuses new batches, and stops the threads.
    public func stop() {
        for writer in self.writers { writer.beginStopping() }
        for writer in self.writers { writer.stop() }
    }

    /// The writer that commits `origin`'s batches: the same one for the committer's life.
    static func writer(of origin: UUID, among count: Int) -> Int {
        guard count > 1 else { return 0 }
        // FNV-1a over the id's bytes: stable, unlike `hashValue`, and spread for UUIDv4 and v7 alike.
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        withUnsafeBytes(of: origin.uuid) { bytes in
            for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        }
        return Int(hash % UInt64(count))
    }
}

/// One writer thread and its queue.
private final class Writer: Sendable {
    struct Pending: Sendable {
        var batch: IncomingBatch
        var promise: EventLoopPromise<CommitOutcome>
    }

    struct State: Sendable {
        var queue: [Pending] = []
        var stopping = false
        var inTransaction = 0
    }

    private let store: any RecordStore
    private let limits: GroupCommitter.Limits
    private let metrics: HubMetrics
    private let logger: Logger
    private let state = Mutex(State())
    private let wakeUp = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)

    init(name: String, store: any RecordStore, limits: GroupCommitter.Limits, metrics: HubMetrics, logger: Logger) {
        self.store = store
        self.limits = limits
        self.metrics = metrics
        self.logger = logger
        Thread.start(named: name) { [self] in self.run() }
    }

    func submit(_ batch: IncomingBatch, on eventLoop: any EventLoop) -> EventLoopFuture<CommitOutcome> {
        let promise = eventLoop.makePromise(of: CommitOutcome.self)
        let accepted = self.state.withLock { state -> Bool in
            guard !state.stopping else { return false }
            state.queue.append(Pending(batch: batch, promise: promise))
            return true
        }
        if accepted {
            self.wakeUp.signal()
        } else {
            promise.fail(StoreError("the hub is shutting down"))
        }
        return promise.futureResult
    }

    var pendingCount: Int {
        self.state.withLock { $0.queue.count + $0.inTransaction }
    }

    /// Refuses new batches and wakes the thread to commit what is queued and end.
    func beginStopping() {
        let alreadyStopping = self.state.withLock { state in
            defer { state.stopping = true }
            return state.stopping
        }
        if !alreadyStopping { self.wakeUp.signal() }
    }

    /// Waits until everything queued is committed and the thread has ended.
    func stop() {
        self.beginStopping()
        self.finished.wait()
        self.finished.signal()  // a second stop() returns at once
    }

    private func run() {
        while true {
            self.wakeUp.wait()
            let (work, stop) = self.state.withLock { state -> ([Pending], Bool) in
                var taken = 0
                var records = 0
                for pending in state.queue {
                    if taken == self.limits.maxBatches { break }
                    if taken > 0, records + pending.batch.records.count > self.limits.maxRecords { break }
                    taken += 1
                    records += pending.batch.records.count
                }
                let work = Array(state.queue.prefix(taken))
                state.queue.removeFirst(taken)
                state.inTransaction = work.count
                // Stop only once the queue is empty: what was accepted is committed.
                return (work, state.stopping && state.queue.isEmpty)
            }
            if !work.isEmpty {
                self.commit(work)
                self.state.withLock { $0.inTransaction = 0 }
            }
            if stop { break }
            if work.isEmpty, self.state.withLock({ $0.stopping && $0.queue.isEmpty }) { break }
        }
        self.finished.signal()
    }

    private func commit(_ work: [Pending]) {
        let started = ContinuousClock.now
        do {
            let outcomes = try self.store.commit(work.map(\.batch))
            self.metrics.commitDuration.recordInterval(since: started)
            self.metrics.commitBatches.record(work.count)
            for (pending, outcome) in zip(work, outcomes) {
                switch outcome {
                case .stored(let newRecords):
                    self.metrics.batchesStored.increment()
                    self.metrics.recordsStored.increment(by: Int64(newRecords))
                case .duplicate:
                    self.metrics.batchesDuplicate.increment()
                }
                pending.promise.succeed(outcome)
            }
        } catch {
            self.logger.error("commit failed", metadata: ["batches": "\(work.count)", "error": "\(error)"])
            for pending in work { pending.promise.fail(error) }
        }
    }
}

extension CoreMetrics.Timer {
    func recordInterval(since start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        let (seconds, attoseconds) = elapsed.components
        self.recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}

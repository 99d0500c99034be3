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
/// origin maps to. A failed transaction fails every batch in it; nothing in it is
/// acknowledged.
///
/// **Fresh alerts first.** A small batch holding a negative rating captured lately
/// (``Limits/isPriority(_:)``: what an agent seals at once for a detractor) waits in a
/// queue of its own. Priority batches waiting when a transaction starts make one of their
/// own. On a store that takes batches as the transaction goes (SQLite), a priority batch
/// that arrives during a bulk transaction joins it, and that transaction then ends as soon
/// as it holds ``Limits/share`` bulk records and has run ``Limits/minimumRun``. So a fresh
/// alert waits for the end of the transaction under way, cut short, not for a backlog of up
/// to ``Limits/maxRecords`` per transaction. The mark is read from the records and the
/// record count, which the origin signed: no relay can give it to a batch.
///
/// A store that takes a transaction's batches before it begins (PostgreSQL) cannot take
/// one in late: there, while priority batches keep coming (``Limits/quickWithin``), bulk
/// transactions are held to ``Limits/quickRecords``, so the one a priority batch waits for
/// is short.
///
/// The bound that keeps a flood of priority batches from starving the rest: while bulk
/// batches wait, at least every other transaction is a bulk one, which takes at least
/// ``Limits/share`` bulk records (or as many as ``Limits/maxRecords`` allows), and no
/// transaction takes more than ``Limits/share`` records of priority batches (at least one
/// batch), nor, beside bulk ones, more than half of ``Limits/maxBatches``.
public final class GroupCommitter: Sendable {
    /// How much one transaction may hold, and what goes first.
    public struct Limits: Sendable {
        /// Most batches per transaction.
        public var maxBatches = 512
        /// Most records per transaction (a batch is never split).
        public var maxRecords = 200_000
        /// Records of priority batches a transaction takes while bulk batches wait, and the
        /// bulk records after which a transaction that holds a priority batch ends.
        public var share = 2_000
        /// A transaction that holds a priority batch ends early only once it has run this
        /// long: a steady stream of priority batches cannot cut every transaction to a few
        /// records, whose fixed costs (rollup rows, the fsync) would eat the throughput.
        /// Only where the store takes batches as the transaction goes
        /// (``RecordStore/takesBatchesAsItGoes``); elsewhere the share alone decides.
        public var minimumRun: Duration = .milliseconds(50)
        /// Where the store takes a transaction's batches before it begins (PostgreSQL), a
        /// priority batch cannot join the transaction under way and waits for it: while
        /// priority batches have come within ``quickWithin``, a bulk transaction there holds
        /// at most this many records, so that wait stays short; otherwise up to
        /// ``maxRecords``.
        public var quickRecords = 5_000
        /// How long after a priority batch bulk transactions stay at ``quickRecords``.
        public var quickWithin: Duration = .seconds(60)
        /// The most records a priority batch holds: an agent seals a detractor's rating at
        /// once, with the few waiting before it; a full batch is bulk whatever it holds.
        public var priorityMaxRecords = 100
        /// A negative rating captured at most this long before its batch arrived (or after:
        /// a fast clock) is fresh.
        public var freshWithin: Duration = .seconds(300)

        /// The defaults.
        public init() {}

        /// Whether `batch` goes ahead of the bulk: a small batch holding a fresh negative
        /// rating.
        public func isPriority(_ batch: IncomingBatch) -> Bool {
            guard batch.records.count <= self.priorityMaxRecords else { return false }
            let oldest = batch.receivedAt - Int64(self.freshWithin.components.seconds) * 1000
            return batch.records.contains { $0.isNegative && $0.capturedAt >= oldest }
        }
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

/// One writer thread and its two queues: fresh alerts' batches, and the bulk.
private final class Writer: Sendable {
    struct Pending: Sendable {
        var batch: IncomingBatch
        var promise: EventLoopPromise<CommitOutcome>
    }

    /// What the transaction being assembled holds so far.
    struct Assembly {
        var taken: [Pending] = []
        var records = 0
        var priorityRecords = 0
        var priorityBatches = 0
        var bulkRecords = 0
        var holdsPriority = false
        /// A transaction of priority batches alone.
        var priorityOnly = false
        var started = ContinuousClock.now
    }

    struct State: Sendable {
        var priority: [Pending] = []
        var bulk: [Pending] = []
        var stopping = false
        var inTransaction = 0
        /// The last transaction held priority batches alone: the next is a bulk one.
        var lastWasPriorityOnly = false
        /// When the last priority batch came.
        var lastPriority: ContinuousClock.Instant?

        var isEmpty: Bool { self.priority.isEmpty && self.bulk.isEmpty }

        /// The next batch for the transaction being assembled, or nil to end it.
        ///
        /// Priority batches waiting make a transaction of their own, unless the last one was
        /// such and bulk batches wait. A bulk transaction takes a priority batch that comes
        /// (or waits) as soon as it asks for the next batch, and then ends once it holds
        /// ``GroupCommitter/Limits/share`` bulk records and has run its minimum. While bulk
        /// batches wait, a transaction takes at most the share of priority records (at
        /// least one batch).
        mutating func next(_ assembly: inout Assembly, _ limits: GroupCommitter.Limits, asItGoes: Bool) -> Pending? {
            if assembly.taken.isEmpty {
                assembly.priorityOnly = !self.priority.isEmpty && (self.bulk.isEmpty || !self.lastWasPriorityOnly)
            }
            guard assembly.taken.count < limits.maxBatches else { return nil }
            func fits(_ pending: Pending) -> Bool {
                assembly.taken.isEmpty || assembly.records + pending.batch.records.count <= limits.maxRecords
            }
            // While bulk waits, priority batches get at most the share of records (one batch
            // at least) and, beside bulk ones, half the batch slots.
            if let first = self.priority.first, fits(first),
                self.bulk.isEmpty
                    || ((assembly.priorityOnly || assembly.priorityBatches < limits.maxBatches / 2)
                        && (assembly.priorityRecords == 0 || assembly.priorityRecords + first.batch.records.count <= limits.share))
            {
                self.priority.removeFirst()
                assembly.priorityRecords += first.batch.records.count
                assembly.priorityBatches += 1
                assembly.holdsPriority = true
                return self.take(first, &assembly)
            }
            if assembly.priorityOnly { return nil }
            if assembly.holdsPriority, assembly.bulkRecords >= limits.share,
                !asItGoes || ContinuousClock.now - assembly.started >= limits.minimumRun
            {
                return nil
            }
            if !asItGoes, assembly.bulkRecords >= limits.quickRecords,
                let last = self.lastPriority, ContinuousClock.now - last < limits.quickWithin
            {
                return nil
            }
            guard let first = self.bulk.first, fits(first) else { return nil }
            self.bulk.removeFirst()
            assembly.bulkRecords += first.batch.records.count
            return self.take(first, &assembly)
        }

        private mutating func take(_ pending: Pending, _ assembly: inout Assembly) -> Pending {
            if assembly.taken.isEmpty { assembly.started = ContinuousClock.now }
            assembly.taken.append(pending)
            assembly.records += pending.batch.records.count
            self.inTransaction = assembly.taken.count
            return pending
        }
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
        let priority = self.limits.isPriority(batch)
        let accepted = self.state.withLock { state -> Bool in
            guard !state.stopping else { return false }
            if priority {
                state.priority.append(Pending(batch: batch, promise: promise))
                state.lastPriority = .now
            } else {
                state.bulk.append(Pending(batch: batch, promise: promise))
            }
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
        self.state.withLock { $0.priority.count + $0.bulk.count + $0.inTransaction }
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
            // One wake-up may stand for several submissions: commit until both queues are empty.
            while !self.state.withLock({ $0.isEmpty }) {
                self.commitNext()
            }
            // Stop only once the queues are empty: what was accepted is committed.
            if self.state.withLock({ $0.stopping && $0.isEmpty }) { break }
        }
        self.finished.signal()
    }

    /// Assembles one transaction as the store asks for its batches, and commits it.
    private func commitNext() {
        var assembly = Assembly()
        let started = ContinuousClock.now
        let outcomes: [CommitOutcome]
        let asItGoes = self.store.takesBatchesAsItGoes
        do {
            outcomes = try self.store.commit(pulling: {
                self.state.withLock { $0.next(&assembly, self.limits, asItGoes: asItGoes) }?.batch
            })
        } catch {
            // A transaction that failed before it took a batch (it could not begin) fails
            // the batches it would have taken, as one that failed later does: they are
            // answered (retryable), and the writer does not retry the same queue forever.
            self.state.withLock { state in
                if assembly.taken.isEmpty { while state.next(&assembly, self.limits, asItGoes: false) != nil {} }
                state.inTransaction = 0
            }
            self.logger.error("commit failed", metadata: ["batches": "\(assembly.taken.count)", "error": "\(error)"])
            for pending in assembly.taken { pending.promise.fail(error) }
            return
        }
        guard !assembly.taken.isEmpty else { return }
        self.state.withLock { $0.lastWasPriorityOnly = assembly.priorityOnly }
        self.metrics.commitDuration.recordInterval(since: started)
        self.metrics.commitBatches.record(assembly.taken.count)
        if assembly.holdsPriority { self.metrics.priorityCommits.increment() }
        for (pending, outcome) in zip(assembly.taken, outcomes) {
            switch outcome {
            case .stored(let newRecords):
                self.metrics.batchesStored.increment()
                self.metrics.recordsStored.increment(by: Int64(newRecords))
            case .duplicate:
                self.metrics.batchesDuplicate.increment()
            }
            pending.promise.succeed(outcome)
        }
        // A store owes one outcome per batch; any it did not give is not known to be durable.
        for pending in assembly.taken.dropFirst(outcomes.count) {
            pending.promise.fail(StoreError("the store gave no outcome for batch \(pending.batch.key)"))
        }
        self.state.withLock { $0.inTransaction = 0 }
    }
}

extension CoreMetrics.Timer {
    func recordInterval(since start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        let (seconds, attoseconds) = elapsed.components
        self.recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}

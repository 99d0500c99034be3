import CoreMetrics
import Dispatch
import Foundation
import Logging
import NIOCore
import Synchronization
import Wire

/// Commits batches from every connection together: one store transaction (and so one
/// fsync) for whatever arrived while the previous transaction was being written.
///
/// A single writer thread takes all waiting batches (up to ``Limits``), commits them in
/// one transaction, then completes each batch's promise on its own event loop. A failed
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
    private let limits: Limits
    private let metrics: HubMetrics
    private let logger: Logger
    private let state = Mutex(State())
    private let wakeUp = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)

    /// Starts the writer thread.
    public init(store: any RecordStore, limits: Limits = Limits(), metrics: HubMetrics, logger: Logger) {
        self.store = store
        self.limits = limits
        self.metrics = metrics
        self.logger = logger
        let thread = Thread { [self] in self.run() }
        thread.name = "feedback-hub-commit"
        thread.start()
    }

    /// Queues `batch`; the future completes once its transaction is durable.
    public func submit(_ batch: IncomingBatch, on eventLoop: any EventLoop) -> EventLoopFuture<CommitOutcome> {
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

    /// Batches queued or being committed.
    public var pendingCount: Int {
        self.state.withLock { $0.queue.count + $0.inTransaction }
    }

    /// Commits everything already queued, refuses new batches, and stops the thread.
    public func stop() {
        let alreadyStopping = self.state.withLock { state in
            defer { state.stopping = true }
            return state.stopping
        }
        guard !alreadyStopping else { return }
        self.wakeUp.signal()
        self.finished.wait()
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

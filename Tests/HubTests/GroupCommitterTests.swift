import CoreMetrics
import Dispatch
import Foundation
@testable import Hub
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import TestSupport
import Testing
import Wire

/// The group committer's order: a fresh alert's batch goes ahead of a queued backlog and
/// cuts the transaction in progress short, and a flood of them cannot starve the backlog.
/// On the real SQLite store; the wrapper only holds the first commit until the test has
/// queued what it needs, and notes what each commit took.
@Suite struct GroupCommitterTests {
    /// A bulk batch of `count` calm ratings.
    static func bulk(_ sequence: UInt64, origin: UUID, count: Int = 10) -> IncomingBatch {
        let base = Int(sequence) * 1_000
        return StoreContractTests.batch(sequence, (0..<count).map { StoreContractTests.calm(base + $0) }, origin: origin)
    }

    /// A batch holding one detractor, captured just before it arrived.
    static func fresh(_ sequence: UInt64, origin: UUID) -> IncomingBatch {
        let record = StoreContractTests.detractor(500_000 + Int(sequence))
        return IncomingBatch(key: BatchKey(origin: origin, sequence: sequence), records: [record], receivedAt: record.capturedAt + 50)
    }

    /// Limits with the share at 20 records and no minimum run, so the order shows with a
    /// few small batches.
    static func small(maxBatches: Int = 512, minimumRun: Duration = .zero) -> GroupCommitter.Limits {
        var limits = GroupCommitter.Limits()
        limits.maxBatches = maxBatches
        limits.share = 20
        limits.minimumRun = minimumRun
        return limits
    }

    /// Submits bulk batch 1 of `backlog`, waits until `log` holds the first transaction,
    /// queues `then`, releases it, waits for every batch and stops; returns what each commit
    /// took.
    static func order(
        _ log: HeldCommits, _ limits: GroupCommitter.Limits = .init(), backlog: UUID, then queue: [IncomingBatch]
    ) async throws -> [[BatchKey]] {
        let committer = GroupCommitter(store: log, limits: limits, metrics: HubMetrics(factory: NOOPMetricsHandler.instance), logger: TestStores.logger)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var futures = [committer.submit(Self.bulk(1, origin: backlog), on: group.next())]
        log.waitUntilHeld()
        futures += queue.map { committer.submit($0, on: group.next()) }
        log.release()
        let outcomes = try await EventLoopFuture.whenAllSucceed(futures, on: group.next()).get()
        committer.stop()
        try await group.shutdownGracefully()
        #expect(outcomes == ([Self.bulk(1, origin: backlog)] + queue).map { .stored(newRecords: $0.records.count) })
        return log.calls.withLockedValue { $0 }
    }

    @Test func aFreshDetractorWaitingIsCommittedAloneAheadOfTheBacklog() async throws {
        let log = try HeldCommits(holdAtEnd: true)  // the first transaction has taken its batches and is writing
        defer { log.remove() }
        let backlog = UUID()
        let kiosk = UUID()
        let b = { (sequence: UInt64) in BatchKey(origin: backlog, sequence: sequence) }
        let calls = try await Self.order(log, backlog: backlog, then: (2...6).map { Self.bulk($0, origin: backlog) } + [Self.fresh(1, origin: kiosk)])
        #expect(calls == [[b(1)], [BatchKey(origin: kiosk, sequence: 1)], [b(2), b(3), b(4), b(5), b(6)]], "\(calls)")
    }

    @Test func aFreshDetractorJoinsTheTransactionInProgressWhichEndsSoonAfter() async throws {
        let log = try HeldCommits()  // the first transaction is under way
        defer { log.remove() }
        let backlog = UUID()
        let kiosk = UUID()
        let b = { (sequence: UInt64) in BatchKey(origin: backlog, sequence: sequence) }
        let calls = try await Self.order(log, Self.small(), backlog: backlog, then: (2...6).map { Self.bulk($0, origin: backlog) } + [Self.fresh(1, origin: kiosk)])
        #expect(calls == [[b(1), BatchKey(origin: kiosk, sequence: 1), b(2)], [b(3), b(4), b(5), b(6)]],
                "the detractor next, then bulk up to the share (20 records), then the transaction ends: \(calls)")
        #expect(try log.recordCount() == 61)
    }

    /// A node that sends nothing but fresh detractors gets at most the share of each
    /// transaction while bulk batches wait, and every other transaction is a bulk one.
    @Test func aFloodOfFreshDetractorsCannotStarveTheBacklog() async throws {
        let log = try HeldCommits()
        defer { log.remove() }
        let backlog = UUID()
        let flood = UUID()
        let calls = try await Self.order(
            log, Self.small(), backlog: backlog,
            then: (2...9).map { Self.bulk($0, origin: backlog) } + (1...60).map { Self.fresh($0, origin: flood) }
        )
        let b = { (sequence: UInt64) in BatchKey(origin: backlog, sequence: sequence) }
        let p = { (sequences: ClosedRange<UInt64>) in sequences.map { BatchKey(origin: flood, sequence: $0) } }
        // The bulk transaction under way takes the share of the flood and ends at its share of
        // bulk; then one of the flood alone; then a bulk one again (the flood's next share joins
        // it); then the rest of the bulk.
        #expect(calls == [[b(1)] + p(1...20) + [b(2)], p(21...40), p(41...60) + [b(3), b(4)], (5...9).map(b)], "\(calls)")
    }

    /// The flood bound holds when the batch count is the limit too: beside bulk batches,
    /// priority ones get half the slots.
    @Test func withTwoBatchesPerTransactionTheFloodAndTheBacklogTakeTurns() async throws {
        let log = try HeldCommits()
        defer { log.remove() }
        let backlog = UUID()
        let flood = UUID()
        let calls = try await Self.order(
            log, Self.small(maxBatches: 2), backlog: backlog,
            then: (2...5).map { Self.bulk($0, origin: backlog) } + (1...10).map { Self.fresh($0, origin: flood) }
        )
        let b = { (sequence: UInt64) in BatchKey(origin: backlog, sequence: sequence) }
        let p = { (sequence: UInt64) in BatchKey(origin: flood, sequence: sequence) }
        #expect(calls == [[b(1), p(1)], [p(2), p(3)], [p(4), b(2)], [p(5), p(6)], [p(7), b(3)], [p(8), p(9)], [p(10), b(4)], [b(5)]], "\(calls)")
    }

    /// A transaction that cannot even begin fails the batches it would have taken: they are
    /// answered (a retryable REJECT), the writer goes on with what comes next, and stopping
    /// does not hang.
    @Test func aTransactionThatCannotBeginFailsItsBatchesAndTheWriterGoesOn() async throws {
        let opened = try TestStores.open(.sqlite)
        defer { opened.remove() }
        let store = FailsToBegin(opened.store)
        let committer = GroupCommitter(store: store, metrics: HubMetrics(factory: NOOPMetricsHandler.instance), logger: TestStores.logger)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let origin = UUID()
        let first = committer.submit(Self.bulk(1, origin: origin), on: group.next())
        await #expect(throws: StoreError.self) { try await first.get() }
        let second = try await committer.submit(Self.bulk(2, origin: origin), on: group.next()).get()
        committer.stop()
        try await group.shutdownGracefully()
        #expect(second == .stored(newRecords: 10))
        #expect(try opened.store.batchCount() == 1)
    }

    /// Priority batches that keep coming cannot cut every transaction short: one ends early
    /// only once it has run `minimumRun`, on a store that takes batches as it goes. One that
    /// takes them all first (PostgreSQL) has no run to wait for: the share alone decides.
    @Test(arguments: [true, false])
    func aTransactionEndsEarlyOnlyAfterItsMinimumRun(asItGoes: Bool) async throws {
        let log = try HeldCommits(asItGoes: asItGoes)
        defer { log.remove() }
        let backlog = UUID()
        let kiosk = UUID()
        let calls = try await Self.order(
            log, Self.small(minimumRun: .seconds(600)), backlog: backlog,
            then: (2...6).map { Self.bulk($0, origin: backlog) } + [Self.fresh(1, origin: kiosk)]
        )
        let b = { (sequence: UInt64) in BatchKey(origin: backlog, sequence: sequence) }
        let detractor = BatchKey(origin: kiosk, sequence: 1)
        if asItGoes {
            #expect(calls == [[b(1), detractor, b(2), b(3), b(4), b(5), b(6)]], "\(calls)")
        } else {
            #expect(calls == [[b(1), detractor, b(2)], [b(3), b(4), b(5), b(6)]], "\(calls)")
        }
    }

    /// On a store that takes a transaction's batches before it begins, bulk transactions
    /// stay small while detractors keep coming, so the next one never waits long; on SQLite
    /// a detractor joins the transaction under way instead, and they stay large.
    @Test(arguments: [true, false])
    func afterAFreshDetractorBulkCommitsStaySmallWhereBatchesCannotJoinLate(asItGoes: Bool) async throws {
        let log = try HeldCommits(asItGoes: asItGoes)
        defer { log.remove() }
        var limits = GroupCommitter.Limits()
        limits.quickRecords = 30
        let committer = GroupCommitter(store: log, limits: limits, metrics: HubMetrics(factory: NOOPMetricsHandler.instance), logger: TestStores.logger)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let backlog = UUID()
        let kiosk = UUID()
        var futures = [committer.submit(Self.fresh(1, origin: kiosk), on: group.next())]
        log.waitUntilHeld()
        futures += (1...7).map { committer.submit(Self.bulk($0, origin: backlog), on: group.next()) }
        log.release()
        _ = try await EventLoopFuture.whenAllSucceed(futures, on: group.next()).get()
        committer.stop()
        try await group.shutdownGracefully()

        let b = { (sequences: ClosedRange<UInt64>) in sequences.map { BatchKey(origin: backlog, sequence: $0) } }
        let calls = log.calls.withLockedValue { $0 }
        let detractor = [BatchKey(origin: kiosk, sequence: 1)]
        #expect(calls == (asItGoes ? [detractor, b(1...7)] : [detractor, b(1...3), b(4...6), b(7...7)]), "\(calls)")
    }

    @Test func onlyASmallBatchWithANegativeRatingCapturedLatelyGoesAhead() {
        let limits = GroupCommitter.Limits()
        let origin = UUID()
        var old = Self.fresh(1, origin: origin)
        old.receivedAt = old.records[0].capturedAt + 301_000  // captured five minutes and a second before it arrived
        var ahead = Self.fresh(2, origin: origin)
        ahead.receivedAt = ahead.records[0].capturedAt - 60_000  // a fast clock at the origin
        var mixed = Self.bulk(3, origin: origin)
        mixed.records.append(Self.fresh(4, origin: origin).records[0])
        mixed.receivedAt = mixed.records.last!.capturedAt
        var full = Self.bulk(5, origin: origin, count: 100)
        full.records.append(Self.fresh(6, origin: origin).records[0])
        full.receivedAt = full.records.last!.capturedAt
        #expect(limits.isPriority(Self.fresh(7, origin: origin)))
        #expect(limits.isPriority(ahead))
        #expect(limits.isPriority(mixed), "one fresh detractor among a few calm ratings")
        #expect(!limits.isPriority(old), "a backlog's old detractors wait their turn")
        #expect(!limits.isPriority(Self.bulk(8, origin: origin)), "calm ratings")
        #expect(!limits.isPriority(full), "101 records: a full batch is bulk")
    }
}

/// The real SQLite store, holding its first commit after the first batch it takes (or,
/// `holdAtEnd`, once it has taken them all) until ``release()``, and noting the keys each
/// commit took. With `asItGoes` false it tells the committer it takes every batch first,
/// as PostgreSQL does.
final class HeldCommits: RecordStore, Sendable {
    let opened: TestStores.Opened
    let calls = NIOLockedValueBox<[[BatchKey]]>([])
    private let held = DispatchSemaphore(value: 0)
    private let gate = DispatchSemaphore(value: 0)
    let takesBatchesAsItGoes: Bool
    private let holdAtEnd: Bool

    init(asItGoes: Bool = true, holdAtEnd: Bool = false) throws {
        self.opened = try TestStores.open(.sqlite, alerts: try StoreContractTests.rules())
        self.takesBatchesAsItGoes = asItGoes
        self.holdAtEnd = holdAtEnd
    }

    private func hold() {
        self.held.signal()
        self.gate.wait()
    }

    func commit(_ batches: [IncomingBatch]) throws -> [CommitOutcome] {
        var remaining = batches[...]
        return try self.commit(pulling: { remaining.popFirst() })
    }

    func commit(pulling next: () -> IncomingBatch?) throws -> [CommitOutcome] {
        let call = self.calls.withLockedValue { calls in
            calls.append([])
            return calls.count - 1
        }
        return try self.opened.store.commit(pulling: {
            guard let batch = next() else {
                if call == 0, self.holdAtEnd { self.hold() }
                return nil
            }
            let first = self.calls.withLockedValue { calls in
                calls[call].append(batch.key)
                return call == 0 && calls[call].count == 1
            }
            if first, !self.holdAtEnd { self.hold() }
            return batch
        })
    }

    func waitUntilHeld() { self.held.wait() }
    func release() { self.gate.signal() }
    func remove() { self.opened.remove() }

    func isCommitted(_ key: BatchKey) throws -> Bool { try self.opened.store.isCommitted(key) }
    func committedSequence(origin: UUID) throws -> UInt64 { try self.opened.store.committedSequence(origin: origin) }
    func recordCount() throws -> Int { try self.opened.store.recordCount() }
    func batchCount() throws -> Int { try self.opened.store.batchCount() }
    var commitWriters: Int { 1 }
}

/// The serving hub's SQLite store copies its WAL into the database file from a thread of
/// its own, so commits seldom wait for that copy.
@Suite struct WALCheckpointerTests {
    /// Frames in the WAL and frames already copied into the database file, from the
    /// wal-index header in the -shm file (SQLite's file format, "The WAL-Index Format":
    /// `mxFrame` at byte 16, `nBackfill` at byte 96, native byte order).
    static func walFrames(_ path: String) throws -> (inLog: UInt32, copied: UInt32) {
        let shm = try Data(contentsOf: URL(fileURLWithPath: path + "-shm"))
        func u32(_ offset: Int) -> UInt32 { shm.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: UInt32.self) } }
        return (u32(16), u32(96))
    }

    @Test(arguments: [true, false])
    func committedPagesAreCopiedWithoutWaitingForTheWriter(inBackground: Bool) throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("ckpt-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("feedback.sqlite").path
        do {
            let store = try SQLiteStore(path: path, checkpointsInBackground: inBackground)
            let records = (0..<200).map { StoreContractTests.calm($0) }
            _ = try store.commit([StoreContractTests.batch(1, records)])
            var frames = try Self.walFrames(path)
            let deadline = ContinuousClock.now + .seconds(10)
            while inBackground, frames.copied < frames.inLog, ContinuousClock.now < deadline {
                Thread.sleep(forTimeInterval: 0.02)
                frames = try Self.walFrames(path)
            }
            #expect(frames.inLog > 0, "the commit went to the WAL")
            if inBackground {
                #expect(frames.copied == frames.inLog, "the checkpointer copied every frame: \(frames)")
            } else {
                #expect(frames.copied < frames.inLog, "under 1,000 pages the writer leaves them: \(frames)")
            }
            #expect(try store.recordCount() == 200)
        }
        // The store is gone: its checkpointer has stopped and closed its connection, so the
        // file opens again as usual.
        #expect(try SQLiteStore(path: path).recordCount() == 200)
    }
}

/// A store whose first transaction fails before it takes a batch, as `BEGIN` does when the
/// file cannot be written.
private final class FailsToBegin: RecordStore, Sendable {
    let store: any RecordStore
    private let failed = NIOLockedValueBox(false)

    init(_ store: any RecordStore) {
        self.store = store
    }

    func commit(_ batches: [IncomingBatch]) throws -> [CommitOutcome] { try self.store.commit(batches) }

    func commit(pulling next: () -> IncomingBatch?) throws -> [CommitOutcome] {
        let first = self.failed.withLockedValue { failed in
            defer { failed = true }
            return !failed
        }
        if first { throw StoreError("disk I/O error (before BEGIN)") }
        return try self.store.commit(pulling: next)
    }

    var takesBatchesAsItGoes: Bool { true }
    func isCommitted(_ key: BatchKey) throws -> Bool { try self.store.isCommitted(key) }
    func committedSequence(origin: UUID) throws -> UInt64 { try self.store.committedSequence(origin: origin) }
    func recordCount() throws -> Int { try self.store.recordCount() }
    func batchCount() throws -> Int { try self.store.batchCount() }
}

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Dispatch
import Logging
import NIOCore
import Support
import Synchronization
import Wire
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The agent's durable queue: an append-only log of segment files holding captured
/// records, the batches sealed from them, and the hub's acknowledgements.
///
/// ``append(_:)`` returns once the records are durable under the ``FsyncPolicy``;
/// ``sealed(_:recordCount:)`` records a sealed batch (durably) and takes its records out
/// of the unsealed queue; a relay's ``hold(_:path:)`` takes another node's sealed batch
/// (durably); ``acknowledged(_:)`` drops a batch the upstream committed. A segment is
/// deleted once everything in it, and in every older segment, is done with.
///
/// On open the spool recovers: a torn last entry (a crash mid-write) is truncated; a
/// damaged segment is moved to `quarantine/`, what could be read from it is kept, and the
/// spool is rewritten in order into a fresh segment. Nothing stops it from starting.
///
/// Memory does not grow with the backlog: the spool keeps where each unsealed run of
/// records and each unacknowledged batch is on disk (``SpoolIndex``) and reads them back
/// when they are sealed or sent.
public final class Spool: Sendable {
    /// When appends reach the disk.
    public enum FsyncPolicy: Sendable, Hashable {
        /// fsync before each append returns (appends that arrive together share one).
        case always
        /// fsync at most once per interval; appends wait for the next one.
        case interval(Duration)
        /// Never wait for fsync (a process crash loses nothing, a power cut may).
        case never
    }

    /// Settings.
    public struct Configuration: Sendable {
        /// The spool folder (created if missing).
        public var directory: String
        /// When appends are durable. Default: a group fsync every 10 ms.
        public var fsync: FsyncPolicy = .interval(.milliseconds(10))
        /// A segment is closed and a new one started past this size.
        public var segmentBytes = 8 << 20
        /// Appends are refused with ``SpoolError/Code/full`` once the segments hold this much.
        public var quotaBytes = 1 << 30
        /// Disk space kept aside (`reserve`, a file of zeros) for a full disk: when a seal or
        /// an acknowledgement cannot be written, the reserve is given up so batches can still
        /// be sealed and sent — their acknowledgements free segments, which is how space
        /// comes back. Taken again once a segment is deleted. 0 turns it off.
        public var reserveBytes = 256 << 10

        /// Creates settings for the spool in `directory`.
        public init(directory: String) {
            self.directory = directory
        }
    }

    /// What recovery found when the spool was opened.
    public struct Recovery: Sendable, Hashable {
        /// Bytes of torn entries cut off the end of the newest segment.
        public var truncatedBytes = 0
        /// Segments moved to `quarantine/` because an entry in them was damaged.
        public var quarantinedSegments: [String] = []
    }

    /// Counts for `status` and metrics.
    public struct Stats: Sendable, Hashable {
        /// Records waiting to be sealed.
        public var unsealedRecords: Int
        /// Sealed batches waiting for the hub's acknowledgement.
        public var unacknowledgedBatches: Int
        /// Records in those batches.
        public var unacknowledgedRecords: Int
        /// Bytes of all segment files.
        public var bytes: Int
        /// Segment files.
        public var segments: Int
        /// Capture time (ms since the epoch) of the oldest record not yet acknowledged.
        public var oldestPendingCapturedAt: Int64?
    }

    struct Segment: Sendable {
        var bytes: Int
        var live = 0
    }

    struct State: Sendable {
        var activeID: UInt64 = 0
        var activeFD: Int32 = -1
        var segments: [UInt64: Segment] = [:]
        var index = SpoolIndex()
        var nextSequence: UInt64 = 1
        var nextRecordNumber: UInt64 = 1
        /// The number of the newest negative rating appended since the spool opened (0:
        /// none): while it is unsealed, the batcher seals at once.
        var negativeThrough: UInt64 = 0
        var written: UInt64 = 0
        var durable: UInt64 = 0
        var waiters: [(position: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []
        var urgent = false
        var closed = false
        var failure: SpoolError?
        /// Where each source has read to, as durable as the records read before it.
        var cursors: [String: SourceCursor] = [:]
        /// Batches found damaged when read back (left out until the next start).
        var damagedBatches: Set<BatchKey> = []
        /// Batches whose read failed and was logged (logged once, tried again).
        var unreadableLogged: Set<BatchKey> = []
        /// Per origin, the highest sequence held since the spool opened (or found on disk
        /// by recovery): one entry per origin, however many batches.
        var highestHeld: [UUID: UInt64] = [:]

        mutating func noteHeld(_ key: BatchKey) {
            self.highestHeld[key.origin] = max(self.highestHeld[key.origin] ?? 0, key.sequence)
        }
    }

    /// The settings in force.
    public let configuration: Configuration
    /// What recovery did when the spool was opened.
    public let recovery: Recovery
    private let state: Mutex<State>
    private let lock: Mutex<Int32>
    private let wakeFlusher = DispatchSemaphore(value: 0)
    private let flusherDone = DispatchSemaphore(value: 0)
    private let logger: Logger
    private var segmentsPath: String { self.configuration.directory + "/segments" }

    /// Opens (creating or recovering) the spool.
    ///
    /// - Throws: ``SpoolError`` when the folder cannot be created or read.
    public init(configuration: Configuration, logger: Logger = Logger(label: "feedback-agent.spool")) throws {
        self.configuration = configuration
        self.logger = logger
        // One process per spool: a second agent (or an import while the agent runs) would
        // interleave writes. The lock goes with the process, so a crash never leaves it held.
        // Ratings hold customer ids and comments: a new spool folder is owner-only.
        try? SecretFile.createDirectory(configuration.directory)
        let lockPath = configuration.directory + "/lock"
        let lock = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lock >= 0 else { throw SpoolError(.io, "cannot open \(lockPath): \(String(cString: strerror(errno)))") }
        guard Self.lockExclusively(lock) else {
            closeFile(lock)
            throw SpoolError(.locked, "the spool \(configuration.directory) is in use by another process (a running agent?)")
        }
        self.lock = Mutex(lock)
        let (state, recovery): (State, Recovery)
        do {
            (state, recovery) = try SpoolRecovery(configuration: configuration, logger: logger).run()
        } catch {
            closeFile(lock)
            throw error
        }
        self.state = Mutex(state)
        self.recovery = recovery
        self.restoreReserve()
        if configuration.fsync != .never {
            // A thread of its own (it blocks in fdatasync), not one of the concurrency pool's.
            DispatchQueue(label: "feedback-agent-spool-fsync").async { [self] in self.flushLoop() }
        }
    }

    deinit {
        self.state.withLock { state in
            if state.activeFD >= 0 { closeFile(state.activeFD) }
        }
        self.releaseLock()
    }

    /// Takes the spool's lock, trying for up to a second: a process that spawns children (a
    /// backend embedding the agent, the test runner) may have a child between fork and exec
    /// still holding a copy of the descriptor of a spool it just closed. A second agent
    /// really running keeps the lock past that and is refused.
    private static func lockExclusively(_ fd: Int32) -> Bool {
        let deadline = ContinuousClock.now + .seconds(1)
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK, ContinuousClock.now < deadline else { return false }
            usleep(10_000)
        }
        return true
    }

    private func releaseLock() {
        self.lock.withLock { fd in
            if fd >= 0 { closeFile(fd) }
            fd = -1
        }
    }

    // MARK: Capture

    /// Appends `records`; returns once they are durable under the fsync policy.
    ///
    /// - Throws: ``SpoolError`` with code `full` when the quota is reached (nothing is
    ///   written), `invalidRecord` for a record that fails validation (nothing is written),
    ///   `io` when the disk refuses the write.
    public func append(_ records: [FeedbackRecord]) async throws {
        try await self.append(records, cursor: nil)
    }

    /// Appends `records` read by a source, and the source's new `cursor`, in one entry:
    /// after a crash either both are there or neither is. `records` may be empty (lines
    /// that held no rating still move the cursor). Returns once durable.
    ///
    /// - Throws: like ``append(_:)-([FeedbackRecord])``.
    public func append(_ records: [FeedbackRecord], cursor: SourceCursor?) async throws {
        guard !records.isEmpty || cursor != nil else { return }
        for record in records {
            do {
                try record.validate()
            } catch let error as WireError {
                throw SpoolError(.invalidRecord, error.detail)
            }
        }
        let position = try self.state.withLock { state -> UInt64 in
            try self.checkOpen(state)
            var buffer = ByteBuffer()
            let first = state.nextRecordNumber
            let oldest = records.lazy.map(\.capturedAt).min() ?? .max
            if let cursor {
                let numbered = records.enumerated().map { (number: first + UInt64($0.offset), record: $0.element) }
                SpoolEntry.captured(cursor, numbered).write(into: &buffer)
            } else {
                for (index, record) in records.enumerated() {
                    SpoolEntry.record(number: first + UInt64(index), record).write(into: &buffer)
                }
            }
            guard self.totalBytes(state) + buffer.readableBytes <= self.configuration.quotaBytes else {
                throw SpoolError(.full, "the spool holds \(self.totalBytes(state)) bytes of its \(self.configuration.quotaBytes)-byte quota")
            }
            let offset = try self.write(buffer, &state)
            state.index.appended(
                segment: state.activeID, offset: offset, size: buffer.readableBytes, first: first, count: records.count,
                oldestCapturedAt: oldest
            )
            state.segments[state.activeID, default: Segment(bytes: 0)].live += records.count
            state.nextRecordNumber += UInt64(records.count)
            if let negative = records.lastIndex(where: \.isNegative) {
                state.negativeThrough = max(state.negativeThrough, first + UInt64(negative))
            }
            if let cursor { state.cursors[cursor.source] = cursor }
            return state.written
        }
        try await self.waitDurable(position, urgent: false)
    }

    /// Appends one record; see ``append(_:)-([FeedbackRecord])``.
    public func append(_ record: FeedbackRecord) async throws {
        try await self.append([record])
    }

    // MARK: Sealing and acknowledgement

    /// The oldest unsealed records, at most `limit`, in capture order, read back from disk.
    ///
    /// - Throws: ``SpoolError`` `io` when a segment cannot be read or an entry in it was
    ///   damaged after the spool opened (the next start quarantines it).
    public func unsealed(limit: Int) throws -> [FeedbackRecord] {
        // Readers are opened under the lock: a segment with live records is never deleted,
        // and an open file stays readable even if it were.
        let (runs, readers) = try self.state.withLock { state -> (ArraySlice<SpoolIndex.Run>, SegmentReaders) in
            try self.checkOpen(state)
            var covered = 0
            let runs = state.index.runs.prefix { run in
                defer { covered += run.count }
                return covered < limit
            }
            var readers = SegmentReaders(folder: self.segmentsPath)
            for run in runs { _ = try readers.reader(run.segment) }
            return (runs, readers)
        }
        var open = readers
        return try SpoolIndex.read(runs, limit: limit, readers: &open)
    }

    /// What waits to be sealed, without reading it: the batcher's cue. `negative` says a
    /// negative rating appended since the spool opened is among it (records are sealed
    /// oldest first, so it is while the oldest unsealed record is not newer than it).
    public var unsealedSummary: (records: Int, bytes: Int, oldestCapturedAt: Int64?, negative: Bool) {
        self.state.withLock { state in
            let negative = state.index.runs.first.map { $0.firstNumber <= state.negativeThrough } ?? false
            return (state.index.unsealedCount, state.index.unsealedBytes, state.index.runs.lazy.map(\.oldestCapturedAt).min(), negative)
        }
    }

    /// Where the source named `source` has read to (nil: it has not read yet).
    public func cursor(of source: String) -> SourceCursor? {
        self.state.withLock { $0.cursors[source] }
    }

    /// The sequence number the next sealed batch must carry (persisted, never reused).
    public var nextSequence: UInt64 { self.state.withLock { $0.nextSequence } }

    /// Records `batch`, sealed from the oldest `recordCount` unsealed records, durably:
    /// those records leave the unsealed queue and the batch waits for its acknowledgement.
    ///
    /// - Throws: ``SpoolError`` `outOfOrder` if the batch's sequence is not
    ///   ``nextSequence`` or fewer records are unsealed than it claims.
    public func sealed(_ batch: SealedBatch, recordCount: Int) async throws {
        let position = try self.state.withLock { state -> UInt64 in
            try self.checkOpen(state)
            guard batch.header.sequence == state.nextSequence else {
                throw SpoolError(.outOfOrder, "batch \(batch.header.sequence) sealed, but the next sequence is \(state.nextSequence)")
            }
            guard recordCount >= 1, recordCount <= state.index.unsealedCount else {
                throw SpoolError(.outOfOrder, "batch claims \(recordCount) records; \(state.index.unsealedCount) are unsealed")
            }
            // The number of the batch's last record, and where the records after it start,
            // found before anything is written, so a read error leaves the spool as it was.
            // Numbers may have gaps between runs (records lost with a quarantined segment).
            var taken = 0
            var lastNumber: UInt64 = 0
            var rest: (offset: Int, skip: Int)?
            for run in state.index.runs {
                if taken + run.count <= recordCount {
                    taken += run.count
                    lastNumber = run.lastNumber
                    if taken == recordCount { break }
                } else {
                    let reader = try SegmentReader(path: SpoolFiles.path(segment: run.segment, in: self.segmentsPath))
                    rest = try SpoolIndex.position(after: recordCount - taken, in: run, reader: reader)
                    lastNumber = run.firstNumber + UInt64(recordCount - taken) - 1
                    break
                }
            }
            let firstNumber = state.index.runs[0].firstNumber
            var buffer = ByteBuffer()
            SpoolEntry.sealed(firstRecordNumber: firstNumber, lastRecordNumber: lastNumber, batch).write(into: &buffer)
            let offset = try self.write(buffer, &state, useReserve: true)
            let (perSegment, oldest) = state.index.removeRecords(firstNumber, through: lastNumber)
            if let rest, !state.index.runs.isEmpty {
                state.index.runs[0].offset = rest.offset
                state.index.runs[0].skip = rest.skip
            }
            for (segment, count) in perSegment { state.segments[segment]?.live -= count }
            state.index.insert(
                SpoolIndex.Batch(
                    segment: state.activeID, offset: offset, size: buffer.readableBytes, recordCount: Int(batch.header.recordCount),
                    oldestCapturedAt: oldest
                ),
                for: batch.key
            )
            state.index.order.append(batch.key)
            state.segments[state.activeID]?.live += 1
            state.noteHeld(batch.key)
            state.nextSequence += 1
            return state.written
        }
        try await self.waitDurable(position, urgent: true)
    }

    // MARK: Relaying

    /// What ``hold(_:path:)`` did with another node's batch.
    public enum HoldOutcome: Sendable, Hashable {
        /// Durably in the spool: acknowledge it downstream.
        case held
        /// Already in the spool and not yet settled upstream, durably: nothing was written;
        /// acknowledge it downstream as a duplicate.
        case duplicate
        /// Taking it would pass ``room``: nothing was written. The sender keeps the batch
        /// and tries again later (a retryable refusal).
        case full
    }

    /// The most relays a held batch may have come through (its hop path): one fewer than
    /// FORWARD carries, since passing it on adds this node.
    public static let maxPathLength = ForwardedBatch.maxHops - 1

    /// Takes another node's sealed batch, as received, with the relays it came through
    /// (`path`, first hop first), to forward it upstream: returns `.held` once it is
    /// durable (fsync'd, whatever the ``FsyncPolicy``), so the sender may drop it. The
    /// caller has checked the origin's signature; the bytes are kept exactly as they are.
    /// Held batches go upstream in the order they arrived, with this node's own, and leave
    /// on ``acknowledged(_:)``.
    ///
    /// - Throws: ``SpoolError`` `invalidBatch` when `path` is longer than
    ///   ``maxPathLength`` or the batch too large for an entry (nothing is written); `io`
    ///   when the disk refuses the write (a full disk: held batches never use the reserve,
    ///   which stays for this node's own seals and acknowledgements).
    public func hold(_ batch: SealedBatch, path: [UUID]) async throws -> HoldOutcome {
        guard path.count <= Self.maxPathLength else {
            throw SpoolError(
                .invalidBatch,
                "batch \(batch.key) came through \(path.count) relays; at most \(Self.maxPathLength) can be passed on (FORWARD names \(ForwardedBatch.maxHops) with this node)"
            )
        }
        guard 2 + 16 * path.count + batch.bytes.readableBytes <= SpoolEntry.maxBodyLength else {
            throw SpoolError(.invalidBatch, "batch \(batch.key) is \(batch.bytes.readableBytes) bytes; a spool entry holds at most \(SpoolEntry.maxBodyLength)")
        }
        let (outcome, position) = try self.state.withLock { state -> (HoldOutcome, UInt64) in
            try self.checkOpen(state)
            // The copy already here may not be durable yet: answer once everything written
            // so far is.
            if state.index.batches[batch.key] != nil { return (.duplicate, state.written) }
            var buffer = ByteBuffer()
            SpoolEntry.forwarded(path: path, batch).write(into: &buffer)
            guard buffer.readableBytes <= self.room(state) else { return (.full, 0) }
            let offset = try self.write(buffer, &state)
            state.index.insert(
                SpoolIndex.Batch(
                    segment: state.activeID, offset: offset, size: buffer.readableBytes, recordCount: Int(batch.header.recordCount),
                    oldestCapturedAt: nil, forwarded: true
                ),
                for: batch.key
            )
            state.index.order.append(batch.key)
            state.segments[state.activeID]?.live += 1
            state.noteHeld(batch.key)
            return (.held, state.written)
        }
        if outcome != .full { try await self.waitDurable(position, urgent: true) }
        return outcome
    }

    /// Bytes of held batches (entries included) the spool can still take before
    /// ``hold(_:path:)`` answers `.full`: what a relay grants downstream credit from. The
    /// quota less what is written, less room kept for this node's own work, which cannot
    /// be refused: the unsealed records' bytes (their seal writes them again) and
    /// ``Configuration/reserveBytes`` (acknowledgements, segment headers).
    public var room: Int {
        self.state.withLock { self.room($0) }
    }

    private func room(_ state: State) -> Int {
        max(0, self.configuration.quotaBytes - self.totalBytes(state) - self.configuration.reserveBytes - state.index.unsealedBytes)
    }

    /// The highest sequence of `origin` this spool holds or has held since it opened
    /// (after a restart, as found in the entries still on disk); nil when none. A relay's
    /// WELCOME tells the downstream node that these are safe.
    public func highestHeld(origin: UUID) -> UInt64? {
        self.state.withLock { $0.highestHeld[origin] }
    }

    /// The hub reported `sequence` as its highest committed batch of this origin (WELCOME's
    /// resume point). If the spool would seal at or below it (its state came from an old
    /// backup, say), the next sequence moves past it, durably, so no number is reused.
    /// Returns whether it moved.
    @discardableResult
    public func advanceSequence(beyond sequence: UInt64) throws -> Bool {
        try self.state.withLock { state in
            try self.checkOpen(state)
            guard sequence >= state.nextSequence, sequence < .max else { return false }
            state.nextSequence = sequence + 1
            var buffer = ByteBuffer()
            SpoolEntry.header(nextSequence: state.nextSequence, nextRecordNumber: state.nextRecordNumber).write(into: &buffer)
            try self.write(buffer, &state, useReserve: true)
            return true
        }
    }

    /// Sealed batches the upstream has not acknowledged, this node's and those it holds for
    /// others, in the order they arrived: at most `limit`, at most `maxBytes` together (but
    /// one at least when `atLeastOne`, whatever its size), and only those `include`
    /// accepts, read back from disk. A batch that cannot be read (its segment damaged since
    /// the spool opened) is logged once and left out; it stays in the spool, and the next
    /// start quarantines its segment.
    public func unacknowledged(
        limit: Int = .max, maxBytes: Int = .max, atLeastOne: Bool = true, where include: (BatchKey) -> Bool = { _ in true }
    ) -> [SpoolBatch] {
        let (wanted, next, readers) = self.state.withLock { state -> ([(BatchKey, SpoolIndex.Batch)], [SpoolIndex.Batch], SegmentReaders) in
            var wanted: [(BatchKey, SpoolIndex.Batch)] = []
            var next: [SpoolIndex.Batch] = []
            var readers = SegmentReaders(folder: self.segmentsPath)
            var bytes = 0
            var full = false
            guard !state.closed else { return (wanted, next, readers) }
            for key in state.index.keys() {
                guard let batch = state.index.batches[key], include(key), !state.damagedBatches.contains(key) else {
                    continue
                }
                if full || wanted.count >= limit || ((!wanted.isEmpty || !atLeastOne) && bytes + batch.size > maxBytes) {
                    full = true
                    // The batches to send after these: read ahead while these are in flight.
                    guard next.count < max(limit, 4), (try? readers.reader(batch.segment)) != nil else { break }
                    next.append(batch)
                    continue
                }
                do {
                    _ = try readers.reader(batch.segment)
                    wanted.append((key, batch))
                    bytes += batch.size
                } catch {
                    // Out of descriptors, say: tried again on the next call.
                    self.reportUnreadable(key, "\(error)", damaged: false, &state)
                }
            }
            return (wanted, next, readers)
        }
        var open = readers
        for batch in next { try? open.reader(batch.segment).prefetch(at: batch.offset, count: batch.size) }
        var batches: [SpoolBatch] = []
        for (key, location) in wanted {
            let damage: String
            do {
                switch try open.reader(location.segment).entry(at: location.offset) {
                case .entry(.sealed(_, _, let batch), let size) where size == location.size && batch.key == key && !location.forwarded:
                    batches.append(SpoolBatch(batch: batch))
                    continue
                case .entry(.forwarded(let path, let batch), let size) where size == location.size && batch.key == key && location.forwarded:
                    batches.append(SpoolBatch(batch: batch, path: path))
                    continue
                case .entry:
                    damage = "the entry at byte \(location.offset) of segment \(location.segment) is not batch \(key)"
                case .incomplete:
                    damage = "segment \(location.segment) ends inside batch \(key)"
                case .corrupt(let reason):
                    damage = "batch \(key) in segment \(location.segment) is damaged: \(reason)"
                }
            } catch {
                // The disk refused the read: tried again on the next call.
                self.state.withLock { self.reportUnreadable(key, "\(error)", damaged: false, &$0) }
                continue
            }
            self.state.withLock { self.reportUnreadable(key, damage, damaged: true, &$0) }
        }
        return batches
    }

    /// Logs, once per batch, that it could not be read back; a `damaged` one is left out
    /// until the next start, whose recovery quarantines its segment.
    private func reportUnreadable(_ key: BatchKey, _ reason: String, damaged: Bool, _ state: inout State) {
        if damaged { state.damagedBatches.insert(key) }
        guard state.unreadableLogged.insert(key).inserted else { return }
        self.logger.error(
            damaged
                ? "a sealed batch cannot be read back; it stays in the spool and the next start quarantines its segment"
                : "a sealed batch cannot be read now; it is tried again",
            metadata: ["origin": "\(key.origin)", "batch": "\(key.sequence)", "error": "\(reason)"]
        )
    }

    /// The upstream committed batch `key` (stored or duplicate; for a batch held for
    /// another node, the next hop has it durably): it leaves the spool. An acknowledgement
    /// lost in a crash only makes the batch go again, answered duplicate, so this does not
    /// wait for fsync — and a full disk does not stop it: if the entry cannot be written
    /// the batch still leaves, and its segment can be deleted, which is how a full disk
    /// gets space back.
    public func acknowledged(_ key: BatchKey) throws {
        try self.state.withLock { state in
            try self.checkOpen(state)
            guard let done = state.index.remove(key) else { return }
            state.damagedBatches.remove(key)
            state.unreadableLogged.remove(key)
            var buffer = ByteBuffer()
            // This node's own batches keep the old entry, so a spool that never relayed
            // stays readable by the previous version.
            (done.forwarded ? SpoolEntry.settled(key) : SpoolEntry.acknowledged(sequence: key.sequence)).write(into: &buffer)
            do {
                try self.write(buffer, &state, useReserve: true)
            } catch {
                self.logger.warning(
                    "acknowledgement not recorded on disk; after a crash the batch would go again (answered duplicate)",
                    metadata: ["origin": "\(key.origin)", "batch": "\(key.sequence)", "error": "\(error)"]
                )
            }
            state.segments[done.segment]?.live -= 1
            self.deleteFinishedSegments(&state)
            // A drained spool whose active segment holds a good part of the quota starts a new
            // one, so the space comes back: otherwise a quota small next to `segmentBytes` (a
            // relay sized for its branch, say) would stay full until the segment fills.
            if state.index.batches.isEmpty, state.index.unsealedCount == 0,
                (state.segments[state.activeID]?.bytes ?? 0) >= self.configuration.quotaBytes / 4
            {
                do {
                    try self.roll(&state)
                } catch {
                    self.logger.warning("cannot start a new segment to free a drained one", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    /// Counts for `status` and metrics.
    public var stats: Stats {
        self.state.withLock { state in
            Stats(
                unsealedRecords: state.index.unsealedCount,
                unacknowledgedBatches: state.index.batches.count,
                unacknowledgedRecords: state.index.unacknowledgedRecords,
                bytes: self.totalBytes(state),
                segments: state.segments.count,
                oldestPendingCapturedAt: state.index.oldestPendingCapturedAt
            )
        }
    }

    /// Makes everything written so far durable, stops the fsync thread and closes the
    /// files. Later calls throw ``SpoolError`` `closed`.
    public func close() {
        let alreadyClosed = self.state.withLock { state in
            defer { state.closed = true }
            return state.closed
        }
        guard !alreadyClosed else { return }
        if self.configuration.fsync != .never {
            self.wakeFlusher.signal()
            self.flusherDone.wait()
        }
        self.state.withLock { state in
            if state.activeFD >= 0 {
                if state.failure == nil, fsync(state.activeFD) == 0 {
                    state.durable = state.written
                } else if state.failure == nil {
                    state.failure = SpoolError(.io, "fsync on close failed: \(String(cString: strerror(errno)))")
                }
                closeFile(state.activeFD)
                state.activeFD = -1
            }
            if let failure = state.failure {
                self.fail(failure, &state)
            } else {
                self.resumeWaiters(&state)
            }
        }
        self.releaseLock()
    }

    // MARK: Internals

    private func checkOpen(_ state: State) throws {
        if state.closed { throw SpoolError(.closed, "the spool is closed") }
        if let failure = state.failure { throw failure }
    }

    private func totalBytes(_ state: State) -> Int {
        state.segments.values.reduce(0) { $0 + $1.bytes }
    }

    /// Writes `buffer` at the end of the active segment, rolling to a new one when full;
    /// with `useReserve`, a write the full disk refuses is tried once more after giving up
    /// the reserve. Returns the offset it was written at, in the (then) active segment.
    @discardableResult
    private func write(_ buffer: ByteBuffer, _ state: inout State, useReserve: Bool = false) throws -> Int {
        do {
            return try self.writeOnce(buffer, &state)
        } catch let error as SpoolError where useReserve && state.failure == nil && self.releaseReserve() {
            self.logger.warning("disk full: the spool's reserve was given up to seal and acknowledge", metadata: ["error": "\(error)"])
            return try self.writeOnce(buffer, &state)
        }
    }

    private var reservePath: String { self.configuration.directory + "/reserve" }

    /// Deletes the reserve file; false when there was none.
    private func releaseReserve() -> Bool {
        unlink(self.reservePath) == 0
    }

    /// Creates the reserve file if it is missing and space allows (best effort).
    private func restoreReserve() {
        let size = self.configuration.reserveBytes
        guard size > 0, access(self.reservePath, F_OK) != 0 else { return }
        let fd = open(self.reservePath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        var buffer = ByteBuffer()
        buffer.writeRepeatingByte(0, count: size)
        let written = (try? SpoolFiles.writeAll(fd, buffer, path: self.configuration.directory)) != nil && fsync(fd) == 0
        closeFile(fd)
        if !written { unlink(self.reservePath) }
    }

    private func writeOnce(_ buffer: ByteBuffer, _ state: inout State) throws -> Int {
        if let size = state.segments[state.activeID]?.bytes, size > 0, size + buffer.readableBytes > self.configuration.segmentBytes {
            try self.roll(&state)
        }
        let size = state.segments[state.activeID]?.bytes ?? 0
        do {
            try SpoolFiles.writeAll(state.activeFD, buffer, path: self.segmentsPath)
        } catch {
            // A partial write would leave half an entry that later entries follow: cut it
            // off. If even that fails, stop accepting rather than write after garbage.
            if ftruncate(state.activeFD, off_t(size)) != 0 {
                state.failure = SpoolError(.io, "cannot cut a failed write off segment \(state.activeID): \(String(cString: strerror(errno)))")
            }
            throw error
        }
        state.segments[state.activeID, default: Segment(bytes: 0)].bytes = size + buffer.readableBytes
        state.written += UInt64(buffer.readableBytes)
        return size
    }

    /// Starts the next segment (with its header), then closes the active one (fsync'd, so
    /// its waiters are durable). If the new segment cannot be made, the active one stays.
    private func roll(_ state: inout State) throws {
        let next = state.activeID + 1
        let fd = try SpoolFiles.create(segment: next, in: self.segmentsPath)
        var header = ByteBuffer()
        SpoolEntry.header(nextSequence: state.nextSequence, nextRecordNumber: state.nextRecordNumber).write(into: &header)
        // Cursors go along, so deleting the segment that first held one does not lose it.
        for name in state.cursors.keys.sorted() {
            if let cursor = state.cursors[name] { SpoolEntry.cursor(cursor).write(into: &header) }
        }
        do {
            try SpoolFiles.writeAll(fd, header, path: self.segmentsPath)
        } catch {
            closeFile(fd)
            unlink(SpoolFiles.path(segment: next, in: self.segmentsPath))
            throw error
        }
        guard fsync(state.activeFD) == 0 else {
            let failure = SpoolError(.io, "fsync of segment \(state.activeID) failed: \(String(cString: strerror(errno)))")
            closeFile(fd)
            unlink(SpoolFiles.path(segment: next, in: self.segmentsPath))
            self.fail(failure, &state)
            throw failure
        }
        closeFile(state.activeFD)
        state.durable = state.written
        self.resumeWaiters(&state)
        state.activeID = next
        state.activeFD = fd
        state.segments[next] = Segment(bytes: header.readableBytes)
        state.written += UInt64(header.readableBytes)
        self.deleteFinishedSegments(&state)
    }

    /// A failed fsync leaves the page cache in an unknown state: stop accepting, and fail
    /// everyone still waiting for durability.
    private func fail(_ failure: SpoolError, _ state: inout State) {
        if state.failure == nil { state.failure = failure }
        for waiter in state.waiters { waiter.continuation.resume(throwing: failure) }
        state.waiters = []
    }

    /// Deletes the oldest segments while nothing in them is live. Oldest first only, so an
    /// acknowledgement or a seal never outlives the entry it refers to.
    private func deleteFinishedSegments(_ state: inout State) {
        var deleted = false
        defer { if deleted { self.restoreReserve() } }
        var synced = false
        for id in state.segments.keys.sorted() {
            guard id != state.activeID, let segment = state.segments[id], segment.live <= 0 else { return }
            assert(segment.live == 0, "segment \(id) counts \(segment.live) live entries")
            // Its records may have left it by a seal not yet on disk: the seal must be
            // durable before the records are deleted, or a power cut would lose both.
            if !synced, self.configuration.fsync != .never, state.durable < state.written, state.activeFD >= 0 {
                guard fdatasync(state.activeFD) == 0 else { return }
                state.durable = state.written
                self.resumeWaiters(&state)
                synced = true
            }
            unlink(SpoolFiles.path(segment: id, in: self.segmentsPath))
            state.segments[id] = nil
            deleted = true
        }
    }

    private func waitDurable(_ position: UInt64, urgent: Bool) async throws {
        guard self.configuration.fsync != .never else { return }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let done = self.state.withLock { state -> Result<Bool, SpoolError> in
                if state.durable >= position { return .success(true) }
                if let failure = state.failure { return .failure(failure) }
                if state.closed { return .failure(SpoolError(.closed, "the spool closed before the write was durable")) }
                state.waiters.append((position, continuation))
                if urgent { state.urgent = true }
                return .success(false)
            }
            switch done {
            case .success(true): continuation.resume()
            case .success: self.wakeFlusher.signal()
            case .failure(let failure): continuation.resume(throwing: failure)
            }
        }
    }

    private func resumeWaiters(_ state: inout State) {
        let durable = state.durable
        var remaining: [(position: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []
        for waiter in state.waiters {
            if waiter.position <= durable { waiter.continuation.resume() } else { remaining.append(waiter) }
        }
        state.waiters = remaining
    }

    /// The fsync thread: one fdatasync covers every append written before it started.
    private func flushLoop() {
        var lastSync = ContinuousClock.now
        while true {
            self.wakeFlusher.wait()
            if case .interval(let interval) = self.configuration.fsync, !self.state.withLock({ $0.urgent || $0.closed }) {
                let due = lastSync + interval
                if ContinuousClock.now < due { Self.sleep(due - ContinuousClock.now) }
            }
            let (fd, position, closed) = self.state.withLock { state -> (Int32, UInt64, Bool) in
                state.urgent = false
                // Every append signals; most wake-ups find the work already done.
                guard state.written > state.durable, state.activeFD >= 0 else { return (-1, state.written, state.closed) }
                return (dup(state.activeFD), state.written, state.closed)
            }
            if fd >= 0 {
                let result = fdatasync(fd)
                let failure = result == 0 ? nil : SpoolError(.io, "fsync failed: \(String(cString: strerror(errno)))")
                closeFile(fd)
                lastSync = ContinuousClock.now
                self.state.withLock { state in
                    if let failure {
                        self.fail(failure, &state)
                    } else if state.failure == nil {
                        state.durable = max(state.durable, position)
                        self.resumeWaiters(&state)
                    }
                }
            }
            if closed { break }
        }
        self.flusherDone.signal()
    }

    /// Blocks this thread (the fsync thread, never a task) for `duration`.
    private static func sleep(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        var request = timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0, errno == EINTR { request = remaining }
    }
}

import Wire

/// What the spool keeps in memory about its backlog: where things are on disk, never the
/// things themselves. Unsealed records are held as runs (entries written one after another
/// in one segment, with consecutive record numbers), sealed batches as their place in a
/// segment; both are read back through ``SegmentReader`` when sealed or sent. Memory grows
/// with the number of runs and batches, not with their bytes.
struct SpoolIndex: Sendable {
    /// Consecutive unsealed records in consecutive `record` or `captured` entries of one
    /// segment.
    struct Run: Sendable {
        var segment: UInt64
        /// File offset of the entry holding the run's first record.
        var offset: Int
        /// Records at the start of that entry that are not the run's (taken by a seal that
        /// ended inside a `captured` entry, or dropped on recovery).
        var skip = 0
        var firstNumber: UInt64
        var count: Int
        /// File offset just past the run's last entry: where the next append continues it.
        var end: Int
        /// Capture time of the run's oldest record (after a seal took part of the run, of
        /// a record that was in it: never younger than the truth).
        var oldestCapturedAt: Int64

        var lastNumber: UInt64 { self.firstNumber + UInt64(self.count) - 1 }
    }

    /// A sealed batch waiting for the hub's acknowledgement: one this node sealed, or one
    /// it holds for another node (a relay's).
    struct Batch: Sendable {
        var segment: UInt64
        /// File offset of its `sealed` or `forwarded` entry, and the entry's size.
        var offset: Int
        var size: Int
        var recordCount: Int
        /// Nil when unknown (a batch rewritten after quarantine, or another node's).
        var oldestCapturedAt: Int64?
        /// Held for another node (a `forwarded` entry), not sealed here.
        var forwarded = false
    }

    var runs: [Run] = []
    /// Records in ``runs``.
    var unsealedCount = 0
    var batches: [BatchKey: Batch] = [:]
    /// Keys in the order the batches arrived (sealed here or held); acknowledged ones are
    /// skipped and dropped lazily.
    var order: [BatchKey] = []
    var orderStart = 0
    /// Records in ``batches``.
    var unacknowledgedRecords = 0

    /// Records `batch` as waiting for its acknowledgement under `key` (not in ``order``:
    /// the caller places it). Returns the batch it replaced: the same batch written again,
    /// whose older entry no longer counts.
    @discardableResult
    mutating func insert(_ batch: Batch, for key: BatchKey) -> Batch? {
        let replaced = self.batches.updateValue(batch, forKey: key)
        self.unacknowledgedRecords += batch.recordCount - (replaced?.recordCount ?? 0)
        return replaced
    }

    /// Takes the batch `key` out; nil when it is not waiting.
    mutating func remove(_ key: BatchKey) -> Batch? {
        guard let done = self.batches.removeValue(forKey: key) else { return nil }
        self.unacknowledgedRecords -= done.recordCount
        return done
    }

    /// Unsealed records were written at `offset` (`size` bytes, one entry or several) in
    /// `segment`, numbered from `first`: the last run grows when they follow it on disk.
    mutating func appended(segment: UInt64, offset: Int, size: Int, first: UInt64, count: Int, oldestCapturedAt: Int64) {
        self.unsealedCount += count
        if var last = self.runs.last, last.segment == segment, last.end == offset,
            count == 0 || last.firstNumber + UInt64(last.count) == first
        {
            last.count += count
            last.end = offset + size
            last.oldestCapturedAt = min(last.oldestCapturedAt, oldestCapturedAt)
            self.runs[self.runs.count - 1] = last
        } else if count > 0 {
            self.runs.append(
                Run(segment: segment, offset: offset, firstNumber: first, count: count, end: offset + size, oldestCapturedAt: oldestCapturedAt)
            )
        }
    }

    /// Takes the unsealed records numbered `first...last` out of the runs; records before
    /// `first` stay (on recovery, records whose seal was lost in a damaged segment). Returns,
    /// per segment, how many records left it, and the oldest capture time among them.
    mutating func removeRecords(_ first: UInt64, through last: UInt64) -> (perSegment: [UInt64: Int], oldest: Int64?) {
        var perSegment: [UInt64: Int] = [:]
        var oldest: Int64?
        var kept: [Run] = []
        kept.reserveCapacity(self.runs.count)
        for run in self.runs {
            guard first <= last, run.firstNumber <= last, run.lastNumber >= first else {
                kept.append(run)
                continue
            }
            let from = max(first, run.firstNumber)
            let through = min(last, run.lastNumber)
            let taken = Int(through - from) + 1
            perSegment[run.segment, default: 0] += taken
            oldest = min(oldest ?? .max, run.oldestCapturedAt)
            self.unsealedCount -= taken
            if from > run.firstNumber {
                var left = run
                left.count = Int(from - run.firstNumber)
                kept.append(left)
            }
            if through < run.lastNumber {
                var right = run
                right.skip += Int(through - run.firstNumber) + 1
                right.firstNumber = through + 1
                right.count = Int(run.lastNumber - through)
                kept.append(right)
            }
        }
        self.runs = kept
        return (perSegment, oldest)
    }

    /// The oldest capture time of anything not yet acknowledged.
    var oldestPendingCapturedAt: Int64? {
        let runs = self.runs.lazy.map(\.oldestCapturedAt).min()
        let batches = self.batches.values.lazy.compactMap(\.oldestCapturedAt).min()
        return [runs, batches].compactMap { $0 }.min()
    }

    /// Bytes of the unsealed records' entries on disk (a little more than their encoding).
    var unsealedBytes: Int {
        self.runs.reduce(0) { $0 + $1.end - $1.offset }
    }

    /// Unacknowledged batches' keys, oldest first.
    mutating func keys() -> ArraySlice<BatchKey> {
        while self.orderStart < self.order.count, self.batches[self.order[self.orderStart]] == nil { self.orderStart += 1 }
        if self.orderStart > 1024, self.orderStart * 2 > self.order.count {
            self.order.removeFirst(self.orderStart)
            self.orderStart = 0
        }
        return self.order[self.orderStart...]
    }

    /// Reads the first `limit` unsealed records of `runs` from their segments.
    static func read(_ runs: ArraySlice<Run>, limit: Int, readers: inout SegmentReaders) throws -> [FeedbackRecord] {
        var records: [FeedbackRecord] = []
        for run in runs {
            guard records.count < limit else { break }
            let reader = try readers.reader(run.segment)
            var offset = run.offset
            var skip = run.skip
            var wanted = min(run.count, limit - records.count)
            var expected = run.firstNumber
            while wanted > 0 {
                let found: [(number: UInt64, record: FeedbackRecord)]
                let size: Int
                switch try reader.entry(at: offset) {
                case .entry(.record(let number, let record), let entrySize):
                    (found, size) = ([(number, record)], entrySize)
                case .entry(.captured(_, let numbered), let entrySize):
                    (found, size) = (numbered, entrySize)
                case .entry(_, let entrySize):
                    (found, size) = ([], entrySize)
                case .incomplete:
                    throw SpoolError(.io, "\(reader.path) ends inside the entry at byte \(offset), which holds unsealed records")
                case .corrupt(let reason):
                    throw SpoolError(.io, "\(reader.path) is damaged at byte \(offset) (\(reason)); the next start quarantines it")
                }
                let usable = found.dropFirst(skip).prefix(wanted)
                for (number, record) in usable {
                    // The index and the file must agree record for record, or a batch could
                    // hold the wrong records: stop rather than seal them.
                    guard number == expected else {
                        throw SpoolError(.io, "\(reader.path) holds record \(number) at byte \(offset) where the index expects \(expected)")
                    }
                    records.append(record)
                    expected += 1
                }
                wanted -= usable.count
                skip = max(0, skip - found.count)
                offset += size
            }
        }
        return records
    }

    /// `run` starting at the entry that holds its first record, with the records of earlier
    /// entries it skipped (after recovery took the front of a run) walked over.
    static func normalized(_ run: Run, reader: SegmentReader) throws -> Run {
        var run = run
        while run.skip > 0, let entry = try reader.recordCount(at: run.offset), entry.records <= run.skip {
            run.skip -= entry.records
            run.offset += entry.size
        }
        return run
    }

    /// Where `run` continues after its first `count` records: the entry holding the next
    /// record and how many records of that entry come before it.
    static func position(after count: Int, in run: Run, reader: SegmentReader) throws -> (offset: Int, skip: Int) {
        var offset = run.offset
        var skip = run.skip
        var remaining = count
        while remaining > 0 {
            guard let entry = try reader.recordCount(at: offset) else {
                throw SpoolError(.io, "\(reader.path) ends inside the entry at byte \(offset), which holds unsealed records")
            }
            let available = max(0, entry.records - skip)
            if remaining < available { return (offset, skip + remaining) }
            remaining -= available
            offset += entry.size
            skip = max(0, skip - entry.records)
        }
        return (offset, skip)
    }
}

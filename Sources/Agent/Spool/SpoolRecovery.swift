#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import Support
import NIOCore
import Wire
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads a spool folder's index back when the spool opens: every entry is read and
/// checked (records decoded, batches parsed), and only where things are is kept.
struct SpoolRecovery {
    let configuration: Spool.Configuration
    let logger: Logger

    var segmentsPath: String { self.configuration.directory + "/segments" }
    var quarantinePath: String { self.configuration.directory + "/quarantine" }

    func run() throws -> (Spool.State, Spool.Recovery) {
        do {
            try SecretFile.createDirectory(self.segmentsPath)
        } catch {
            throw SpoolError(.io, "cannot create the spool folder \(error)")
        }
        let ids: [UInt64]
        do {
            ids = try FileManager.default.contentsOfDirectory(atPath: self.segmentsPath).compactMap(SpoolFiles.segmentID).sorted()
        } catch {
            throw SpoolError(.io, "cannot read the spool folder \(self.segmentsPath): \(error)")
        }

        // An unfinished quarantine rewrite: the segments it would have replaced are all still here.
        unlink(self.segmentsPath + "/" + SpoolFiles.rewriteName)

        var state = Spool.State()
        var recovery = Spool.Recovery()
        var damaged: [UInt64] = []
        var superseded: [UInt64] = []
        var newestHasHeader = false
        // The origins of this node's own (`sealed`) batches, for reading `acknowledged`
        // entries, which name only a sequence: normally one.
        var ownOrigins: Set<UUID> = []
        for (index, id) in ids.enumerated() {
            let path = SpoolFiles.path(segment: id, in: self.segmentsPath)
            let reader = try SegmentReader(path: path, chunk: 1 << 20, fixedSize: true)
            let fileSize = reader.size ?? 0
            let isNewest = index == ids.count - 1
            var offset = 0
            var segment = Spool.Segment(bytes: fileSize)
            var skippedBytes = 0
            var damage: String?
            scan: while offset < fileSize {
                switch try reader.entry(at: offset) {
                case .entry(let entry, let size):
                    if isNewest, case .header = entry { newestHasHeader = true }
                    if case .base = entry {
                        // A rewrite after quarantine holds everything live: forget what came before.
                        superseded = ids.filter { $0 < id }
                        state = Spool.State()
                        damaged = []
                    }
                    Self.replay(entry, segment: id, offset: offset, size: size, into: &state, &segment, ownOrigins: &ownOrigins)
                    offset += size
                case .incomplete:
                    if !isNewest || damage != nil { damage = damage ?? "an entry is cut short at byte \(offset)" }
                    break scan
                case .corrupt(let reason):
                    // The newest segment's last entry, damaged: a write the crash tore.
                    if isNewest, damage == nil, try Self.isLastEntry(reader, at: offset, fileSize: fileSize) { break scan }
                    damage = damage ?? "\(reason) at byte \(offset)"
                    // Find the next whole entry (its checksum must match) and go on from
                    // there: one damaged entry costs that entry, not the rest of the segment.
                    guard let next = try Self.nextEntry(reader, after: offset, fileSize: fileSize) else {
                        skippedBytes += fileSize - offset
                        offset = fileSize
                        break scan
                    }
                    skippedBytes += next - offset
                    offset = next
                }
            }
            if let damage {
                self.logger.error(
                    "spool segment damaged; quarantined", metadata: ["segment": "\(path)", "reason": "\(damage)", "skippedBytes": "\(skippedBytes)"]
                )
                damaged.append(id)
            } else if offset < fileSize {
                // Torn tail: cut it off so new entries follow the last whole one.
                recovery.truncatedBytes += fileSize - offset
                self.logger.warning("spool: torn entry truncated", metadata: ["segment": "\(path)", "bytes": "\(fileSize - offset)"])
                guard truncate(path, off_t(offset)) == 0 else {
                    throw SpoolError(.io, "cannot truncate \(path): \(String(cString: strerror(errno)))")
                }
                segment.bytes = offset
            }
            state.segments[id] = segment
        }

        for id in superseded {
            unlink(SpoolFiles.path(segment: id, in: self.segmentsPath))
            state.segments[id] = nil
        }
        let remaining = ids.filter { !superseded.contains($0) }
        var readers = SegmentReaders(folder: self.segmentsPath, keepingOne: true)
        for index in state.index.runs.indices where state.index.runs[index].skip > 0 {
            let run = state.index.runs[index]
            state.index.runs[index] = try SpoolIndex.normalized(run, reader: readers.reader(run.segment))
        }
        // Arrival order is order on disk (a rewrite keeps it).
        state.index.order = state.index.batches.sorted { ($0.value.segment, $0.value.offset) < ($1.value.segment, $1.value.offset) }.map(\.key)
        if damaged.isEmpty {
            if let newest = remaining.last {
                state.activeID = newest
                state.activeFD = try SpoolFiles.openForAppend(segment: newest, in: self.segmentsPath)
                if !newestHasHeader {
                    // A crash between creating a segment and writing its header: write it now,
                    // or the sequence would be forgotten once the older segments are deleted.
                    var header = ByteBuffer()
                    SpoolEntry.header(nextSequence: state.nextSequence, nextRecordNumber: state.nextRecordNumber).write(into: &header)
                    try SpoolFiles.writeAll(state.activeFD, header, path: self.segmentsPath)
                    guard fsync(state.activeFD) == 0 else { throw SpoolError(.io, "fsync of spool segment \(newest) failed") }
                    state.segments[newest]?.bytes += header.readableBytes
                }
            } else {
                try self.startSegment(1, &state)
            }
        } else {
            recovery.quarantinedSegments = try self.quarantine(damaged, keeping: &state, all: remaining, readers: &readers)
        }
        state.written = UInt64(state.segments.values.reduce(0) { $0 + $1.bytes })
        state.durable = state.written
        return (state, recovery)
    }

    private static func replay(
        _ entry: SpoolEntry, segment: UInt64, offset: Int, size: Int, into state: inout Spool.State, _ current: inout Spool.Segment,
        ownOrigins: inout Set<UUID>
    ) {
        func leave(_ count: Int, from id: UInt64) {
            if id == segment { current.live -= count } else { state.segments[id]?.live -= count }
        }
        func add(_ batch: SpoolIndex.Batch, for key: BatchKey) {
            if let replaced = state.index.insert(batch, for: key) { leave(1, from: replaced.segment) }
            state.noteHeld(key)
            current.live += 1
        }
        func settle(_ key: BatchKey) {
            if let done = state.index.remove(key) { leave(1, from: done.segment) }
        }
        switch entry {
        case .header(let nextSequence, let nextRecordNumber):
            state.nextSequence = max(state.nextSequence, nextSequence)
            state.nextRecordNumber = max(state.nextRecordNumber, nextRecordNumber)
        case .record(let number, let record):
            state.index.appended(segment: segment, offset: offset, size: size, first: number, count: 1, oldestCapturedAt: record.capturedAt)
            state.nextRecordNumber = max(state.nextRecordNumber, number + 1)
            current.live += 1
        case .sealed(let firstNumber, let lastNumber, let batch):
            // Only the batch's own records leave the queue: any older record still unsealed
            // lost its seal (in a quarantined segment) and must be sealed again, not dropped.
            let (perSegment, oldest) = state.index.removeRecords(firstNumber, through: lastNumber)
            for (id, count) in perSegment { leave(count, from: id) }
            add(
                SpoolIndex.Batch(segment: segment, offset: offset, size: size, recordCount: Int(batch.header.recordCount), oldestCapturedAt: oldest),
                for: batch.key
            )
            ownOrigins.insert(batch.header.origin)
            state.nextSequence = max(state.nextSequence, batch.header.sequence + 1)
        case .forwarded(_, let batch):
            // Another node's sequence: this node's own numbering is not touched.
            add(
                SpoolIndex.Batch(
                    segment: segment, offset: offset, size: size, recordCount: Int(batch.header.recordCount), oldestCapturedAt: nil,
                    forwarded: true
                ),
                for: batch.key
            )
        case .settled(let key):
            state.noteHeld(key)
            settle(key)
        case .base:
            break
        case .captured(let cursor, let records):
            // Numbered consecutively when written (see Spool.append).
            state.index.appended(
                segment: segment, offset: offset, size: size, first: records.first?.number ?? 0, count: records.count,
                oldestCapturedAt: records.lazy.map(\.record.capturedAt).min() ?? .max
            )
            if let last = records.last { state.nextRecordNumber = max(state.nextRecordNumber, last.number + 1) }
            current.live += records.count
            state.cursors[cursor.source] = cursor
        case .cursor(let cursor):
            state.cursors[cursor.source] = cursor
        case .acknowledged(let sequence):
            // The batch's own entry may be gone with its segment; its number stays used.
            state.nextSequence = max(state.nextSequence, sequence + 1)
            for origin in ownOrigins {
                let key = BatchKey(origin: origin, sequence: sequence)
                if state.index.batches[key]?.forwarded == false { settle(key) }
            }
        }
    }

    /// The offset of the next readable entry after a damaged one at `offset`, if any.
    private static func nextEntry(_ reader: SegmentReader, after offset: Int, fileSize: Int) throws -> Int? {
        var candidate = offset + 1
        while candidate + SpoolEntry.prefixLength <= fileSize {
            if case .entry = try reader.entry(at: candidate) { return candidate }
            candidate += 1
        }
        return nil
    }

    /// Whether the entry at `offset` claims to reach exactly to the end, or past it.
    private static func isLastEntry(_ reader: SegmentReader, at offset: Int, fileSize: Int) throws -> Bool {
        guard fileSize - offset >= 4 else { return true }
        let length = try reader.read(at: offset, count: 4).reduce(0) { $0 << 8 | Int($1) }
        return offset + 8 + length >= fileSize
    }

    private func startSegment(_ id: UInt64, _ state: inout Spool.State) throws {
        let fd = try SpoolFiles.create(segment: id, in: self.segmentsPath)
        var header = ByteBuffer()
        SpoolEntry.header(nextSequence: state.nextSequence, nextRecordNumber: state.nextRecordNumber).write(into: &header)
        try SpoolFiles.writeAll(fd, header, path: self.segmentsPath)
        guard fsync(fd) == 0 else { throw SpoolError(.io, "fsync of a new spool segment failed") }
        state.activeID = id
        state.activeFD = fd
        state.segments[id] = Spool.Segment(bytes: header.readableBytes)
    }

    /// Rewrites everything still live, in order, into one fresh segment that supersedes
    /// every older one, keeping a copy of each damaged segment in `quarantine/`; then
    /// deletes the old segments. Live entries are copied through a bounded buffer, never
    /// held all at once.
    ///
    /// Crash-safe: the fresh segment is written under a temporary name and renamed into
    /// place only when complete and fsync'd. It starts with a `base` entry, so if a crash
    /// leaves the old segments beside it, the next recovery ignores and deletes them.
    private func quarantine(
        _ damaged: [UInt64], keeping state: inout Spool.State, all ids: [UInt64], readers: inout SegmentReaders
    ) throws -> [String] {
        try SecretFile.createDirectory(self.quarantinePath)
        let fresh = (ids.last ?? 0) + 1
        let temporary = self.segmentsPath + "/" + SpoolFiles.rewriteName
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SpoolError(.io, "cannot create \(temporary): \(String(cString: strerror(errno)))") }
        var index = SpoolIndex()
        var written = 0
        var buffer = ByteBuffer()
        func flush(_ force: Bool) throws {
            guard force || buffer.readableBytes >= 1 << 20 else { return }
            try SpoolFiles.writeAll(fd, buffer, path: self.segmentsPath)
            written += buffer.readableBytes
            buffer.clear()
        }
        var rewritten = 0
        do {
            SpoolEntry.base.write(into: &buffer)
            SpoolEntry.header(nextSequence: state.nextSequence, nextRecordNumber: state.nextRecordNumber).write(into: &buffer)
            for name in state.cursors.keys.sorted() {
                if let cursor = state.cursors[name] { SpoolEntry.cursor(cursor).write(into: &buffer) }
            }
            for key in state.index.order {
                guard let location = state.index.batches[key] else { continue }
                let offset = written + buffer.readableBytes
                switch try readers.reader(location.segment).entry(at: location.offset) {
                case .entry(.sealed(_, _, let batch), _) where !location.forwarded:
                    // Its records are already out of the queue; an empty range consumes nothing on replay.
                    SpoolEntry.sealed(firstRecordNumber: 1, lastRecordNumber: 0, batch).write(into: &buffer)
                case .entry(.forwarded(let path, let batch), _) where location.forwarded:
                    SpoolEntry.forwarded(path: path, batch).write(into: &buffer)
                default:
                    throw SpoolError(.io, "batch \(key) cannot be read back from segment \(location.segment) for the rewrite")
                }
                var moved = location
                moved.segment = fresh
                moved.offset = offset
                moved.size = written + buffer.readableBytes - offset
                index.insert(moved, for: key)
                index.order.append(key)
                try flush(false)
            }
            for var run in state.index.runs {
                while run.count > 0 {
                    let take = min(run.count, 1_000)
                    let records = try SpoolIndex.read([run], limit: take, readers: &readers)
                    for (position, record) in records.enumerated() {
                        let offset = written + buffer.readableBytes
                        let number = run.firstNumber + UInt64(position)
                        SpoolEntry.record(number: number, record).write(into: &buffer)
                        index.appended(
                            segment: fresh, offset: offset, size: written + buffer.readableBytes - offset, first: number, count: 1,
                            oldestCapturedAt: record.capturedAt
                        )
                    }
                    rewritten += records.count
                    try flush(false)
                    let rest = try SpoolIndex.position(after: take, in: run, reader: readers.reader(run.segment))
                    (run.offset, run.skip) = rest
                    run.firstNumber += UInt64(take)
                    run.count -= take
                }
            }
            try flush(true)
            guard fsync(fd) == 0 else { throw SpoolError(.io, "fsync of the rewritten spool segment failed") }
        } catch {
            close(fd)
            unlink(temporary)
            throw error
        }
        var moved: [String] = []
        let stamp = Int(Date().timeIntervalSince1970)
        for id in damaged {
            let path = SpoolFiles.path(segment: id, in: self.segmentsPath)
            let target = self.quarantinePath + "/" + SpoolFiles.name(segment: id) + ".\(stamp)"
            // A link, not a move: until the rewrite is in place, the segment must stay.
            guard link(path, target) == 0 || errno == EEXIST else {
                close(fd)
                throw SpoolError(.io, "cannot copy \(path) to \(target): \(String(cString: strerror(errno)))")
            }
            moved.append(target)
        }
        let final = SpoolFiles.path(segment: fresh, in: self.segmentsPath)
        guard rename(temporary, final) == 0 else {
            close(fd)
            throw SpoolError(.io, "cannot rename \(temporary) to \(final): \(String(cString: strerror(errno)))")
        }
        SpoolFiles.syncFolder(self.segmentsPath)
        for id in ids { unlink(SpoolFiles.path(segment: id, in: self.segmentsPath)) }
        state.index = index
        state.segments = [fresh: Spool.Segment(bytes: written, live: index.batches.count + rewritten)]
        state.activeID = fresh
        state.activeFD = fd
        return moved
    }
}

/// Closes a file descriptor (a free function: `Spool` has a `close()` of its own).
func closeFile(_ fd: Int32) {
    close(fd)
}

/// File helpers for segments: `segments/0000000000000001.seg`.
enum SpoolFiles {
    static func name(segment id: UInt64) -> String {
        let digits = String(id)
        return String(repeating: "0", count: max(0, 16 - digits.count)) + digits + ".seg"
    }

    static func path(segment id: UInt64, in folder: String) -> String {
        folder + "/" + Self.name(segment: id)
    }

    static func segmentID(_ fileName: String) -> UInt64? {
        guard fileName.hasSuffix(".seg") else { return nil }
        return UInt64(fileName.dropLast(4))
    }

    static func create(segment id: UInt64, in folder: String) throws -> Int32 {
        let path = Self.path(segment: id, in: folder)
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SpoolError(.io, "cannot create \(path): \(String(cString: strerror(errno)))") }
        // The new file's name must survive a crash too.
        Self.syncFolder(folder)
        return fd
    }

    /// The name a quarantine rewrite is written under until it is complete.
    static let rewriteName = "rewrite.tmp"

    /// fsyncs a folder, so names created or renamed in it survive a crash.
    static func syncFolder(_ folder: String) {
        let dir = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dir >= 0 {
            fsync(dir)
            close(dir)
        }
    }

    static func openForAppend(segment id: UInt64, in folder: String) throws -> Int32 {
        let path = Self.path(segment: id, in: folder)
        let fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard fd >= 0 else { throw SpoolError(.io, "cannot open \(path): \(String(cString: strerror(errno)))") }
        return fd
    }

    static func writeAll(_ fd: Int32, _ buffer: ByteBuffer, path: String) throws {
        try buffer.withUnsafeReadableBytes { raw in
            var done = 0
            while done < raw.count {
                let n = write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0, errno == EINTR { continue }
                guard n > 0 else {
                    throw SpoolError(.io, "cannot write to the spool in \(path): \(String(cString: strerror(errno)))")
                }
                done += n
            }
        }
    }
}

/// A spool failure, with what went wrong.
public struct SpoolError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of failure.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        let name: String
        /// The quota is reached; nothing was written. Intake answers 503.
        public static let full = Code(name: "full")
        /// A record failed validation; nothing was written. Intake answers 400.
        public static let invalidRecord = Code(name: "invalidRecord")
        /// A batch was recorded out of sequence (a bug in the caller).
        public static let outOfOrder = Code(name: "outOfOrder")
        /// The spool is closed.
        public static let closed = Code(name: "closed")
        /// Another process has the spool open.
        public static let locked = Code(name: "locked")
        /// A batch to hold for another node that the spool cannot take (too many hops, too
        /// large); nothing was written.
        public static let invalidBatch = Code(name: "invalidBatch")
        /// The disk refused a read, write or fsync.
        public static let io = Code(name: "io")
        /// The code's name.
        public var description: String { self.name }
    }

    /// The kind of failure.
    public var code: Code
    /// What went wrong, in words.
    public var message: String

    init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// "spool CODE: MESSAGE".
    public var description: String { "spool \(self.code): \(self.message)" }
}

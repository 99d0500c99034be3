import Foundation
import Logging
import Support
import NIOCore
import Wire

/// Reads a spool folder back into memory when the spool opens.
struct SpoolRecovery {
    let configuration: Spool.Configuration
    let logger: Logger

    var segmentsPath: String { self.configuration.directory + "/segments" }
    var quarantinePath: String { self.configuration.directory + "/quarantine" }

    func run() throws -> (Spool.State, Spool.Recovery) {
        let manager = FileManager.default
        do {
            try SecretFile.createDirectory(self.segmentsPath)
        } catch {
            throw SpoolError(.io, "cannot create the spool folder \(error)")
        }
        let ids: [UInt64]
        do {
            ids = try manager.contentsOfDirectory(atPath: self.segmentsPath).compactMap(SpoolFiles.segmentID).sorted()
        } catch {
            throw SpoolError(.io, "cannot read the spool folder \(self.segmentsPath): \(error.localizedDescription)")
        }

        // An unfinished quarantine rewrite: the segments it would have replaced are all still here.
        unlink(self.segmentsPath + "/" + SpoolFiles.rewriteName)

        var state = Spool.State()
        var recovery = Spool.Recovery()
        var damaged: [UInt64] = []
        var superseded: [UInt64] = []
        var newestHasHeader = false
        for (index, id) in ids.enumerated() {
            let path = SpoolFiles.path(segment: id, in: self.segmentsPath)
            guard let data = manager.contents(atPath: path) else {
                throw SpoolError(.io, "cannot read spool segment \(path)")
            }
            let isNewest = index == ids.count - 1
            var offset = 0
            var segment = Spool.Segment(bytes: data.count)
            var skippedBytes = 0
            let damage: String? = data.withUnsafeBytes { raw in
                var damage: String?
                while offset < raw.count {
                    switch SpoolEntry.read(from: UnsafeRawBufferPointer(rebasing: raw[offset...])) {
                    case .entry(let entry, let size):
                        if isNewest, case .header = entry { newestHasHeader = true }
                        if case .base = entry {
                            // A rewrite after quarantine holds everything live: forget what came before.
                            superseded = ids.filter { $0 < id }
                            state = Spool.State()
                            damaged = []
                        }
                        Self.replay(entry, segment: id, into: &state, &segment)
                        offset += size
                    case .incomplete:
                        return isNewest && damage == nil ? nil : (damage ?? "an entry is cut short at byte \(offset)")
                    case .corrupt(let reason):
                        // The newest segment's last entry, damaged: a write the crash tore.
                        if isNewest, damage == nil, Self.isLastEntry(raw, at: offset) { return nil }
                        damage = damage ?? "\(reason) at byte \(offset)"
                        // Find the next whole entry (its checksum must match) and go on from
                        // there: one damaged entry costs that entry, not the rest of the segment.
                        guard let next = Self.nextEntry(raw, after: offset) else {
                            skippedBytes += raw.count - offset
                            return damage
                        }
                        skippedBytes += next - offset
                        offset = next
                    }
                }
                return damage
            }
            if let damage {
                self.logger.error(
                    "spool segment damaged; quarantined", metadata: ["segment": "\(path)", "reason": "\(damage)", "skippedBytes": "\(skippedBytes)"]
                )
                damaged.append(id)
            } else if offset < data.count {
                // Torn tail: cut it off so new entries follow the last whole one.
                recovery.truncatedBytes += data.count - offset
                self.logger.warning("spool: torn entry truncated", metadata: ["segment": "\(path)", "bytes": "\(data.count - offset)"])
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
            recovery.quarantinedSegments = try self.quarantine(damaged, keeping: &state, all: remaining)
        }
        state.order = CircularBuffer(state.unacknowledged.keys.sorted())
        state.written = UInt64(state.segments.values.reduce(0) { $0 + $1.bytes })
        state.durable = state.written
        return (state, recovery)
    }

    private static func replay(_ entry: SpoolEntry, segment: UInt64, into state: inout Spool.State, _ current: inout Spool.Segment) {
        switch entry {
        case .header(let nextSequence, let nextRecordNumber):
            state.nextSequence = max(state.nextSequence, nextSequence)
            state.nextRecordNumber = max(state.nextRecordNumber, nextRecordNumber)
        case .record(let number, let record):
            state.unsealed.append(Spool.Pending(number: number, segment: segment, record: record))
            state.nextRecordNumber = max(state.nextRecordNumber, number + 1)
            current.live += 1
        case .sealed(let firstNumber, let lastNumber, let batch):
            // Only the batch's own records leave the queue: any older record still unsealed
            // lost its seal (in a quarantined segment) and must be sealed again, not dropped.
            var older: [Spool.Pending] = []
            while let first = state.unsealed.first, first.number < firstNumber {
                older.append(state.unsealed.removeFirst())
            }
            var oldest = Int64.max
            while let first = state.unsealed.first, first.number <= lastNumber {
                state.unsealed.removeFirst()
                oldest = min(oldest, first.record.capturedAt)
                if first.segment == segment { current.live -= 1 } else { state.segments[first.segment]?.live -= 1 }
            }
            for pending in older.reversed() { state.unsealed.prepend(pending) }
            let sequence = batch.header.sequence
            state.unacknowledged[sequence] = Spool.Unacknowledged(
                segment: segment, batch: batch, oldestCapturedAt: oldest == .max ? nil : oldest
            )
            state.nextSequence = max(state.nextSequence, sequence + 1)
            current.live += 1
        case .base:
            break
        case .captured(let cursor, let records):
            for (number, record) in records {
                state.unsealed.append(Spool.Pending(number: number, segment: segment, record: record))
                state.nextRecordNumber = max(state.nextRecordNumber, number + 1)
                current.live += 1
            }
            state.cursors[cursor.source] = cursor
        case .cursor(let cursor):
            state.cursors[cursor.source] = cursor
        case .acknowledged(let sequence):
            // The batch's own entry may be gone with its segment; its number stays used.
            state.nextSequence = max(state.nextSequence, sequence + 1)
            if let done = state.unacknowledged.removeValue(forKey: sequence) {
                if done.segment == segment { current.live -= 1 } else { state.segments[done.segment]?.live -= 1 }
            }
        }
    }

    /// The offset of the next readable entry after a damaged one at `offset`, if any.
    private static func nextEntry(_ raw: UnsafeRawBufferPointer, after offset: Int) -> Int? {
        var candidate = offset + 1
        while candidate + SpoolEntry.prefixLength <= raw.count {
            if case .entry = SpoolEntry.read(from: UnsafeRawBufferPointer(rebasing: raw[candidate...])) { return candidate }
            candidate += 1
        }
        return nil
    }

    /// Whether the entry at `offset` claims to reach exactly to the end, or past it.
    private static func isLastEntry(_ raw: UnsafeRawBufferPointer, at offset: Int) -> Bool {
        guard raw.count - offset >= 4 else { return true }
        let length = Int(raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self).bigEndian)
        return offset + 8 + length >= raw.count
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
    /// deletes the old segments.
    ///
    /// Crash-safe: the fresh segment is written under a temporary name and renamed into
    /// place only when complete and fsync'd. It starts with a `base` entry, so if a crash
    /// leaves the old segments beside it, the next recovery ignores and deletes them.
    private func quarantine(_ damaged: [UInt64], keeping state: inout Spool.State, all ids: [UInt64]) throws -> [String] {
        try SecretFile.createDirectory(self.quarantinePath)
        let fresh = (ids.last ?? 0) + 1
        let temporary = self.segmentsPath + "/" + SpoolFiles.rewriteName
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SpoolError(.io, "cannot create \(temporary): \(String(cString: strerror(errno)))") }
        var buffer = ByteBuffer()
        SpoolEntry.base.write(into: &buffer)
        SpoolEntry.header(nextSequence: state.nextSequence, nextRecordNumber: state.nextRecordNumber).write(into: &buffer)
        for name in state.cursors.keys.sorted() {
            if let cursor = state.cursors[name] { SpoolEntry.cursor(cursor).write(into: &buffer) }
        }
        for sequence in state.unacknowledged.keys.sorted() {
            guard let entry = state.unacknowledged[sequence] else { continue }
            // Its records are already out of the queue; an empty range consumes nothing on replay.
            SpoolEntry.sealed(firstRecordNumber: 1, lastRecordNumber: 0, entry.batch).write(into: &buffer)
            state.unacknowledged[sequence]?.segment = fresh
        }
        for index in state.unsealed.indices {
            SpoolEntry.record(number: state.unsealed[index].number, state.unsealed[index].record).write(into: &buffer)
            state.unsealed[index].segment = fresh
        }
        do {
            try SpoolFiles.writeAll(fd, buffer, path: self.segmentsPath)
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
        state.segments = [fresh: Spool.Segment(bytes: buffer.readableBytes, live: state.unacknowledged.count + state.unsealed.count)]
        state.activeID = fresh
        state.activeFD = fd
        return moved
    }
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

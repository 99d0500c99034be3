#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Follows a growing text file by path, line by line, from a saved ``SourceCursor``.
///
/// - Only complete lines are returned; a partial last line waits for its newline.
/// - Rotation by rename: when the path names a new file, the old one (still open) is read
///   to its end first — a last line without a newline included, once the old file has
///   stopped growing — then the new file from its start.
/// - Rotation by copy-truncate: when the file is shorter than the cursor, reading starts
///   again at its beginning.
/// - Started with a cursor for a file that is no longer at the path (rotated while the
///   agent was down), the old file is looked for by inode in the same folder and finished
///   first.
/// - A missing file is waited for.
/// - A UTF-8 byte-order mark at the start of a file is not part of its first line.
/// - A line longer than ``maxLineBytes`` is refused whole (``Chunk/overlong``): none of it
///   becomes a line, and its line number is counted, so the lines after it keep theirs. Its
///   bytes are dropped as they are read, so memory stays bounded; until its newline comes,
///   the cursor stays at its start (an agent restarted meanwhile drops it again).
///
/// Not thread-safe: one task reads.
public final class FileTailer {
    /// Complete lines and the cursor after the last of them.
    public struct Chunk: Sendable {
        /// The lines, without their newline, each with its 1-based line number in its file.
        public var lines: [(text: Substring, number: UInt64)]
        /// Where reading goes on after these lines.
        public var cursor: SourceCursor
        /// The file the lines came from (its path when opened).
        public var path: String
        /// The byte offset after each line (its newline included).
        public var ends: [UInt64] = []
        /// The cursor before the first of these lines.
        public var start: SourceCursor? = nil
        /// Lines refused whole for being longer than ``FileTailer/maxLineBytes``: their line
        /// numbers and lengths in bytes (without the newline). They are not in ``lines``.
        public var overlong: [(number: UInt64, length: UInt64)] = []

        /// The cursor after line `index` of ``lines``: where to resume when only the lines
        /// up to it were taken.
        public func cursor(through index: Int) -> SourceCursor {
            if index < 0, let start = self.start { return start }
            var cursor = self.cursor
            cursor.offset = self.ends[index]
            cursor.line = self.lines[index].number
            return cursor
        }
    }

    /// The followed path.
    public let path: String
    /// The longest line taken, in bytes without its newline (and its `\r`).
    public let maxLineBytes: Int
    private let name: String
    private let maxChunkBytes: Int
    /// Set while dropping a line longer than ``maxLineBytes``: its line number.
    private var overlongNumber: UInt64?
    /// Bytes of that line already dropped; they lie between the cursor and `pending`.
    private var dropped: UInt64 = 0
    /// Whether the last byte dropped was a `\r` (its line's, if a `\n` comes next).
    private var droppedEndsInReturn = false
    private var fd: Int32 = -1
    private var openPath: String
    private var cursor: SourceCursor?
    private var pending: [UInt8] = []
    private var rotatedQuietPolls = 0
    private var lostFile: SourceCursor?

    /// Follows `path` for the source `name`, resuming at `cursor` when it names a file.
    ///
    /// - Parameters:
    ///   - maxLineBytes: the longest line taken (1 MiB by default); longer ones are refused
    ///     whole.
    ///   - maxChunkBytes: the most read at one poll.
    public init(path: String, name: String, cursor: SourceCursor?, maxLineBytes: Int = FileTailer.defaultMaxLineBytes, maxChunkBytes: Int = 1 << 20) {
        self.path = path
        self.openPath = path
        self.name = name
        self.cursor = cursor
        self.maxLineBytes = maxLineBytes
        self.maxChunkBytes = maxChunkBytes
    }

    /// The UTF-8 byte-order mark some editors and spreadsheets write at the start of a file.
    public static let byteOrderMark: [UInt8] = [0xEF, 0xBB, 0xBF]
    /// The longest line taken unless told otherwise: 1 MiB.
    public static let defaultMaxLineBytes = 1 << 20

    deinit {
        if self.fd >= 0 { close(self.fd) }
    }

    /// Reads what is there now: complete lines (possibly none) and the cursor after them;
    /// nil while the file does not exist yet.
    ///
    /// - Throws: when the file exists but cannot be read.
    public func poll() throws -> Chunk? {
        if self.fd < 0, !(try self.open()) { return nil }
        var status = stat()
        guard fstat(self.fd, &status) == 0, var cursor = self.cursor else { return nil }
        if UInt64(status.st_size) < cursor.offset + self.dropped {
            // Copy-truncate: the file was emptied under us; what it holds now is new.
            cursor.offset = 0
            cursor.line = 0
            self.pending = []
            self.overlongNumber = nil
            self.dropped = 0
        }
        var lines: [(text: Substring, number: UInt64)] = []
        var ends: [UInt64] = []
        var overlong: [(number: UInt64, length: UInt64)] = []
        let before = cursor
        // The file offset of pending[0]: after the cursor, and what was dropped of a long line.
        let origin = cursor.offset + self.dropped
        let data = try self.read(from: origin + UInt64(self.pending.count))
        self.pending += data
        var start = 0
        var taken = 0
        for index in self.pending.indices where self.pending[index] == UInt8(ascii: "\n") {
            var end = index
            if end > start, self.pending[end - 1] == UInt8(ascii: "\r") { end -= 1 }
            if let number = self.overlongNumber {
                // The end of a line refused for its length: counted, none of it taken.
                overlong.append((number, self.dropped + UInt64(end - start) - (end == start && self.droppedEndsInReturn ? 1 : 0)))
                cursor.line = number
                self.overlongNumber = nil
            } else {
                cursor.line += 1
                var textStart = start
                if origin == 0, start == 0, self.pending.starts(with: Self.byteOrderMark) { textStart = Self.byteOrderMark.count }
                if end - textStart > self.maxLineBytes {
                    overlong.append((cursor.line, UInt64(end - textStart)))
                } else {
                    lines.append((Substring(decoding: self.pending[textStart..<max(textStart, end)], as: UTF8.self), cursor.line))
                    ends.append(origin + UInt64(index + 1))
                }
            }
            start = index + 1
            taken = start
        }
        if taken > 0 {
            cursor.offset = origin + UInt64(taken)
            self.dropped = 0
        }
        // As for a finished line: its `\r` and a leading byte-order mark are not counted.
        let allowance = 1 + (origin == 0 && taken == 0 && self.pending.starts(with: Self.byteOrderMark) ? Self.byteOrderMark.count : 0)
        if self.pending.count - taken > self.maxLineBytes + allowance || (self.overlongNumber != nil && self.pending.count > taken) {
            // No newline yet within the limit: the line is refused; drop what is read of it
            // (the cursor stays at its start) and the rest up to its newline as it comes.
            if self.overlongNumber == nil { self.overlongNumber = cursor.line + 1 }
            self.dropped += UInt64(self.pending.count - taken)
            self.droppedEndsInReturn = self.pending.last == UInt8(ascii: "\r")
            self.pending.removeSubrange(taken...)
        }
        var rotated = false
        if data.isEmpty, self.pathNamesAnotherFile(than: status) {
            // Rotated by rename: the old file is done once it stops growing for a poll.
            self.rotatedQuietPolls += 1
            if self.rotatedQuietPolls >= 2 {
                // Its last line, which has no newline.
                if let number = self.overlongNumber {
                    overlong.append((number, self.dropped + UInt64(self.pending.count - taken)))
                    cursor.line = number
                } else if taken < self.pending.count {
                    cursor.line += 1
                    var textStart = taken
                    if origin == 0, taken == 0, self.pending.starts(with: Self.byteOrderMark) { textStart = Self.byteOrderMark.count }
                    if self.pending.count - textStart > self.maxLineBytes {
                        overlong.append((cursor.line, UInt64(self.pending.count - textStart)))
                    } else {
                        lines.append((Substring(decoding: self.pending[min(textStart, self.pending.count)...], as: UTF8.self), cursor.line))
                        ends.append(origin + UInt64(self.pending.count))
                    }
                }
                cursor.offset = origin + UInt64(self.pending.count)
                taken = self.pending.count
                rotated = true
            }
        } else {
            self.rotatedQuietPolls = 0
        }
        self.pending.removeFirst(taken)
        self.cursor = cursor
        let chunk = Chunk(lines: lines, cursor: cursor, path: self.openPath, ends: ends, start: before, overlong: overlong)
        if rotated {
            close(self.fd)
            self.fd = -1
            self.cursor = nil
            self.pending = []
            self.openPath = self.path
            self.overlongNumber = nil
            self.dropped = 0
        }
        return chunk
    }

    /// The saved cursor whose file was gone when the tailer opened the path (rotated away
    /// and deleted or compressed while no tailer ran): lines written to it after the cursor
    /// were not read. Returned once, then nil.
    public func takeLostFile() -> SourceCursor? {
        defer { self.lostFile = nil }
        return self.lostFile
    }

    /// The cursor after everything returned so far.
    public var position: SourceCursor? { self.cursor }

    /// The file offset read up to: past the cursor while a line is pending or being dropped.
    /// A poll that returns nothing new but moved this is still making progress.
    public var readOffset: UInt64 { (self.cursor?.offset ?? 0) + self.dropped + UInt64(self.pending.count) }

    private func open() throws -> Bool {
        if let saved = self.cursor, let old = self.findFile(device: saved.device, inode: saved.inode), old != self.path {
            // Rotated while we were away: finish the old file first.
            self.fd = systemOpen(old, O_RDONLY | O_CLOEXEC)
            if self.fd >= 0 {
                self.openPath = old
                return true
            }
        }
        let fd = systemOpen(self.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return false }
            throw SourceError("cannot open \(self.path): \(String(cString: strerror(errno)))")
        }
        var status = stat()
        fstat(fd, &status)
        let device = UInt64(status.st_dev)
        let inode = UInt64(status.st_ino)
        if let saved = self.cursor, saved.device == device, saved.inode == inode {
            // The same file: go on where we stopped.
        } else {
            // A saved cursor naming neither this file nor one beside it: its file is gone.
            self.lostFile = self.cursor
            self.cursor = SourceCursor(source: self.name, device: device, inode: inode, offset: 0, line: 0)
        }
        self.fd = fd
        self.openPath = self.path
        return true
    }

    private func read(from offset: UInt64) throws -> [UInt8] {
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var position = off_t(offset)
        while result.count < self.maxChunkBytes {
            let want = min(buffer.count, self.maxChunkBytes - result.count)
            let count = buffer.withUnsafeMutableBytes { pread(self.fd, $0.baseAddress, want, position) }
            if count < 0, errno == EINTR { continue }
            guard count >= 0 else { throw SourceError("cannot read \(self.openPath): \(String(cString: strerror(errno)))") }
            if count == 0 { break }
            result += buffer[0..<count]
            position += off_t(count)
        }
        return result
    }

    private func pathNamesAnotherFile(than status: stat) -> Bool {
        var current = stat()
        guard stat(self.path, &current) == 0 else { return self.openPath == self.path ? false : true }
        return current.st_ino != status.st_ino || current.st_dev != status.st_dev
    }

    private func findFile(device: UInt64, inode: UInt64) -> String? {
        var current = stat()
        if stat(self.path, &current) == 0, UInt64(current.st_dev) == device, UInt64(current.st_ino) == inode { return self.path }
        let folder = URL(fileURLWithPath: self.path).deletingLastPathComponent().path
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return nil }
        for name in names.sorted() {
            var status = stat()
            let candidate = folder + "/" + name
            if stat(candidate, &status) == 0, UInt64(status.st_dev) == device, UInt64(status.st_ino) == inode { return candidate }
        }
        return nil
    }
}

/// A source could not read its input or its configuration is wrong.
public struct SourceError: Error, Sendable, CustomStringConvertible {
    /// What went wrong.
    public var description: String

    /// Creates an error saying what went wrong.
    public init(_ description: String) {
        self.description = description
    }
}

/// The C library's open(2); inside ``FileTailer`` the name means its own method.
private func systemOpen(_ path: String, _ flags: Int32) -> Int32 {
    open(path, flags)
}

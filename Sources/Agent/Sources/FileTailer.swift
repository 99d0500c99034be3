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
    private let name: String
    private let maxChunkBytes: Int
    private var fd: Int32 = -1
    private var openPath: String
    private var cursor: SourceCursor?
    private var pending: [UInt8] = []
    private var rotatedQuietPolls = 0
    private var lostFile: SourceCursor?

    /// Follows `path` for the source `name`, resuming at `cursor` when it names a file.
    public init(path: String, name: String, cursor: SourceCursor?, maxChunkBytes: Int = 1 << 20) {
        self.path = path
        self.openPath = path
        self.name = name
        self.cursor = cursor
        self.maxChunkBytes = maxChunkBytes
    }

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
        if UInt64(status.st_size) < cursor.offset {
            // Copy-truncate: the file was emptied under us; what it holds now is new.
            cursor.offset = 0
            cursor.line = 0
            self.pending = []
        }
        var lines: [(text: Substring, number: UInt64)] = []
        var ends: [UInt64] = []
        let base = cursor.offset
        let before = cursor
        let data = try self.read(from: cursor.offset + UInt64(self.pending.count))
        self.pending += data
        var start = 0
        var taken = 0
        for index in self.pending.indices where self.pending[index] == UInt8(ascii: "\n") {
            cursor.line += 1
            var end = index
            if end > start, self.pending[end - 1] == UInt8(ascii: "\r") { end -= 1 }
            lines.append((Substring(decoding: self.pending[start..<end], as: UTF8.self), cursor.line))
            ends.append(base + UInt64(index + 1))
            start = index + 1
            taken = start
        }
        if taken == 0, self.pending.count >= self.maxChunkBytes {
            // A "line" this long is not one: hand it over (it will be refused as bad) rather than grow.
            cursor.line += 1
            lines.append((Substring(decoding: self.pending, as: UTF8.self), cursor.line))
            ends.append(base + UInt64(self.pending.count))
            taken = self.pending.count
        }
        var rotated = false
        if data.isEmpty, self.pathNamesAnotherFile(than: status) {
            // Rotated by rename: the old file is done once it stops growing for a poll.
            self.rotatedQuietPolls += 1
            if self.rotatedQuietPolls >= 2 {
                if taken < self.pending.count {
                    cursor.line += 1
                    lines.append((Substring(decoding: self.pending[taken...], as: UTF8.self), cursor.line))
                    ends.append(base + UInt64(self.pending.count))
                    taken = self.pending.count
                }
                rotated = true
            }
        } else {
            self.rotatedQuietPolls = 0
        }
        cursor.offset += UInt64(taken)
        self.pending.removeFirst(taken)
        self.cursor = cursor
        let chunk = Chunk(lines: lines, cursor: cursor, path: self.openPath, ends: ends, start: before)
        if rotated {
            close(self.fd)
            self.fd = -1
            self.cursor = nil
            self.pending = []
            self.openPath = self.path
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
            let count = buffer.withUnsafeMutableBytes { pread(self.fd, $0.baseAddress, $0.count, position) }
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

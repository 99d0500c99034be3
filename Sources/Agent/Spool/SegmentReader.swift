#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads the entries of one segment file by offset, through a window of the file held in
/// memory: the spool keeps only where entries are, and reads them back through this when
/// records are sealed, batches sent, or a segment recovered.
///
/// The window grows to the largest entry asked for (at most one entry past
/// ``SpoolEntry/maxBodyLength``), so memory does not depend on the segment's size.
final class SegmentReader {
    /// The path, for error messages.
    let path: String
    private let fd: Int32
    private var window: [UInt8] = []
    private var windowStart = 0
    /// Bytes read per refill when the caller needs fewer: sequential reads cost one
    /// `pread` per chunk, not one per entry.
    private let chunk: Int
    /// Where the file ends, when opened with `fixedSize` (recovery): nothing past it is read.
    let size: Int?

    /// Opens `path` for reading. With `fixedSize` (a file nothing writes to while it is
    /// read: recovery), its size is taken once, and nothing past it is ever read: a damaged
    /// length claiming more is answered at once.
    ///
    /// - Throws: ``SpoolError`` `io` when the file cannot be opened.
    init(path: String, chunk: Int = 256 << 10, fixedSize: Bool = false) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SpoolError(.io, "cannot open \(path): \(String(cString: strerror(errno)))") }
        self.fd = fd
        self.path = path
        self.chunk = chunk
        var info = stat()
        if fixedSize, fstat(fd, &info) != 0 {
            close(fd)
            throw SpoolError(.io, "cannot read the size of \(path): \(String(cString: strerror(errno)))")
        }
        self.size = fixedSize ? Int(info.st_size) : nil
    }

    deinit {
        close(self.fd)
    }

    /// Asks the kernel to start reading `count` bytes at `offset` into the page cache, so a
    /// later read of them does not wait for the disk (read-ahead while batches are in flight).
    func prefetch(at offset: Int, count: Int) {
        #if os(Linux)
        _ = posix_fadvise(self.fd, off_t(offset), off_t(count), POSIX_FADV_WILLNEED)
        #endif
    }

    /// The entry at `offset`, checked against its checksum and parsed.
    func entry(at offset: Int) throws -> SpoolEntry.ReadResult {
        try self.withEntryBytes(at: offset) { SpoolEntry.read(from: $0) }
    }

    /// How many records the entry at `offset` holds (a `record` entry one, a `captured`
    /// entry its count, any other none) and its size on disk, from its header alone. Nil at
    /// the end of the file or where no whole entry is.
    func recordCount(at offset: Int) throws -> (records: Int, size: Int)? {
        guard try self.fill(offset, SpoolEntry.prefixLength) else { return nil }
        let (length, kind) = self.bytes(at: offset, SpoolEntry.prefixLength) { raw in
            (Int(raw.loadUnaligned(fromByteOffset: 0, as: UInt32.self).bigEndian), raw[8])
        }
        guard length >= 1, length <= SpoolEntry.maxBodyLength + 1 else { return nil }
        switch SpoolEntry.Kind(rawValue: kind) {
        case .record:
            return (1, 8 + length)
        case .captured:
            // type, cursor name length, name, four u64, then the u32 count.
            guard try self.fill(offset, 10) else { return nil }
            let nameLength = self.bytes(at: offset + 9, 1) { Int($0[0]) }
            let countAt = offset + 10 + nameLength + 32
            guard countAt + 4 <= offset + 8 + length, try self.fill(countAt, 4) else { return nil }
            let count = self.bytes(at: countAt, 4) { Int($0.loadUnaligned(as: UInt32.self).bigEndian) }
            return (count, 8 + length)
        default:
            return (0, 8 + length)
        }
    }

    /// Calls `body` with the bytes from `offset` to the end of the entry there (or to the
    /// end of the file, when the entry is cut short or its length is impossible).
    func withEntryBytes<Result>(at offset: Int, _ body: (UnsafeRawBufferPointer) -> Result) throws -> Result {
        _ = try self.fill(offset, SpoolEntry.prefixLength)
        var need = SpoolEntry.prefixLength
        if self.available(offset) >= 4 {
            let length = self.bytes(at: offset, 4) { Int($0.loadUnaligned(as: UInt32.self).bigEndian) }
            if length >= 1, length <= SpoolEntry.maxBodyLength + 1 { need = 8 + length }
        }
        _ = try self.fill(offset, need)
        return self.bytes(at: offset, min(need, self.available(offset)), body)
    }

    /// Exactly `count` bytes at `offset`.
    ///
    /// - Throws: ``SpoolError`` `io` when the file is shorter or cannot be read.
    func read(at offset: Int, count: Int) throws -> [UInt8] {
        guard try self.fill(offset, count) else {
            throw SpoolError(.io, "\(self.path) ends before byte \(offset + count)")
        }
        return self.bytes(at: offset, count) { Array($0) }
    }

    /// Bytes of the window from `offset` on (0 when `offset` is outside it).
    private func available(_ offset: Int) -> Int {
        guard offset >= self.windowStart, offset <= self.windowStart + self.window.count else { return 0 }
        return self.windowStart + self.window.count - offset
    }

    private func bytes<Result>(at offset: Int, _ count: Int, _ body: (UnsafeRawBufferPointer) -> Result) -> Result {
        self.window.withUnsafeBytes { raw in
            let start = offset - self.windowStart
            return body(UnsafeRawBufferPointer(rebasing: raw[start..<(start + count)]))
        }
    }

    /// Makes the window hold `count` bytes at `offset` if the file has them; false when it
    /// ends first (then the window holds what there is).
    private func fill(_ offset: Int, _ count: Int) throws -> Bool {
        if self.available(offset) >= count { return true }
        if let end = self.size, offset + count > end {
            // Past the end: read what there is (the caller sees an incomplete entry).
            guard self.available(offset) < end - offset else { return false }
        }
        // A large read (a long entry, or a damaged length during a scan) takes a chunk more,
        // so the scan's next offsets are served from the same window.
        let size = min(count > self.chunk ? count + self.chunk : self.chunk, max(0, (self.size ?? .max) - offset))
        var window = [UInt8](repeating: 0, count: size)
        var done = 0
        try window.withUnsafeMutableBytes { raw in
            while done < size {
                let n = pread(self.fd, raw.baseAddress! + done, size - done, off_t(offset + done))
                if n < 0, errno == EINTR { continue }
                guard n >= 0 else { throw SpoolError(.io, "cannot read \(self.path): \(String(cString: strerror(errno)))") }
                if n == 0 { break }
                done += n
            }
        }
        window.removeLast(size - done)
        self.window = window
        self.windowStart = offset
        return done >= count
    }
}

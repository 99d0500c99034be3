#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads small files (configurations, certificates, tokens, lists) without trusting their
/// size: whatever a path names (a device, a FIFO, a huge file), at most one byte more than
/// the caller's limit is read.
public enum BoundedFile {
    /// Why a file could not be read.
    public struct ReadError: Error, Sendable, CustomStringConvertible {
        /// The file.
        public var path: String
        /// What the system said.
        public var cause: String

        /// "PATH cannot be read (CAUSE)".
        public var description: String { "\(self.path) cannot be read (\(self.cause))" }
    }

    /// The bytes of `path` (`-`: standard input), or nil when it holds more than `maxBytes`.
    public static func read(_ path: String, maxBytes: Int) throws(ReadError) -> [UInt8]? {
        let bytes = try Self.prefix(of: path, bytes: maxBytes + 1)
        return bytes.count > maxBytes ? nil : bytes
    }

    /// The first `limit` bytes of `path` (`-`: standard input), or all of it if shorter.
    public static func prefix(of path: String, bytes limit: Int) throws(ReadError) -> [UInt8] {
        let fd = path == "-" ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ReadError(path: path, cause: FileDescriptorIO.lastError()) }
        defer { if path != "-" { close(fd) } }
        var bytes = [UInt8](repeating: 0, count: min(limit, 64 * 1024))
        var count = 0
        while count < limit {
            if count == bytes.count { bytes.append(contentsOf: repeatElement(0, count: min(bytes.count, limit - bytes.count))) }
            let read = bytes.withUnsafeMutableBytes { systemRead(fd, $0.baseAddress! + count, $0.count - count) }
            if read < 0 {
                if errno == EINTR { continue }
                throw ReadError(path: path, cause: FileDescriptorIO.lastError())
            }
            if read == 0 { break }
            count += read
        }
        return Array(bytes[..<count])
    }
}

/// The C library's read(2); inside ``BoundedFile`` the name means its own method.
private func systemRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int {
    read(fd, buffer, count)
}

import Foundation

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
        let handle = path == "-" ? FileHandle.standardInput : FileHandle(forReadingAtPath: path)
        guard let handle else { throw ReadError(path: path, cause: String(cString: strerror(errno))) }
        defer { if path != "-" { try? handle.close() } }
        let data: Data
        do {
            data = try handle.read(upToCount: maxBytes + 1) ?? Data()
        } catch {
            throw ReadError(path: path, cause: error.localizedDescription)
        }
        return data.count > maxBytes ? nil : [UInt8](data)
    }
}

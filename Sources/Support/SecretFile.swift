#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes files that hold secrets or customer data: private keys, identities, dead
/// letters, the response limiter's memory, record dumps.
///
/// A file is readable by its owner only (0600) from the moment it exists, whatever the
/// umask: it is written under a temporary name in the same folder, opened with
/// `O_CREAT | O_EXCL` and mode 0600 (then `fchmod` 0600, so no umask or ACL default can
/// widen it), fsync'd, renamed over the target, and the folder is fsync'd. A reader sees
/// either the old file or the whole new one, never a part, and a crash leaves at most a
/// temporary file that is itself 0600.
public enum SecretFile {
    /// The mode of every secret file.
    public static let mode: mode_t = 0o600
    /// The mode of a folder made for secrets.
    public static let directoryMode: mode_t = 0o700

    /// Writes `bytes` to `path`, readable by its owner only from the first open.
    ///
    /// - Parameters:
    ///   - bytes: The whole content.
    ///   - path: The file. Its folder must exist (see ``createDirectory(_:)``).
    ///   - replacing: Whether an existing file is replaced; without it an existing file is
    ///     left alone and the call throws ``SecretFileError/Code-swift.enum/exists``, also
    ///     when another process creates it meanwhile.
    /// - Throws: ``SecretFileError`` naming the file and the system's reason.
    public static func write(_ bytes: some Sequence<UInt8>, to path: String, replacing: Bool) throws(SecretFileError) {
        try Self.write(bytes, to: path, replacing: replacing, afterCreating: { _ in })
    }

    /// ``write(_:to:replacing:)`` with a look at the temporary file right after it is
    /// created and before anything is written: the seam the tests use.
    static func write(
        _ bytes: some Sequence<UInt8>, to path: String, replacing: Bool, afterCreating: (String) -> Void
    ) throws(SecretFileError) {
        if !replacing, Self.exists(path) { throw SecretFileError(.exists, path: path, "already exists") }
        let folder = Self.folder(of: path)
        let temporary = folder + "/." + Self.name(of: path) + "." + String(UInt64.random(in: 0...UInt64.max), radix: 16) + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, Self.mode)
        guard fd >= 0 else { throw SecretFileError(.io, path: path, "cannot create a file in \(folder): \(Self.lastError())") }
        var renamed = false
        defer { if !renamed { unlink(temporary) } }
        afterCreating(temporary)
        do throws(SecretFileError) {
            guard fchmod(fd, Self.mode) == 0 else { throw SecretFileError(.io, path: path, "cannot set mode 0600: \(Self.lastError())") }
            let buffer = bytes.withContiguousStorageIfAvailable { Array($0) } ?? Array(bytes)
            let complete = buffer.withUnsafeBytes { FileDescriptorIO.writeAll(fd, $0) }
            guard complete else { throw SecretFileError(.io, path: path, "cannot write: \(Self.lastError())") }
            guard fsync(fd) == 0 else { throw SecretFileError(.io, path: path, "cannot fsync: \(Self.lastError())") }
        } catch {
            close(fd)
            throw error
        }
        guard close(fd) == 0 else { throw SecretFileError(.io, path: path, "cannot close: \(Self.lastError())") }
        if replacing {
            guard rename(temporary, path) == 0 else { throw SecretFileError(.io, path: path, "cannot rename into place: \(Self.lastError())") }
            renamed = true
        } else {
            // link(2) fails if the name exists, so a file made since the check above is kept.
            guard link(temporary, path) == 0 else {
                if errno == EEXIST { throw SecretFileError(.exists, path: path, "already exists") }
                throw SecretFileError(.io, path: path, "cannot link into place: \(Self.lastError())")
            }
        }
        Self.syncFolder(folder)
    }

    /// Creates `path` and any missing parent folders with mode 0700; folders that exist
    /// are left as they are (see ``checkOwnFolder(_:)``).
    ///
    /// - Throws: ``SecretFileError`` when a folder cannot be made.
    public static func createDirectory(_ path: String) throws(SecretFileError) {
        try Self.createMissingDirectory(path)
    }

    /// Checks that an existing folder about to hold secrets belongs to this user and is
    /// writable by no one else: whoever can write in it could replace a configuration or
    /// certificate kept beside the keys. A missing folder passes.
    ///
    /// - Throws: ``SecretFileError`` naming the owner or the mode.
    public static func checkOwnFolder(_ path: String) throws(SecretFileError) {
        var stats = stat()
        guard stat(path, &stats) == 0 else { return }
        guard stats.st_uid == geteuid() else {
            throw SecretFileError(.io, path: path, "belongs to another user (uid \(stats.st_uid)); use a folder of your own")
        }
        guard stats.st_mode & 0o022 == 0 else {
            throw SecretFileError(.io, path: path, "is writable by other users; `chmod go-w` it or use another folder")
        }
    }

    private static func createMissingDirectory(_ path: String) throws(SecretFileError) {
        var stats = stat()
        if stat(path, &stats) == 0 {
            guard stats.st_mode & S_IFMT == S_IFDIR else { throw SecretFileError(.io, path: path, "exists and is not a folder") }
            return
        }
        let parent = Self.folder(of: path)
        if parent != path { try Self.createMissingDirectory(parent) }
        guard mkdir(path, Self.directoryMode) == 0 || errno == EEXIST else {
            throw SecretFileError(.io, path: path, "cannot create the folder: \(Self.lastError())")
        }
        // mkdir's mode passes through the umask, which can only take bits away; chmod
        // makes it exactly 0700 so the folder is usable by its owner under any umask.
        chmod(path, Self.directoryMode)
    }

    /// Takes read, write and execute away from group and others on an existing file or
    /// folder (through a symbolic link, the file it names). Returns whether anything
    /// changed; a missing file is not an error.
    ///
    /// - Throws: ``SecretFileError`` when the mode cannot be changed.
    @discardableResult
    public static func restrict(_ path: String) throws(SecretFileError) -> Bool {
        var stats = stat()
        guard stat(path, &stats) == 0 else { return false }
        let mode = stats.st_mode & 0o7777
        guard mode & 0o077 != 0 else { return false }
        guard chmod(path, mode & 0o700) == 0 else {
            throw SecretFileError(.io, path: path, "cannot restrict its mode to the owner: \(Self.lastError())")
        }
        return true
    }

    /// Whether `path` is a symbolic link.
    public static func isSymbolicLink(_ path: String) -> Bool {
        var stats = stat()
        return lstat(path, &stats) == 0 && stats.st_mode & S_IFMT == S_IFLNK
    }

    static func exists(_ path: String) -> Bool {
        var stats = stat()
        return lstat(path, &stats) == 0
    }

    static func folder(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    static func name(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }

    static func syncFolder(_ folder: String) {
        let fd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }

    static func lastError() -> String {
        FileDescriptorIO.lastError()
    }
}

/// A secret file that could not be written.
public struct SecretFileError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure.
    public enum Code: Sendable, Hashable {
        /// The file exists and replacing was not asked for.
        case exists
        /// The system refused an operation.
        case io
    }

    /// What kind of failure.
    public var code: Code
    /// The file.
    public var path: String
    /// What went wrong.
    public var reason: String

    init(_ code: Code, path: String, _ reason: String) {
        self.code = code
        self.path = path
        self.reason = reason
    }

    /// "PATH REASON".
    public var description: String { "\(self.path) \(self.reason)" }
}

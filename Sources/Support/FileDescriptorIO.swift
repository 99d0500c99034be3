#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Whole writes on a file descriptor: write(2) may take part of a buffer or be interrupted.
public enum FileDescriptorIO {
    /// Writes every byte of `bytes` to `fd`, retrying partial writes and `EINTR`.
    ///
    /// - Returns: false when the system refused; `errno` says why.
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let written = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                return false
            }
            offset += written
        }
        return true
    }

    /// The system's text for the current `errno`.
    public static func lastError() -> String {
        String(cString: strerror(errno))
    }
}

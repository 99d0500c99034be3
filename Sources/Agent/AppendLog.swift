import Foundation
import Support

/// The small owner-only logs the agent keeps beside its spool (`responses.log`,
/// `idempotency.log`): written whole when compacted, appended to in between.
enum AppendLog {
    /// Replaces `path` with `text` (mode 0600, written aside, synced and renamed into place)
    /// and opens it again for appending.
    ///
    /// - Returns: the descriptor to append to; the caller closes the one it had.
    /// - Throws: ``SpoolError`` naming the file.
    static func rewrite(_ text: String, to path: String) throws -> Int32 {
        do {
            try SecretFile.write(Data(text.utf8), to: path, replacing: true)
        } catch {
            throw SpoolError(.io, "cannot write \(error)")
        }
        let fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard fd >= 0 else { throw SpoolError(.io, "cannot write \(path): \(FileDescriptorIO.lastError())") }
        return fd
    }
}

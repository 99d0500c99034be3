import NIOCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// REJECT, hub → node: a batch, or the whole connection, was refused. It is also the
/// `Error` a hub component returns when it refuses something.
///
/// A batch-level REJECT names the batch's origin and sequence. A connection-level REJECT
/// (handshake failures, protocol violations, timeouts) has the nil origin and sequence 0,
/// and the hub closes the connection right after it.
public struct Reject: Error, Sendable, Hashable {
    /// Longest message, in bytes.
    public static let maxMessageLength = 1024
    /// Encoded size with an empty message.
    public static let minimumLength = 29

    /// Whether sending the same thing again can succeed.
    public enum Disposition: UInt8, Sendable, Hashable {
        /// Send again later (store busy, hub overloaded or shutting down).
        case retryable = 1
        /// Never send this again; an agent moves the batch to its dead-letter folder.
        case permanent = 2
    }

    /// The batch's origin, or the nil UUID for a connection-level REJECT.
    public var origin: UUID
    /// The batch's sequence, or 0 for a connection-level REJECT.
    public var sequence: UInt64
    /// Why.
    public var code: RejectCode
    /// Retryable or permanent.
    public var disposition: Disposition
    /// A sentence for the operator's log, UTF-8.
    public var message: String

    /// The origin used by connection-level REJECTs.
    public static let connectionOrigin = UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))

    /// Creates a REJECT. A message longer than ``maxMessageLength`` bytes is cut at a
    /// character boundary.
    public init(origin: UUID, sequence: UInt64, code: RejectCode, disposition: Disposition, message: String) {
        self.origin = origin
        self.sequence = sequence
        self.code = code
        self.disposition = disposition
        self.message = message.truncatedUTF8(to: Self.maxMessageLength)
    }

    /// A connection-level REJECT.
    public static func connection(_ code: RejectCode, _ disposition: Disposition, _ message: String) -> Reject {
        Reject(origin: Self.connectionOrigin, sequence: 0, code: code, disposition: disposition, message: message)
    }

    /// Whether this REJECT ends the connection rather than refusing one batch.
    public var isConnectionLevel: Bool { self.sequence == 0 }

    func write(into buffer: inout ByteBuffer) {
        buffer.writeUUID(self.origin)
        buffer.writeMultipleIntegers(self.sequence, self.code.rawValue, self.disposition.rawValue)
        buffer.writeString16(self.message)
    }

    static func read(from buffer: inout ByteBuffer) throws -> Reject {
        let origin = try buffer.readUUID("reject.origin")
        guard let (sequence, code, dispositionByte) = buffer.readMultipleIntegers(as: (UInt64, UInt16, UInt8).self) else {
            throw WireError.truncated("reject")
        }
        guard let disposition = Disposition(rawValue: dispositionByte) else {
            throw WireError(
                .lengthOutOfRange,
                field: "reject.disposition",
                "disposition \(dispositionByte) is not retryable (1) or permanent (2)"
            )
        }
        let message = try buffer.readString16("reject.message", max: Self.maxMessageLength)
        return Reject(origin: origin, sequence: sequence, code: RejectCode(rawValue: code), disposition: disposition, message: message)
    }
}

extension String {
    /// The longest prefix of whole characters whose UTF-8 fits in `limit` bytes.
    func truncatedUTF8(to limit: Int) -> String {
        if self.utf8.count <= limit { return self }
        var result = ""
        var used = 0
        for character in self {
            let size = character.utf8.count
            if used + size > limit { break }
            result.append(character)
            used += size
        }
        return result
    }
}

import NIOCore

/// GOAWAY, hub → node: the hub will close this connection. The node sends no more batches,
/// keeps reading ACKs for those in flight, and reconnects (to this or another hub) after
/// ``reconnectAfterMilliseconds``.
public struct GoAway: Sendable, Hashable {
    /// Longest message, in bytes.
    public static let maxMessageLength = 1024
    /// Encoded size with an empty message.
    public static let minimumLength = 8

    /// Why, usually ``RejectCode/shuttingDown`` or ``RejectCode/overloaded``.
    public var code: RejectCode
    /// How long to wait before reconnecting to this hub.
    public var reconnectAfterMilliseconds: UInt32
    /// A sentence for the operator's log, UTF-8.
    public var message: String

    /// Creates a GOAWAY; a long message is cut at a character boundary.
    public init(code: RejectCode, reconnectAfterMilliseconds: UInt32, message: String) {
        self.code = code
        self.reconnectAfterMilliseconds = reconnectAfterMilliseconds
        self.message = message.truncatedUTF8(to: Self.maxMessageLength)
    }

    func write(into buffer: inout ByteBuffer) {
        buffer.writeMultipleIntegers(self.code.rawValue, self.reconnectAfterMilliseconds)
        buffer.writeString16(self.message)
    }

    static func read(from buffer: inout ByteBuffer) throws -> GoAway {
        guard let (code, after) = buffer.readMultipleIntegers(as: (UInt16, UInt32).self) else {
            throw WireError.truncated("goaway")
        }
        let message = try buffer.readString16("goaway.message", max: Self.maxMessageLength)
        return GoAway(code: RejectCode(rawValue: code), reconnectAfterMilliseconds: after, message: message)
    }
}

/// Why a hub refused something, as the `u16` code in a REJECT or GOAWAY frame.
///
/// A struct rather than an enum so that codes from a newer peer still decode.
public struct RejectCode: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    /// The code on the wire.
    public var rawValue: UInt16

    /// Wraps a code.
    public init(rawValue: UInt16) {
        self.rawValue = rawValue
    }

    /// A frame or value that does not decode.
    public static let malformedFrame = RejectCode(rawValue: 1)
    /// No protocol version in common.
    public static let unsupportedVersion = RejectCode(rawValue: 2)
    /// The key is not registered for this node or origin.
    public static let unknownKey = RejectCode(rawValue: 3)
    /// The key was revoked.
    public static let revokedKey = RejectCode(rawValue: 4)
    /// The HELLO proof of key possession does not verify.
    public static let badProof = RejectCode(rawValue: 5)
    /// The batch signature does not verify.
    public static let badSignature = RejectCode(rawValue: 6)
    /// A frame longer than the receiver's limit.
    public static let frameTooLarge = RejectCode(rawValue: 7)
    /// A batch over a count, size or compression-ratio limit.
    public static let batchTooLarge = RejectCode(rawValue: 8)
    /// The payload does not decompress to its declared length.
    public static let decompressionFailed = RejectCode(rawValue: 9)
    /// A record breaks a validation rule.
    public static let invalidRecord = RejectCode(rawValue: 10)
    /// A BATCH sent without credit.
    public static let creditExceeded = RejectCode(rawValue: 11)
    /// No HELLO within the handshake timeout.
    public static let handshakeTimeout = RejectCode(rawValue: 12)
    /// Nothing received within the idle timeout.
    public static let idleTimeout = RejectCode(rawValue: 13)
    /// A frame not allowed at this point of the conversation.
    public static let unexpectedFrame = RejectCode(rawValue: 14)
    /// The store could not commit; send again later.
    public static let storeUnavailable = RejectCode(rawValue: 15)
    /// The hub is over capacity; send again later.
    public static let overloaded = RejectCode(rawValue: 16)
    /// An enrollment token that is unknown, used or expired.
    public static let enrollmentRefused = RejectCode(rawValue: 17)
    /// A node that may not send batches of this origin (only relays forward others' batches).
    public static let originNotAllowed = RejectCode(rawValue: 18)
    /// The hub has its maximum number of connections.
    public static let tooManyConnections = RejectCode(rawValue: 20)
    /// The hub is shutting down.
    public static let shuttingDown = RejectCode(rawValue: 21)
    /// A record names a site the origin's enrollment does not allow it to report for.
    public static let siteNotAllowed = RejectCode(rawValue: 22)
    /// A forwarded batch whose path already holds the receiving node: the relays form a ring.
    public static let loopDetected = RejectCode(rawValue: 23)
    /// A forwarded batch the receiving relay could not pass on within ``ForwardedBatch/maxHops``.
    public static let hopLimitExceeded = RejectCode(rawValue: 24)

    private static let names: [UInt16: String] = [
        1: "malformedFrame", 2: "unsupportedVersion", 3: "unknownKey", 4: "revokedKey", 5: "badProof",
        6: "badSignature", 7: "frameTooLarge", 8: "batchTooLarge", 9: "decompressionFailed",
        10: "invalidRecord", 11: "creditExceeded", 12: "handshakeTimeout", 13: "idleTimeout",
        14: "unexpectedFrame", 15: "storeUnavailable", 16: "overloaded", 17: "enrollmentRefused",
        18: "originNotAllowed", 20: "tooManyConnections", 21: "shuttingDown", 22: "siteNotAllowed",
        23: "loopDetected", 24: "hopLimitExceeded",
    ]

    /// The code's name, or `code(N)` for a code this version does not know.
    public var description: String { Self.names[self.rawValue] ?? "code(\(self.rawValue))" }
}

extension WireError {
    /// The REJECT code a receiver sends back for this error.
    public var rejectCode: RejectCode {
        switch self.code.base {
        case .truncated, .lengthOutOfRange, .unknownFrameType, .trailingBytes, .badMagic, .unknownCodec:
            .malformedFrame
        case .invalidUTF8, .invalidRecord: .invalidRecord
        case .unsupportedVersion: .unsupportedVersion
        case .limitExceeded: .batchTooLarge
        case .unknownKey, .keyMismatch: .unknownKey
        case .badSignature: .badSignature
        case .badProof: .badProof
        case .frameTooLarge: .frameTooLarge
        case .decompressionFailed: .decompressionFailed
        case .protocolViolation: .unexpectedFrame
        }
    }
}

/// An error raised while encoding, decoding, sealing or opening FeedbackMesh protocol data.
///
/// The ``code`` says what kind of problem it is; ``field`` names the record field, frame
/// field or limit involved, and ``detail`` says what was wrong in words a user can act on.
/// `description` is short and generic; `String(reflecting:)` carries the details.
public struct WireError: Error, Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    /// An opaque kind of wire error. Compare against the static members.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        enum Base: String, Sendable, Hashable {
            case truncated
            case lengthOutOfRange
            case unknownFrameType
            case trailingBytes
            case invalidUTF8
            case invalidRecord
            case unsupportedVersion
            case badMagic
            case unknownCodec
            case limitExceeded
            case unknownKey
            case keyMismatch
            case badSignature
            case badProof
            case frameTooLarge
            case decompressionFailed
            case protocolViolation
        }

        let base: Base

        /// Fewer bytes than a complete value needs.
        public static let truncated = Code(base: .truncated)
        /// A length read off the wire is below its minimum or above its configured maximum.
        public static let lengthOutOfRange = Code(base: .lengthOutOfRange)
        /// A frame type this protocol version does not define.
        public static let unknownFrameType = Code(base: .unknownFrameType)
        /// Bytes left over after a complete value where none may be.
        public static let trailingBytes = Code(base: .trailingBytes)
        /// A string field that is not valid UTF-8.
        public static let invalidUTF8 = Code(base: .invalidUTF8)
        /// A record that breaks a validation rule (score out of scale, unknown source, …).
        public static let invalidRecord = Code(base: .invalidRecord)
        /// A protocol, batch or record version this implementation does not speak.
        public static let unsupportedVersion = Code(base: .unsupportedVersion)
        /// A batch that does not start with the batch magic.
        public static let badMagic = Code(base: .badMagic)
        /// A batch compressed with a codec this implementation does not know.
        public static let unknownCodec = Code(base: .unknownCodec)
        /// A count, size or ratio above a configured limit.
        public static let limitExceeded = Code(base: .limitExceeded)
        /// No public key is registered for the batch's origin and key id.
        public static let unknownKey = Code(base: .unknownKey)
        /// A public key whose derived key id differs from the key id that came with it.
        public static let keyMismatch = Code(base: .keyMismatch)
        /// A batch signature that does not verify.
        public static let badSignature = Code(base: .badSignature)
        /// A HELLO's proof of key possession does not verify.
        public static let badProof = Code(base: .badProof)
        /// A frame declares a payload longer than the receiver's limit for its type.
        public static let frameTooLarge = Code(base: .frameTooLarge)
        /// zstd refused the payload, or it did not decompress to exactly the declared length.
        public static let decompressionFailed = Code(base: .decompressionFailed)
        /// A frame that is valid on its own but not allowed at this point of the conversation.
        public static let protocolViolation = Code(base: .protocolViolation)

        /// The code's name, such as `lengthOutOfRange`.
        public var description: String { self.base.rawValue }
    }

    /// What kind of problem this is.
    public var code: Code
    /// The field or limit involved, such as `site` or `maxRecords`, when there is one.
    public var field: String?
    /// A sentence saying what was wrong.
    public var detail: String

    /// Creates an error.
    public init(_ code: Code, field: String? = nil, _ detail: String) {
        self.code = code
        self.field = field
        self.detail = detail
    }

    /// A short, generic description that never includes peer-supplied data.
    public var description: String { "WireError(\(self.code))" }

    /// The full description: code, field and detail.
    public var debugDescription: String {
        if let field {
            return "WireError(\(self.code), field: \(field)): \(self.detail)"
        }
        return "WireError(\(self.code)): \(self.detail)"
    }
}

extension WireError {
    static func truncated(_ what: String) -> WireError {
        WireError(.truncated, field: what, "\(what) is truncated")
    }

    static func length(_ field: String, _ length: Int, max: Int, min: Int = 0) -> WireError {
        WireError(.lengthOutOfRange, field: field, "\(field) length \(length) is outside \(min)...\(max)")
    }

    static func invalid(_ field: String, _ detail: String) -> WireError {
        WireError(.invalidRecord, field: field, detail)
    }
}

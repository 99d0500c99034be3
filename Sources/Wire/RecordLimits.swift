/// Bounds on a record's variable-length fields, in UTF-8 bytes.
///
/// The defaults are the protocol's version 1 maxima; the encoding cannot carry more
/// (one-byte lengths for short strings). A deployment may lower them, never raise them.
public struct RecordLimits: Sendable, Hashable {
    /// Maximum bytes of `site`.
    public var site = 64
    /// Maximum bytes of `channel`.
    public var channel = 32
    /// Maximum bytes of `subject`.
    public var subject = 64
    /// Maximum bytes of `topic`.
    public var topic = 64
    /// Maximum bytes of `survey`.
    public var survey = 64
    /// Maximum bytes of `customer`.
    public var customer = 128
    /// Maximum bytes of `comment`.
    public var comment = 2000
    /// Maximum number of attributes.
    public var attributeCount = 16
    /// Maximum bytes of an attribute key (keys are never empty).
    public var attributeKey = 32
    /// Maximum bytes of an attribute value.
    public var attributeValue = 255
    /// Latest accepted timestamp, ms since the epoch (9999-12-31T23:59:59.999Z).
    public var maxTimestamp: Int64 = 253_402_300_799_999

    /// The protocol's version 1 maxima.
    public static let protocolMaximum = RecordLimits()

    /// Creates the protocol maxima; lower fields as needed.
    public init() {}
}

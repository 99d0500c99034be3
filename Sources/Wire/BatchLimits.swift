/// Bounds a batch must stay within before the opener spends work on it.
///
/// Every bound is checked against the batch header before the signature is verified or a
/// byte is decompressed, so a hostile peer cannot make the opener allocate more than
/// ``maxUncompressedBytes``.
public struct BatchLimits: Sendable, Hashable {
    /// Most records in one batch.
    public var maxRecords: Int = 10_000
    /// Most bytes of the compressed payload.
    public var maxCompressedBytes: Int = 4 << 20
    /// Most bytes the payload may expand to.
    public var maxUncompressedBytes: Int = 8 << 20
    /// Most the payload may expand by: `uncompressed <= compressed * maxCompressionRatio`.
    /// Real batches reach about 10 (every record has 10 random id bytes); a zstd bomb reaches thousands.
    public var maxCompressionRatio: Int = BatchLimits.protocolCompressionRatio
    /// The compression ratio every receiver accepts (PROTOCOL.md §8): senders seal to it, and
    /// since WELCOME does not announce a ratio, a receiver may raise its limit but not lower it.
    public static let protocolCompressionRatio = 200
    /// Bounds on each record's fields.
    public var record = RecordLimits.protocolMaximum

    /// Creates the default limits.
    public init() {}
}

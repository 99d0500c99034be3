/// Bounds a frame decoder enforces before it waits for, or allocates, a frame's payload.
public struct FrameLimits: Sendable, Hashable {
    /// Longest frame payload accepted (a BATCH frame's payload is the sealed batch).
    public var maxFrameLength: Int
    /// Limits for batches inside BATCH frames.
    public var batch: BatchLimits

    /// Limits that fit `batch`: a frame may carry the largest batch it allows.
    public init(batch: BatchLimits = BatchLimits()) {
        self.batch = batch
        self.maxFrameLength = BatchHeader.length + batch.maxCompressedBytes + SealedBatch.signatureLength
    }
}

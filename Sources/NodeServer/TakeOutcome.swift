import Wire

/// How an ``IngestBackend`` answered for an ``AcceptedBatch``: the server turns it into the
/// batch's ACK or REJECT.
public enum TakeOutcome: Sendable, Hashable {
    /// Durable now; `newRecords` of its records were new (the others were already stored).
    case stored(newRecords: Int)
    /// Already taken before (same origin and sequence): acknowledged as a duplicate.
    case duplicate
    /// Not taken: answered with a REJECT of this code, for example a retryable one when the
    /// store cannot be written or a relay's spool is full.
    case refused(RejectCode, Reject.Disposition, message: String)
}

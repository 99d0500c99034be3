/// Protocol versions this implementation speaks, and how two peers agree on one.
public enum ProtocolVersion {
    /// The only version defined so far.
    public static let v1: UInt16 = 1
    /// The versions this implementation accepts.
    public static let supported: ClosedRange<UInt16> = 1...1

    /// The highest version both sides speak, or nil when the ranges do not meet.
    public static func negotiate(ours: ClosedRange<UInt16>, theirs: ClosedRange<UInt16>) -> UInt16? {
        let low = max(ours.lowerBound, theirs.lowerBound)
        let high = min(ours.upperBound, theirs.upperBound)
        return low <= high ? high : nil
    }
}

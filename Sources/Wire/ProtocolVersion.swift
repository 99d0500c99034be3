/// Protocol versions this implementation speaks, and how two peers agree on one.
public enum ProtocolVersion {
    /// The first version: agents and hubs.
    public static let v1: UInt16 = 1
    /// Version 1 and the mesh: FORWARD (a batch with its hop path) and REGISTRY (the hub's
    /// node registry, sent to relays). Peers that agree on version 1 never see them.
    public static let v2: UInt16 = 2
    /// The versions this implementation accepts.
    public static let supported: ClosedRange<UInt16> = 1...2

    /// The highest version both sides speak, or nil when the ranges do not meet.
    public static func negotiate(ours: ClosedRange<UInt16>, theirs: ClosedRange<UInt16>) -> UInt16? {
        let low = max(ours.lowerBound, theirs.lowerBound)
        let high = min(ours.upperBound, theirs.upperBound)
        return low <= high ? high : nil
    }
}

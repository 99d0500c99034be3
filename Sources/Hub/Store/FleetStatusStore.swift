import Foundation
import Wire

/// A node's STATUS report as the hub keeps it: the newest one per node.
public struct KeptStatus: Sendable, Hashable {
    /// The reporting node.
    public var nodeID: UUID
    /// When the hub took it, ms since the epoch (the hub's clock).
    public var receivedAt: Int64
    /// When the node made it, ms since the epoch (the node's clock).
    public var sentAt: Int64
    /// The relay that passed it on; nil when the node sent it itself.
    public var via: UUID?
    /// The body as the node signed it: a JSON object (``NodeStatus``).
    public var body: String

    /// Creates a kept report.
    public init(nodeID: UUID, receivedAt: Int64, sentAt: Int64, via: UUID?, body: String) {
        self.nodeID = nodeID
        self.receivedAt = receivedAt
        self.sentAt = sentAt
        self.via = via
        self.body = body
    }

    /// The body decoded; nil when it is not a status report this version reads.
    public var status: NodeStatus? {
        try? NodeStatus(decoding: Array(self.body.utf8))
    }
}

/// One registered node and what the hub knows of its life.
public struct FleetNode: Sendable, Hashable {
    /// The registry entry.
    public var node: RegisteredNode
    /// When the hub last heard of it: the later of its newest STATUS report's arrival and its
    /// newest committed batch's; nil when never.
    public var lastSeenAt: Int64?
    /// Its newest STATUS report, if any arrived.
    public var status: KeptStatus?

    /// Creates an entry.
    public init(node: RegisteredNode, lastSeenAt: Int64?, status: KeptStatus?) {
        self.node = node
        self.lastSeenAt = lastSeenAt
        self.status = status
    }

    /// Whether it is silent at `now`: registered, not revoked, seen once, and not since
    /// `silentAfter` ms. A node never seen is not silent (it has not joined the fleet yet).
    public func isSilent(at now: Int64, after silentAfter: Int64) -> Bool {
        guard !self.node.revoked, let lastSeenAt = self.lastSeenAt else { return false }
        return now - lastSeenAt >= silentAfter
    }
}

/// Where the hub keeps the fleet's status: the newest STATUS report of each node, and when
/// each node was last seen. Every method blocks; call them off the event loops.
public protocol FleetStatusStore: Sendable {
    /// Keeps `statuses` in one transaction; a report replaces the one kept for its node only
    /// when it is newer (`sentAt`).
    func keep(_ statuses: [KeptStatus]) throws

    /// Every registered node, in registration order, with when it was last seen (a STATUS
    /// report or a committed batch of its origin) and its newest report.
    func fleet() throws -> [FleetNode]
}

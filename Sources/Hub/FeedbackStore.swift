import Foundation
import Wire

/// A batch ready to commit: verified, decompressed and validated.
public struct IncomingBatch: Sendable {
    /// Origin and sequence.
    public var key: BatchKey
    /// The records, each already valid.
    public var records: [FeedbackRecord]
    /// When the hub received it, ms since the epoch.
    public var receivedAt: Int64

    /// Creates a batch to commit.
    public init(key: BatchKey, records: [FeedbackRecord], receivedAt: Int64) {
        self.key = key
        self.records = records
        self.receivedAt = receivedAt
    }
}

/// What committing one batch did.
public enum CommitOutcome: Sendable, Hashable {
    /// First time this (origin, sequence) was seen: stored; `newRecords` of its records were
    /// new (the others were already stored under their ids, from another batch).
    case stored(newRecords: Int)
    /// This (origin, sequence) was already committed; nothing was written.
    case duplicate
}

/// A node key as the registry holds it.
public struct RegisteredNode: Sendable, Hashable {
    /// Node id (an agent's origin).
    public var nodeID: UUID
    /// Its Ed25519 public key, 32 raw bytes.
    public var publicKey: [UInt8]
    /// Id of the public key.
    public var keyID: KeyID
    /// Agent or relay.
    public var role: Hello.Role
    /// The sites its enrollment allows it to report for; a batch with a record outside them
    /// is refused (`siteNotAllowed`), whoever forwards it.
    public var sites: SiteScope
    /// Whether the key was revoked; a revoked node is refused and nothing it sends is stored.
    public var revoked: Bool
    /// When it was registered, ms since the epoch.
    public var createdAt: Int64

    /// Creates a registry entry.
    public init(
        nodeID: UUID, publicKey: [UInt8], keyID: KeyID, role: Hello.Role, sites: SiteScope, revoked: Bool, createdAt: Int64
    ) {
        self.nodeID = nodeID
        self.publicKey = publicKey
        self.keyID = keyID
        self.role = role
        self.sites = sites
        self.revoked = revoked
        self.createdAt = createdAt
    }
}

/// Why an enrollment token was not redeemed.
public enum EnrollmentRefusal: Error, Sendable, Hashable, CustomStringConvertible {
    /// No such token.
    case unknownToken
    /// The token was already redeemed.
    case alreadyUsed
    /// The token expired.
    case expired
    /// The node id is already registered with another key.
    case nodeTaken
    /// The node asks to be a relay and the token enrolls an agent.
    case relayNotAllowed

    /// A sentence for the REJECT message.
    public var description: String {
        switch self {
        case .unknownToken: "enrollment token is not known"
        case .alreadyUsed: "enrollment token was already used"
        case .expired: "enrollment token has expired"
        case .nodeTaken: "node id is already registered with another key"
        case .relayNotAllowed: "the token enrolls an agent, not a relay"
        }
    }
}

/// Where the hub keeps records, batches and the node registry. Every method blocks; call
/// them off the event loops. Implementations must make ``commit(_:)`` durable before it
/// returns: the hub acknowledges batches on its return.
public protocol FeedbackStore: Sendable {
    /// Commits `batches` in one transaction and returns one outcome per batch, in order.
    /// Duplicates (same origin and sequence) store nothing; a record already stored under
    /// its id is skipped.
    func commit(_ batches: [IncomingBatch]) throws -> [CommitOutcome]

    /// Whether the batch (origin, sequence) is committed.
    func isCommitted(_ key: BatchKey) throws -> Bool

    /// The highest committed sequence of `origin`, 0 when none.
    func committedSequence(origin: UUID) throws -> UInt64

    /// Every registered node.
    func nodes() throws -> [RegisteredNode]

    /// Registers a node's key. Throws if the node id is taken.
    func addNode(_ node: RegisteredNode) throws

    /// Marks a node's key revoked. Returns false if the node is not registered.
    func revokeNode(_ nodeID: UUID, at time: Int64) throws -> Bool

    /// Replaces the sites a node may report for. Returns false if the node is not registered.
    func setSites(_ sites: SiteScope, of nodeID: UUID) throws -> Bool

    /// Stores a one-time enrollment token (its SHA-256 only).
    func addEnrollmentToken(hash: [UInt8], sites: SiteScope, role: Hello.Role, createdAt: Int64, expiresAt: Int64) throws

    /// Redeems a token for `node` in one transaction: the token must exist, be unused and
    /// unexpired, and enroll a relay if `node.role` is relay; the node is registered with the
    /// token's sites and role. A refused redemption leaves the token unused.
    func redeemEnrollmentToken(hash: [UInt8], node: RegisteredNode, at time: Int64) throws -> Result<RegisteredNode, EnrollmentRefusal>

    /// Number of stored records.
    func recordCount() throws -> Int

    /// Number of committed batches.
    func batchCount() throws -> Int
}

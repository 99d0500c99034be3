import Foundation
import Wire

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

/// Where the hub keeps the node registry and the enrollment tokens. Every method blocks;
/// call them off the event loops and off Swift concurrency's threads.
public protocol RegistryStore: Sendable {
    /// Every registered node, in registration order.
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
    /// token's sites and role. A refused redemption leaves the token unused. The same node
    /// with the same key redeeming its own token again is enrolled, not refused (its first
    /// answer was lost).
    func redeemEnrollmentToken(hash: [UInt8], node: RegisteredNode, at time: Int64) throws -> Result<RegisteredNode, EnrollmentRefusal>
}

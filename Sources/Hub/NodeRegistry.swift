import Crypto
import Foundation
import NodeServer
import Synchronization
import Wire

/// The hub's view of which nodes may connect and which keys sign which origins.
///
/// An in-memory snapshot of the store's node table answers the per-batch key lookups
/// without touching the database; ``refresh()`` reloads it (the hub does so every second,
/// so a revocation made with `feedback-hub agents revoke` takes effect within a second).
public final class NodeRegistry: Sendable {
    struct Snapshot: Sendable {
        var nodes: [UUID: RegisteredNode] = [:]
        var directory = NodeDirectory()
        /// The directory as REGISTRY frames for relays, and its revision.
        var frames: (revision: UInt64, frames: [RegistryUpdate])?
    }

    private let store: any RegistryStore
    private let snapshot: Mutex<Snapshot>
    /// When a HELLO of a node unknown to the snapshot last made it reload (at most every
    /// ``unknownNodeReloadInterval``).
    private let reloadedForUnknown = Mutex<ContinuousClock.Instant?>(nil)
    /// One reload at a time: a slower, older read must not replace a newer snapshot.
    private let reloading = Mutex<Void>(())

    /// Fewest time between two reloads made for an unknown node: several hubs share one
    /// registry, and a node enrolled through another hub is known here at the next
    /// once-a-second refresh; a HELLO that comes sooner makes the hub look at once, but no
    /// stream of unknown nodes can make it reload more often than this.
    static let unknownNodeReloadInterval = Duration.milliseconds(250)

    /// Loads the registry from `store`.
    public init(store: any RegistryStore) throws {
        self.store = store
        self.snapshot = Mutex(Snapshot())
        try self.refresh()
    }

    /// Reloads every node from the store; the REGISTRY snapshot for relays is rebuilt only
    /// when something changed.
    public func refresh() throws {
        try self.reloading.withLock { _ in try self.reload() }
    }

    private func reload() throws {
        let stored = try self.store.nodes()
        var nodes: [UUID: RegisteredNode] = [:]
        for node in stored { nodes[node.nodeID] = node }
        let directory = NodeDirectory(stored.map(Self.entry))
        let unchanged = self.snapshot.withLock { $0.nodes == nodes }
        let frames = unchanged ? nil : (directory.revision, RegistryUpdate.frames(revision: directory.revision, entries: directory.entries))
        self.snapshot.withLock { snapshot in
            snapshot.nodes = nodes
            snapshot.directory = directory
            if let frames { snapshot.frames = frames }
        }
    }

    static func entry(_ node: RegisteredNode) -> RegistryUpdate.Entry {
        RegistryUpdate.Entry(
            nodeID: node.nodeID, keyID: node.keyID, publicKey: node.publicKey, role: node.role, revoked: node.revoked, sites: node.sites
        )
    }

    /// The registered node, if any.
    public func node(_ nodeID: UUID) -> RegisteredNode? {
        self.snapshot.withLock { $0.nodes[nodeID] }
    }

    /// A node's directory entry and its key as a verifying key, from memory.
    public func directoryNode(_ nodeID: UUID) -> NodeDirectory.Node? {
        self.snapshot.withLock { $0.directory.nodes[nodeID] }
    }

    /// The registry as REGISTRY frames for relays, and its revision.
    public var registrySnapshot: (revision: UInt64, frames: [RegistryUpdate])? {
        self.snapshot.withLock { $0.frames }
    }

    /// Checks a HELLO: proof of key possession, then a registered and unrevoked key for
    /// the node (``NodeDirectory``, the rules a relay applies too), or a valid enrollment
    /// token for an unknown node (which registers it). Blocks on the store when it redeems a
    /// token: call it off the event loop.
    ///
    /// - Returns: the node, or the connection-level REJECT to send.
    public func authenticate(_ hello: Hello, challenge: Challenge, now: Int64) -> Result<RegisteredNode, Reject> {
        var (directory, known) = self.snapshot.withLock { ($0.directory, $0.nodes[hello.nodeID]) }
        if known == nil, hello.enrollmentToken.isEmpty, self.mayReloadForUnknown() {
            try? self.refresh()
            (directory, known) = self.snapshot.withLock { ($0.directory, $0.nodes[hello.nodeID]) }
        }
        switch directory.authenticate(hello, challenge: challenge) {
        case .failure(let reject)?:
            return .failure(reject)
        case .success?:
            if let known { return .success(known) }
        case nil:
            break
        }
        guard known == nil else {
            // Registered with a key that is not a valid Ed25519 point: never accepted.
            return .failure(.connection(.unknownKey, .permanent, "node \(hello.nodeID) is registered with an unusable key"))
        }
        guard !hello.enrollmentToken.isEmpty else {
            return .failure(.connection(.unknownKey, .permanent, "node \(hello.nodeID) is not registered; enroll it with a token"))
        }
        let candidate = RegisteredNode(
            nodeID: hello.nodeID,
            publicKey: hello.publicKey,
            keyID: hello.keyID,
            role: hello.role,
            sites: .any,
            revoked: false,
            createdAt: now
        )
        do {
            switch try self.store.redeemEnrollmentToken(hash: Self.tokenHash(hello.enrollmentToken), node: candidate, at: now) {
            case .success(let node):
                guard hello.role == .agent || node.role == .relay else {
                    return .failure(.connection(.originNotAllowed, .permanent, "the token enrolls an agent, not a relay"))
                }
                try self.refresh()
                return .success(node)
            case .failure(.relayNotAllowed):
                return .failure(.connection(.originNotAllowed, .permanent, EnrollmentRefusal.relayNotAllowed.description))
            case .failure(let refusal):
                return .failure(.connection(.enrollmentRefused, .permanent, refusal.description))
            }
        } catch {
            return .failure(.connection(.storeUnavailable, .retryable, "enrollment could not be stored"))
        }
    }

    private func mayReloadForUnknown() -> Bool {
        let now = ContinuousClock.now
        return self.reloadedForUnknown.withLock { last in
            if let last, now - last < Self.unknownNodeReloadInterval { return false }
            last = now
            return true
        }
    }

    /// The rights of `batch`'s origin, or the batch-level REJECT to send.
    public func rights(for batch: SealedBatch) -> Result<OriginRights, Reject> {
        self.snapshot.withLock { $0.directory }.rights(for: batch)
    }

    /// The stored form of an enrollment token: its SHA-256.
    public static func tokenHash(_ token: String) -> [UInt8] {
        SecretToken.hash(token)
    }
}

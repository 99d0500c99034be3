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
    struct Entry: Sendable {
        var node: RegisteredNode
        var key: Curve25519.Signing.PublicKey
    }

    private let store: any FeedbackStore
    private let entries: Mutex<[UUID: Entry]>

    /// Loads the registry from `store`.
    public init(store: any FeedbackStore) throws {
        self.store = store
        self.entries = Mutex([:])
        try self.refresh()
    }

    /// Reloads every node from the store.
    public func refresh() throws {
        var fresh: [UUID: Entry] = [:]
        for node in try self.store.nodes() {
            guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: node.publicKey) else { continue }
            fresh[node.nodeID] = Entry(node: node, key: key)
        }
        self.entries.withLock { $0 = fresh }
    }

    /// The registered node, if any.
    public func node(_ nodeID: UUID) -> RegisteredNode? {
        self.entries.withLock { $0[nodeID]?.node }
    }

    /// Checks a HELLO: proof of key possession, then a registered and unrevoked key for
    /// the node, or a valid enrollment token for an unknown node (which registers it).
    /// Blocks on the store when it redeems a token: call it off the event loop.
    ///
    /// - Returns: the node, or the connection-level REJECT to send.
    public func authenticate(_ hello: Hello, challenge: Challenge, now: Int64) -> Result<RegisteredNode, Reject> {
        do {
            try hello.verifyProof(for: challenge)
        } catch let error as WireError {
            return .failure(.connection(error.rejectCode, .permanent, error.detail))
        } catch {
            return .failure(.connection(.badProof, .permanent, "proof of key possession does not verify"))
        }
        if let node = self.node(hello.nodeID) {
            guard !node.revoked else {
                return .failure(.connection(.revokedKey, .permanent, "the key of node \(hello.nodeID) was revoked"))
            }
            guard node.publicKey == hello.publicKey else {
                return .failure(.connection(.unknownKey, .permanent, "node \(hello.nodeID) is registered with another key"))
            }
            guard hello.role == .agent || node.role == .relay else {
                return .failure(.connection(.originNotAllowed, .permanent, "node \(hello.nodeID) is not registered as a relay"))
            }
            return .success(node)
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

    /// The rights of `batch`'s origin, or the batch-level REJECT to send.
    public func rights(for batch: SealedBatch) -> Result<OriginRights, Reject> {
        let header = batch.header
        let entry = self.entries.withLock { $0[header.origin] }
        guard let entry else {
            return .failure(Reject(origin: header.origin, sequence: header.sequence, code: .unknownKey, disposition: .permanent,
                                   message: "origin \(header.origin) is not registered"))
        }
        guard !entry.node.revoked else {
            return .failure(Reject(origin: header.origin, sequence: header.sequence, code: .revokedKey, disposition: .permanent,
                                   message: "the key of origin \(header.origin) was revoked"))
        }
        guard entry.node.keyID == header.keyID else {
            return .failure(Reject(origin: header.origin, sequence: header.sequence, code: .unknownKey, disposition: .permanent,
                                   message: "key \(header.keyID) is not the registered key of origin \(header.origin)"))
        }
        return .success(OriginRights(key: entry.key, sites: entry.node.sites))
    }

    /// The stored form of an enrollment token: its SHA-256.
    public static func tokenHash(_ token: String) -> [UInt8] {
        Array(SHA256.hash(data: Data(token.utf8)))
    }
}

import Crypto
import NIOCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What a batch's origin is allowed: the key that must have signed the batch, and the
/// sites its records may name.
public struct OriginRights: Sendable {
    /// The origin's registered signing key.
    public var key: Curve25519.Signing.PublicKey
    /// The sites the origin may report for.
    public var sites: SiteScope

    /// Rights made of a key and a scope.
    public init(key: Curve25519.Signing.PublicKey, sites: SiteScope) {
        self.key = key
        self.sites = sites
    }
}

/// The registered nodes as a receiver checks them: the same rules at a hub (which loads them
/// from its store) and at a relay (which gets them from upstream in REGISTRY frames), so a
/// HELLO or a batch is refused alike wherever it arrives (PROTOCOL.md §6.2, §3.7).
public struct NodeDirectory: Sendable {
    /// One node with its parsed key.
    public struct Node: Sendable {
        /// The registry entry.
        public var entry: RegistryUpdate.Entry
        /// ``RegistryUpdate/Entry/publicKey`` as a key.
        public var key: Curve25519.Signing.PublicKey
    }

    /// The nodes by id. Entries whose public key is not a valid Ed25519 key are left out.
    public private(set) var nodes: [UUID: Node] = [:]

    /// A directory of `entries`.
    public init(_ entries: [RegistryUpdate.Entry] = []) {
        for entry in entries {
            guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: entry.publicKey) else { continue }
            self.nodes[entry.nodeID] = Node(entry: entry, key: key)
        }
    }

    /// Every entry, sorted by node id (the order REGISTRY snapshots are sent in).
    public var entries: [RegistryUpdate.Entry] {
        self.nodes.values.map(\.entry).sorted { $0.nodeID.uuidString < $1.nodeID.uuidString }
    }

    /// A revision that changes whenever any entry does and is the same wherever the same
    /// nodes are registered (several hubs on one database agree on it): the first 8 bytes of
    /// SHA-256 over the snapshot's encoding.
    public var revision: UInt64 {
        var hash = SHA256()
        for frame in RegistryUpdate.frames(revision: 0, entries: self.entries) {
            var buffer = ByteBuffer()
            Frame.registry(frame).write(into: &buffer)
            buffer.readableBytesView.withContiguousStorageIfAvailable { hash.update(bufferPointer: UnsafeRawBufferPointer($0)) }
        }
        return hash.finalize().withUnsafeBytes { $0.loadUnaligned(as: UInt64.self).bigEndian }
    }

    /// Checks a HELLO from a node this directory knows: proof of key possession under the
    /// challenge sent, the registered and unrevoked key, and the relay role when the HELLO
    /// claims it. Returns nil for a node the directory does not know (the caller enrolls it or
    /// refuses it), else the entry or the connection-level REJECT.
    public func authenticate(_ hello: Hello, challenge: Challenge) -> Result<RegistryUpdate.Entry, Reject>? {
        do {
            try hello.verifyProof(for: challenge)
        } catch let error as WireError {
            return .failure(.connection(error.rejectCode, .permanent, error.detail))
        } catch {
            return .failure(.connection(.badProof, .permanent, "proof of key possession does not verify"))
        }
        guard let node = self.nodes[hello.nodeID]?.entry else { return nil }
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

    /// The rights of `batch`'s origin, or the batch-level REJECT to send.
    public func rights(for batch: SealedBatch) -> Result<OriginRights, Reject> {
        let header = batch.header
        func refuse(_ code: RejectCode, _ message: String) -> Result<OriginRights, Reject> {
            .failure(Reject(origin: header.origin, sequence: header.sequence, code: code, disposition: .permanent, message: message))
        }
        guard let node = self.nodes[header.origin] else { return refuse(.unknownKey, "origin \(header.origin) is not registered") }
        guard !node.entry.revoked else { return refuse(.revokedKey, "the key of origin \(header.origin) was revoked") }
        guard node.entry.keyID == header.keyID else {
            return refuse(.unknownKey, "key \(header.keyID) is not the registered key of origin \(header.origin)")
        }
        return .success(OriginRights(key: node.key, sites: node.entry.sites))
    }

    /// Whether a connected node must be cut off: it is revoked or no longer registered.
    public func mustDisconnect(_ nodeID: UUID) -> Bool {
        self.nodes[nodeID].map(\.entry.revoked) ?? true
    }
}

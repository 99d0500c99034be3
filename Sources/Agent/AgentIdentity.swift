import Crypto
import Support
import Wire

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Who an agent is: its node id (the origin of every record it captures) and its Ed25519
/// signing key. Stored as a small JSON file readable only by its owner.
public struct AgentIdentity: Sendable {
    /// The agent's node id.
    public let nodeID: UUID
    /// The agent's signing key.
    public let signingKey: Curve25519.Signing.PrivateKey

    /// The id of the public key, as carried in batch headers.
    public var keyID: KeyID { KeyID(self.signingKey.publicKey) }

    /// The public key, base64 of its 32 raw bytes: what a hub operator registers.
    public var publicKeyBase64: String { self.signingKey.publicKey.rawRepresentation.base64EncodedString() }

    /// Creates an identity from its parts.
    public init(nodeID: UUID, signingKey: Curve25519.Signing.PrivateKey) {
        self.nodeID = nodeID
        self.signingKey = signingKey
    }

    /// A new identity: a random node id and a new key.
    public static func generate() -> AgentIdentity {
        AgentIdentity(nodeID: UUID(), signingKey: Curve25519.Signing.PrivateKey())
    }

    private struct File: Codable {
        var nodeId: UUID
        var privateKey: String
    }

    /// Reads an identity file.
    ///
    /// - Throws: ``AgentIdentityError`` naming the file and what is wrong with it.
    public static func load(from path: String) throws -> AgentIdentity {
        let read: [UInt8]?
        do {
            read = try BoundedFile.read(path, maxBytes: 64 * 1024)
        } catch {
            throw AgentIdentityError(path: path, reason: "cannot be read (\(error.cause))")
        }
        guard let data = read.map({ Data($0) }) else {
            throw AgentIdentityError(path: path, reason: "is larger than 64 KiB: not an identity file")
        }
        let file: File
        do {
            file = try JSONDecoder().decode(File.self, from: data)
        } catch {
            throw AgentIdentityError(path: path, reason: "is not an identity file: expected JSON with nodeId and privateKey")
        }
        guard let seed = Data(base64Encoded: file.privateKey), seed.count == 32,
            let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: seed)
        else {
            throw AgentIdentityError(path: path, reason: "privateKey is not the base64 of a 32-byte Ed25519 key")
        }
        return AgentIdentity(nodeID: file.nodeId, signingKey: key)
    }

    /// Writes the identity to `path`, owner-only (0600) from its first open, refusing to
    /// replace an existing file unless `overwrite` is set.
    public func save(to path: String, overwrite: Bool = false) throws {
        let file = File(nodeId: self.nodeID, privateKey: self.signingKey.rawRepresentation.base64EncodedString())
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(file)
        do {
            try SecretFile.write(data, to: path, replacing: overwrite)
        } catch where error.code == .exists {
            throw AgentIdentityError(path: path, reason: "already exists; refusing to replace an agent's key (use --force)")
        } catch {
            throw AgentIdentityError(path: path, reason: "cannot be written (\(error.reason))")
        }
    }
}

/// A problem with an agent identity file.
public struct AgentIdentityError: Error, CustomStringConvertible {
    /// The file.
    public var path: String
    /// What is wrong with it.
    public var reason: String

    /// "identity file PATH REASON".
    public var description: String { "identity file \(self.path) \(self.reason)" }
}

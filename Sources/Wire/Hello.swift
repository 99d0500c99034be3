import Crypto
import NIOCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// HELLO, node → hub: who the node is, the key it signs with, and proof that it holds that
/// key (an Ed25519 signature over the hub's challenge and this frame's other fields).
///
/// A node whose key the hub does not know yet may carry a one-time enrollment token; the hub
/// then registers ``publicKey`` for ``nodeID`` if the token is valid.
public struct Hello: Sendable, Hashable {
    /// Domain separation for the proof: "FMH1".
    public static let proofMagic: UInt32 = 0x464D_4831
    /// Longest enrollment token, in bytes.
    public static let maxTokenLength = 128
    /// Encoded size without a token: `u16 version, 16 nodeId, u8 role, u64 keyId,
    /// 32 publicKey, u8 tokenLength, 64 proof`.
    public static let minimumLength = 124

    /// What a connecting node does.
    public enum Role: UInt8, Sendable, Hashable {
        /// Sends its own batches only.
        case agent = 1
        /// Also forwards other agents' sealed batches unchanged.
        case relay = 2
    }

    /// The protocol version the node chose from the challenge's range.
    public var version: UInt16
    /// The node's id (an agent's id is the origin of its records).
    public var nodeID: UUID
    /// Agent or relay.
    public var role: Role
    /// Id of ``publicKey``.
    public var keyID: KeyID
    /// The node's 32-byte Ed25519 public key.
    public var publicKey: [UInt8]
    /// A one-time enrollment token (UTF-8, at most 128 bytes), or empty.
    public var enrollmentToken: String
    /// Ed25519 signature over ``proofMessage(for:)``.
    public var proof: [UInt8]

    /// Makes a signed HELLO answering `challenge`.
    public init(
        answering challenge: Challenge,
        version: UInt16,
        nodeID: UUID,
        role: Role,
        signingKey: Curve25519.Signing.PrivateKey,
        enrollmentToken: String = ""
    ) throws {
        self.version = version
        self.nodeID = nodeID
        self.role = role
        self.keyID = KeyID(signingKey.publicKey)
        self.publicKey = Array(signingKey.publicKey.rawRepresentation)
        self.enrollmentToken = enrollmentToken
        self.proof = []
        guard enrollmentToken.utf8.count <= Self.maxTokenLength else {
            throw WireError.length("hello.enrollmentToken", enrollmentToken.utf8.count, max: Self.maxTokenLength)
        }
        let message = self.proofMessage(for: challenge)
        self.proof = Array(try message.withUnsafeReadableBytes { try signingKey.signature(for: $0) })
    }

    init(
        version: UInt16,
        nodeID: UUID,
        role: Role,
        keyID: KeyID,
        publicKey: [UInt8],
        enrollmentToken: String,
        proof: [UInt8]
    ) {
        self.version = version
        self.nodeID = nodeID
        self.role = role
        self.keyID = keyID
        self.publicKey = publicKey
        self.enrollmentToken = enrollmentToken
        self.proof = proof
    }

    /// The bytes the proof signs: `"FMH1"`, the challenge nonce and hub id, then this
    /// HELLO's encoding up to (not including) the proof.
    public func proofMessage(for challenge: Challenge) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(Self.proofMagic)
        buffer.writeBytes(challenge.nonce)
        buffer.writeUUID(challenge.hubID)
        self.writeBody(into: &buffer)
        return buffer
    }

    /// The public key as a CryptoKit key.
    public func signingPublicKey() throws -> Curve25519.Signing.PublicKey {
        do {
            return try Curve25519.Signing.PublicKey(rawRepresentation: self.publicKey)
        } catch {
            throw WireError(.unknownKey, field: "hello.publicKey", "public key is not a valid Ed25519 key")
        }
    }

    /// Checks that the key id belongs to the public key and the proof signs `challenge`.
    public func verifyProof(for challenge: Challenge) throws {
        let key = try self.signingPublicKey()
        guard KeyID(key) == self.keyID else {
            throw WireError(.keyMismatch, field: "hello.keyId", "key id \(self.keyID) is not the id of the public key sent")
        }
        let message = self.proofMessage(for: challenge)
        let valid = message.withUnsafeReadableBytes { raw in
            self.proof.withUnsafeBytes { key.isValidSignature($0, for: raw) }
        }
        guard valid else {
            throw WireError(.badProof, field: "hello.proof", "proof of key possession does not verify")
        }
    }

    private func writeBody(into buffer: inout ByteBuffer) {
        buffer.writeInteger(self.version)
        buffer.writeUUID(self.nodeID)
        buffer.writeMultipleIntegers(self.role.rawValue, self.keyID.rawValue)
        buffer.writeBytes(self.publicKey)
        buffer.writeString8(self.enrollmentToken)
    }

    func write(into buffer: inout ByteBuffer) {
        self.writeBody(into: &buffer)
        buffer.writeBytes(self.proof)
    }

    static func read(from buffer: inout ByteBuffer) throws -> Hello {
        let version = try buffer.readWire(UInt16.self, "hello.version")
        let nodeID = try buffer.readUUID("hello.nodeId")
        let roleByte = try buffer.readWire(UInt8.self, "hello.role")
        guard let role = Role(rawValue: roleByte) else {
            throw WireError(.lengthOutOfRange, field: "hello.role", "role \(roleByte) is not agent (1) or relay (2)")
        }
        let keyID = KeyID(rawValue: try buffer.readWire(UInt64.self, "hello.keyId"))
        let publicKey = try buffer.readWireBytes(32, "hello.publicKey")
        let token = try buffer.readString8("hello.enrollmentToken", max: Self.maxTokenLength)
        let proof = try buffer.readWireBytes(64, "hello.proof")
        return Hello(
            version: version,
            nodeID: nodeID,
            role: role,
            keyID: keyID,
            publicKey: publicKey,
            enrollmentToken: token,
            proof: proof
        )
    }
}

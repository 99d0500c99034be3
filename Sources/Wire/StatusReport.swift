import Crypto
import NIOCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// STATUS, node → upstream (protocol version 2): a node's report of its own state, signed by
/// the node, so relays pass it on byte for byte and the hub knows it came from that node.
///
/// On the wire: `16 nodeId`, `u64 keyId`, `u64 sentAt` (ms since the epoch), `u32 bodyLength`
/// (at most ``maxBodyLength``), the body (a UTF-8 JSON object, ``NodeStatus``), and a 64-byte
/// Ed25519 signature over `"FMS1"` followed by every byte before the signature.
public struct StatusReport: Sendable, Hashable {
    /// Domain separation for the signature: "FMS1".
    public static let signatureMagic: UInt32 = 0x464D_5331
    /// Longest body.
    public static let maxBodyLength = 16 << 10
    /// Encoded size without the body.
    public static let minimumLength = 36 + 64

    /// The reporting node.
    public var nodeID: UUID
    /// Id of the key that signed the report.
    public var keyID: KeyID
    /// When the node made the report, ms since the epoch; a hub keeps only the newest.
    public var sentAt: Int64
    /// The report, a JSON object (``NodeStatus``).
    public var body: [UInt8]
    /// Ed25519 over `"FMS1"` and the fields above as encoded.
    public var signature: [UInt8]

    /// Signs `status` as `nodeID` with `signingKey`.
    public init(nodeID: UUID, signingKey: Curve25519.Signing.PrivateKey, sentAt: Int64, status: NodeStatus) throws {
        self.nodeID = nodeID
        self.keyID = KeyID(signingKey.publicKey)
        self.sentAt = sentAt
        self.body = Array(try status.encoded())
        self.signature = []
        self.signature = Array(try signingKey.signature(for: Data(self.signedBytes.readableBytesView)))
    }

    private init(nodeID: UUID, keyID: KeyID, sentAt: Int64, body: [UInt8], signature: [UInt8]) {
        self.nodeID = nodeID
        self.keyID = keyID
        self.sentAt = sentAt
        self.body = body
        self.signature = signature
    }

    private var signedBytes: ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(Self.signatureMagic)
        self.writeFields(into: &buffer)
        return buffer
    }

    private func writeFields(into buffer: inout ByteBuffer) {
        buffer.writeUUID(self.nodeID)
        buffer.writeMultipleIntegers(self.keyID.rawValue, UInt64(bitPattern: self.sentAt), UInt32(self.body.count))
        buffer.writeBytes(self.body)
    }

    /// The body, checked: signed by `key` (the node's registered key, whose id must be
    /// ``keyID``) and a JSON object of the known shape.
    ///
    /// - Throws: ``WireError`` `badSignature` or `invalidRecord` (field `status`).
    public func verified(by key: Curve25519.Signing.PublicKey) throws -> NodeStatus {
        guard KeyID(key) == self.keyID else {
            throw WireError(.keyMismatch, field: "status.keyId", "key \(self.keyID) is not the registered key of node \(self.nodeID)")
        }
        guard key.isValidSignature(self.signature, for: Data(self.signedBytes.readableBytesView)) else { throw WireError(.badSignature, field: "status.signature", "the status report of node \(self.nodeID) is not signed by its key") }
        return try NodeStatus(decoding: self.body)
    }

    func write(into buffer: inout ByteBuffer) {
        self.writeFields(into: &buffer)
        buffer.writeBytes(self.signature)
    }

    static func read(from buffer: inout ByteBuffer) throws -> StatusReport {
        let nodeID = try buffer.readUUID("status.nodeId")
        guard let (keyID, sentAt, length) = buffer.readMultipleIntegers(as: (UInt64, UInt64, UInt32).self) else {
            throw WireError.truncated("status")
        }
        guard Int(length) <= Self.maxBodyLength else { throw WireError.length("status.bodyLength", Int(length), max: Self.maxBodyLength) }
        let body = try buffer.readWireBytes(Int(length), "status.body")
        let signature = try buffer.readWireBytes(64, "status.signature")
        return StatusReport(nodeID: nodeID, keyID: KeyID(rawValue: keyID), sentAt: Int64(bitPattern: sentAt), body: body, signature: signature)
    }
}

/// What a node reports about itself in a STATUS frame (a JSON object; unknown keys are
/// ignored so later versions can add some).
public struct NodeStatus: Sendable, Hashable, Codable {
    /// One capture source's state.
    public struct Source: Sendable, Hashable, Codable {
        /// Its name in the node's configuration.
        public var name: String
        /// Records captured since the node started.
        public var captured: Int
        /// Errors since the node started.
        public var errors: Int
        /// The last error, if any.
        public var lastError: String?

        /// Creates a source entry.
        public init(name: String, captured: Int, errors: Int, lastError: String?) {
            self.name = name
            self.captured = captured
            self.errors = errors
            self.lastError = lastError
        }
    }

    /// The node's software version.
    public var version: String
    /// `agent` or `relay`.
    public var role: String
    /// The sites the node is configured for (`*` for any).
    public var sites: [String]
    /// Records in the spool not yet acknowledged upstream (unsealed and sealed).
    public var backlogRecords: Int
    /// Batches sealed or held and not yet acknowledged upstream.
    public var backlogBatches: Int
    /// Capture time of the oldest rating not yet acknowledged, ms since the epoch.
    public var oldestPendingAt: Int64?
    /// The node's capture sources.
    public var sources: [Source]
    /// The upstream (hub or relay) it is connected to, `HOST:PORT`.
    public var upstream: String?
    /// Nodes connected below it (relays only).
    public var downstream: Int?

    /// Creates a status.
    public init(
        version: String, role: String, sites: [String], backlogRecords: Int, backlogBatches: Int, oldestPendingAt: Int64?,
        sources: [Source], upstream: String?, downstream: Int?
    ) {
        self.version = version
        self.role = role
        self.sites = sites
        self.backlogRecords = backlogRecords
        self.backlogBatches = backlogBatches
        self.oldestPendingAt = oldestPendingAt
        self.sources = sources
        self.upstream = upstream
        self.downstream = downstream
    }

    /// The JSON body.
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = try encoder.encode(self)
        guard data.count <= StatusReport.maxBodyLength else {
            throw WireError.length("status.body", data.count, max: StatusReport.maxBodyLength)
        }
        return data
    }

    /// Decodes a body.
    ///
    /// - Throws: ``WireError`` `invalidRecord`, field `status`, for anything else.
    public init(decoding body: [UInt8]) throws {
        do {
            self = try JSONDecoder().decode(NodeStatus.self, from: Data(body))
        } catch {
            throw WireError.invalid("status", "the status body is not a status report: \(error)")
        }
    }
}

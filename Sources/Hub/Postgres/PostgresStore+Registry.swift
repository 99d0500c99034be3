import Foundation
import NIOCore
import PostgresNIO
import Wire

extension PostgresStore: RegistryStore {
    public func nodes() throws -> [RegisteredNode] {
        try self.pool.withSession { session in
            try session.query(
                "SELECT node_id, public_key, key_id, role, sites, created_at, revoked_at FROM nodes ORDER BY created_at"
            ).compactMap(Self.node)
        }
    }

    public func addNode(_ node: RegisteredNode) throws {
        try self.pool.withSession { session in
            let inserted = try session.query(Self.insertQuery(node)).metadata.rows ?? 0
            guard inserted == 1 else { throw StoreError("node \(node.nodeID) is already registered") }
        }
    }

    public func revokeNode(_ nodeID: UUID, at time: Int64) throws -> Bool {
        try self.pool.withSession { session in
            try session.execute("UPDATE nodes SET revoked_at = \(time) WHERE node_id = \(nodeID) AND revoked_at IS NULL")
            return try session.query("SELECT COUNT(*) FROM nodes WHERE node_id = \(nodeID)").first?.decode(Int.self) == 1
        }
    }

    public func setSites(_ sites: SiteScope, of nodeID: UUID) throws -> Bool {
        try self.pool.withSession { session in
            try session.query("UPDATE nodes SET sites = \(sites.storedForm) WHERE node_id = \(nodeID)").metadata.rows == 1
        }
    }

    public func addEnrollmentToken(hash: [UInt8], sites: SiteScope, role: Hello.Role, createdAt: Int64, expiresAt: Int64) throws {
        try self.pool.withSession { session in
            try session.execute(
                """
                INSERT INTO enrollment_tokens (token_hash, sites, role, created_at, expires_at)
                VALUES (\(ByteBuffer(bytes: hash)), \(sites.storedForm), \(Int16(role.rawValue)), \(createdAt), \(expiresAt))
                """
            )
        }
    }

    /// The token's row is locked (`FOR UPDATE`) for the redemption, so two hubs redeeming
    /// one token at once enroll one node.
    public func redeemEnrollmentToken(hash: [UInt8], node: RegisteredNode, at time: Int64) throws -> Result<RegisteredNode, EnrollmentRefusal> {
        try self.pool.transaction { session in
            let hash = ByteBuffer(bytes: hash)
            guard
                let token = try session.query(
                    "SELECT sites, role, expires_at, used_at, node_id FROM enrollment_tokens WHERE token_hash = \(hash) FOR UPDATE"
                ).first
            else {
                return .failure(.unknownToken)
            }
            let (sites, tokenRole, expiresAt, usedAt, usedBy) = try token.decode((String, Int16, Int64, Int64?, UUID?).self)
            let existing = try session.query(
                "SELECT node_id, public_key, key_id, role, sites, created_at, revoked_at FROM nodes WHERE node_id = \(node.nodeID)"
            ).first.flatMap(Self.node)
            if usedAt != nil {
                // The same node retrying (its first HELLO redeemed the token, the answer was
                // lost or is still on its way): enrolled, not refused for good.
                if usedBy == node.nodeID, let existing, existing.publicKey == node.publicKey, !existing.revoked {
                    return .success(existing)
                }
                return .failure(.alreadyUsed)
            }
            if expiresAt < time { return .failure(.expired) }
            let role = Hello.Role(rawValue: UInt8(clamping: tokenRole)) ?? .agent
            if node.role == .relay, role != .relay { return .failure(.relayNotAllowed) }
            if existing != nil { return .failure(.nodeTaken) }
            var enrolled = node
            enrolled.sites = SiteScope(storedFormOrNone: sites)
            enrolled.role = role
            enrolled.createdAt = time
            guard try session.query(Self.insertQuery(enrolled)).metadata.rows == 1 else { return .failure(.nodeTaken) }
            try session.execute("UPDATE enrollment_tokens SET used_at = \(time), node_id = \(node.nodeID) WHERE token_hash = \(hash)")
            return .success(enrolled)
        }
    }

    private static func insertQuery(_ node: RegisteredNode) -> PostgresQuery {
        """
        INSERT INTO nodes (node_id, public_key, key_id, role, sites, created_at, revoked_at)
        VALUES (\(node.nodeID), \(ByteBuffer(bytes: node.publicKey)), \(Int64(bitPattern: node.keyID.rawValue)), \(Int16(node.role.rawValue)),
            \(node.sites.storedForm), \(node.createdAt), \(node.revoked ? node.createdAt : nil))
        ON CONFLICT (node_id) DO NOTHING
        """
    }

    /// A `nodes` row (node_id, public_key, key_id, role, sites, created_at, revoked_at), nil
    /// when it holds an unknown role.
    static func node(_ row: PostgresRow) throws -> RegisteredNode? {
        let (nodeID, key, keyID, role, sites, createdAt, revokedAt) = try row.decode((UUID, ByteBuffer, Int64, Int16, String, Int64, Int64?).self)
        guard let role = Hello.Role(rawValue: UInt8(clamping: role)) else { return nil }
        return RegisteredNode(
            nodeID: nodeID, publicKey: Array(key.readableBytesView), keyID: KeyID(rawValue: UInt64(bitPattern: keyID)), role: role,
            sites: SiteScope(storedFormOrNone: sites), revoked: revokedAt != nil, createdAt: createdAt
        )
    }
}

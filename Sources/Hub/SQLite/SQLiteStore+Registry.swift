import Foundation
import GRDB
import Wire

extension SQLiteStore: RegistryStore {
    public func nodes() throws -> [RegisteredNode] {
        try self.pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM nodes ORDER BY created_at").compactMap(Self.node)
        }
    }

    public func addNode(_ node: RegisteredNode) throws {
        do {
            try self.pool.write { db in try Self.insert(node, db) }
        } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
            throw StoreError("node \(node.nodeID) is already registered")
        }
    }

    public func revokeNode(_ nodeID: UUID, at time: Int64) throws -> Bool {
        try self.pool.write { db in
            try db.execute(
                sql: "UPDATE nodes SET revoked_at = ? WHERE node_id = ? AND revoked_at IS NULL",
                arguments: [time, nodeID]
            )
            return try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM nodes WHERE node_id = ?", arguments: [nodeID]) == 1
        }
    }

    public func setSites(_ sites: SiteScope, of nodeID: UUID) throws -> Bool {
        try self.pool.write { db in
            try db.execute(sql: "UPDATE nodes SET sites = ? WHERE node_id = ?", arguments: [sites.storedForm, nodeID])
            return db.changesCount == 1
        }
    }

    public func addEnrollmentToken(hash: [UInt8], sites: SiteScope, role: Hello.Role, createdAt: Int64, expiresAt: Int64) throws {
        try self.pool.write { db in
            try db.execute(
                sql: "INSERT INTO enrollment_tokens (token_hash, sites, role, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                arguments: [Data(hash), sites.storedForm, Int(role.rawValue), createdAt, expiresAt]
            )
        }
    }

    public func redeemEnrollmentToken(
        hash: [UInt8],
        node: RegisteredNode,
        at time: Int64
    ) throws -> Result<RegisteredNode, EnrollmentRefusal> {
        try self.pool.write { db in
            guard
                let token = try Row.fetchOne(
                    db,
                    sql: "SELECT sites, role, expires_at, used_at, node_id FROM enrollment_tokens WHERE token_hash = ?",
                    arguments: [Data(hash)]
                )
            else {
                return .failure(.unknownToken)
            }
            if (token["used_at"] as Int64?) != nil {
                // The same node retrying (its first HELLO redeemed the token, the answer was
                // lost or is still on its way): enrolled, not refused for good.
                if (token["node_id"] as UUID?) == node.nodeID,
                    let row = try Row.fetchOne(db, sql: "SELECT * FROM nodes WHERE node_id = ?", arguments: [node.nodeID]),
                    let enrolled = Self.node(row), enrolled.publicKey == node.publicKey, !enrolled.revoked
                {
                    return .success(enrolled)
                }
                return .failure(.alreadyUsed)
            }
            if (token["expires_at"] as Int64) < time { return .failure(.expired) }
            let role = Hello.Role(rawValue: UInt8(token["role"] as Int)) ?? .agent
            if node.role == .relay, role != .relay { return .failure(.relayNotAllowed) }
            if try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM nodes WHERE node_id = ?", arguments: [node.nodeID]) != 0 {
                return .failure(.nodeTaken)
            }
            var enrolled = node
            enrolled.sites = SiteScope(storedFormOrNone: token["sites"])
            enrolled.role = role
            enrolled.createdAt = time
            try Self.insert(enrolled, db)
            try db.execute(
                sql: "UPDATE enrollment_tokens SET used_at = ?, node_id = ? WHERE token_hash = ?",
                arguments: [time, node.nodeID, Data(hash)]
            )
            return .success(enrolled)
        }
    }

    private static func insert(_ node: RegisteredNode, _ db: Database) throws {
        try db.execute(
            sql: """
                INSERT INTO nodes (node_id, public_key, key_id, role, sites, created_at, revoked_at)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                node.nodeID, Data(node.publicKey), Int64(bitPattern: node.keyID.rawValue), Int(node.role.rawValue),
                node.sites.storedForm, node.createdAt, node.revoked ? node.createdAt : nil,
            ]
        )
    }

    static func node(_ row: Row) -> RegisteredNode? {
        guard let nodeID = row["node_id"] as UUID?, let key = row["public_key"] as Data?,
            let role = Hello.Role(rawValue: UInt8(clamping: row["role"] as Int))
        else { return nil }
        return RegisteredNode(
            nodeID: nodeID,
            publicKey: [UInt8](key),
            keyID: KeyID(rawValue: UInt64(bitPattern: row["key_id"] as Int64)),
            role: role,
            sites: SiteScope(storedFormOrNone: row["sites"]),
            revoked: (row["revoked_at"] as Int64?) != nil,
            createdAt: row["created_at"]
        )
    }
}

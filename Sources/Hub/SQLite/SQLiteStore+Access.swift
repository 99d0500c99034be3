import Foundation
import GRDB
import Wire

extension SQLiteStore: AccessStore {
    public func addAPIToken(_ token: APIToken, hash: [UInt8], by actor: AuditActor) throws {
        do {
            try self.pool.write { db in
                try db.execute(
                    sql: """
                        INSERT INTO api_tokens (id, token_hash, name, role, sites, created_at, expires_at)
                        VALUES (?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [token.id, Data(hash), token.name, token.role.rawValue, token.sites.storedForm, token.createdAt, token.expiresAt]
                )
                try Self.audit(
                    db, at: token.createdAt, actor: actor, action: "token.added", object: token.id, from: "", to: token.role.rawValue,
                    note: token.auditNote
                )
            }
        } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
            throw StoreError("an API token with this id or secret already exists")
        }
    }

    public func apiTokens() throws -> [APIToken] {
        try self.pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM api_tokens ORDER BY created_at, id").compactMap(Self.apiToken)
        }
    }

    public func apiToken(hash: [UInt8]) throws -> APIToken? {
        try self.pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM api_tokens WHERE token_hash = ?", arguments: [Data(hash)]).flatMap(Self.apiToken)
        }
    }

    public func revokeAPIToken(_ id: UUID, at time: Int64, by actor: AuditActor) throws -> Bool {
        try self.pool.write { db in
            guard let token = try Row.fetchOne(db, sql: "SELECT * FROM api_tokens WHERE id = ?", arguments: [id]).flatMap(Self.apiToken) else {
                return false
            }
            guard token.revokedAt == nil else { return true }
            try db.execute(sql: "UPDATE api_tokens SET revoked_at = ? WHERE id = ?", arguments: [time, id])
            try Self.audit(db, at: time, actor: actor, action: "token.revoked", object: id, from: token.role.rawValue, to: "revoked", note: token.name)
            return true
        }
    }

    public func auditTrail(object: UUID?, limit: Int) throws -> [AuditEntry] {
        try self.pool.read { db in
            let rows =
                if let object {
                    try Row.fetchAll(db, sql: "SELECT * FROM audit WHERE object = ? ORDER BY sequence DESC LIMIT ?", arguments: [object, limit])
                } else {
                    try Row.fetchAll(db, sql: "SELECT * FROM audit ORDER BY sequence DESC LIMIT ?", arguments: [limit])
                }
            return rows.compactMap { row in
                guard let object = row["object"] as UUID? else { return nil }
                return AuditEntry(
                    sequence: row["sequence"], at: row["at"], actor: AuditActor(tokenID: row["actor_token"], name: row["actor_name"]),
                    action: row["action"], object: object, from: row["from_state"], to: row["to_state"], note: row["note"]
                )
            }
        }
    }

    /// Adds an audit entry inside the caller's transaction.
    static func audit(_ db: Database, at time: Int64, actor: AuditActor, action: String, object: UUID, from: String, to: String, note: String) throws {
        try db.execute(
            sql: """
                INSERT INTO audit (at, actor_token, actor_name, action, object, from_state, to_state, note)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [time, actor.tokenID, actor.name, action, object, from, to, note]
        )
    }

    public func addSession(hash: [UInt8], token: UUID, createdAt: Int64, expiresAt: Int64) throws {
        try self.pool.write { db in
            try db.execute(sql: "DELETE FROM sessions WHERE expires_at <= ?", arguments: [createdAt])
            try db.execute(
                sql: "INSERT INTO sessions (hash, token_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
                arguments: [Data(hash), token, createdAt, expiresAt]
            )
            try db.execute(
                sql: """
                    DELETE FROM sessions WHERE token_id = ? AND hash NOT IN
                        (SELECT hash FROM sessions WHERE token_id = ? ORDER BY created_at DESC, hash LIMIT ?)
                    """,
                arguments: [token, token, APIToken.maxSessions]
            )
        }
    }

    public func session(hash: [UInt8], at now: Int64) throws -> (token: APIToken, expiresAt: Int64)? {
        try self.pool.read { db in
            guard
                let row = try Row.fetchOne(
                    db,
                    sql: "SELECT t.*, s.expires_at AS session_expires_at FROM sessions s JOIN api_tokens t ON t.id = s.token_id WHERE s.hash = ? AND s.expires_at > ?",
                    arguments: [Data(hash), now]
                ), let token = Self.apiToken(row)
            else { return nil }
            return (token, row["session_expires_at"])
        }
    }

    public func removeSession(hash: [UInt8]) throws {
        try self.pool.write { db in
            try db.execute(sql: "DELETE FROM sessions WHERE hash = ?", arguments: [Data(hash)])
        }
    }

    private static func apiToken(_ row: Row) -> APIToken? {
        guard let id = row["id"] as UUID?, let role = APIToken.Role(rawValue: row["role"]) else { return nil }
        return APIToken(
            id: id, name: row["name"], role: role, sites: SiteScope(storedFormOrNone: row["sites"]), createdAt: row["created_at"],
            expiresAt: row["expires_at"], revokedAt: row["revoked_at"]
        )
    }
}

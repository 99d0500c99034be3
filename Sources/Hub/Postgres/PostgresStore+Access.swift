import Foundation
import NIOCore
import PostgresNIO
import Wire

extension PostgresStore: AccessStore {
    public func addAPIToken(_ token: APIToken, hash: [UInt8], by actor: AuditActor) throws {
        try self.pool.transaction { session in
            let inserted = try session.query(
                """
                INSERT INTO api_tokens (id, token_hash, name, role, sites, created_at, expires_at)
                VALUES (\(token.id), \(ByteBuffer(bytes: hash)), \(token.name), \(token.role.rawValue), \(token.sites.storedForm),
                    \(token.createdAt), \(token.expiresAt))
                ON CONFLICT DO NOTHING
                """
            ).metadata.rows ?? 0
            guard inserted == 1 else { throw StoreError("an API token with this id or secret already exists") }
            try Self.audit(
                session, at: token.createdAt, actor: actor, action: "token.added", object: token.id, from: "", to: token.role.rawValue,
                note: token.auditNote
            )
        }
    }

    public func apiTokens() throws -> [APIToken] {
        try self.pool.withSession { session in
            try session.query("SELECT \(unescaped: Self.tokenColumns) FROM api_tokens ORDER BY created_at, id").compactMap(Self.apiToken)
        }
    }

    public func apiToken(hash: [UInt8]) throws -> APIToken? {
        try self.pool.withSession { session in
            try session.query("SELECT \(unescaped: Self.tokenColumns) FROM api_tokens WHERE token_hash = \(ByteBuffer(bytes: hash))").first
                .flatMap(Self.apiToken)
        }
    }

    /// The token's row is locked for the change, so two revocations at once make one entry.
    public func revokeAPIToken(_ id: UUID, at time: Int64, by actor: AuditActor) throws -> Bool {
        try self.pool.transaction { session in
            guard
                let token = try session.query("SELECT \(unescaped: Self.tokenColumns) FROM api_tokens WHERE id = \(id) FOR UPDATE").first
                    .flatMap(Self.apiToken)
            else { return false }
            guard token.revokedAt == nil else { return true }
            try session.execute("UPDATE api_tokens SET revoked_at = \(time) WHERE id = \(id)")
            try Self.audit(session, at: time, actor: actor, action: "token.revoked", object: id, from: token.role.rawValue, to: "revoked", note: token.name)
            return true
        }
    }

    /// The token's row is locked while its sessions are counted, so two logins at once
    /// keep the cap.
    public func addSession(hash: [UInt8], token: UUID, createdAt: Int64, expiresAt: Int64) throws {
        try self.pool.transaction { session in
            try session.execute("SELECT 1 FROM api_tokens WHERE id = \(token) FOR UPDATE")
            try session.execute("DELETE FROM sessions WHERE expires_at <= \(createdAt)")
            try session.execute(
                """
                INSERT INTO sessions (hash, token_id, created_at, expires_at)
                VALUES (\(ByteBuffer(bytes: hash)), \(token), \(createdAt), \(expiresAt))
                """
            )
            try session.execute(
                """
                DELETE FROM sessions WHERE token_id = \(token) AND hash NOT IN
                    (SELECT hash FROM sessions WHERE token_id = \(token) ORDER BY created_at DESC, hash LIMIT \(Int64(APIToken.maxSessions)))
                """
            )
        }
    }

    public func session(hash: [UInt8], at now: Int64) throws -> (token: APIToken, expiresAt: Int64)? {
        try self.pool.withSession { session in
            guard
                let row = try session.query(
                    """
                    SELECT t.id, t.name, t.role, t.sites, t.created_at, t.expires_at, t.revoked_at, s.expires_at
                    FROM sessions s JOIN api_tokens t ON t.id = s.token_id
                    WHERE s.hash = \(ByteBuffer(bytes: hash)) AND s.expires_at > \(now)
                    """
                ).first, let token = try Self.apiToken(row)
            else { return nil }
            return (token, try row.makeRandomAccess()[7].decode(Int64.self))
        }
    }

    public func removeSession(hash: [UInt8]) throws {
        try self.pool.withSession { session in
            try session.execute("DELETE FROM sessions WHERE hash = \(ByteBuffer(bytes: hash))")
        }
    }

    public func auditTrail(object: UUID?, limit: Int) throws -> [AuditEntry] {
        try self.pool.withSession { session in
            try session.query(
                """
                SELECT sequence, at, actor_token, actor_name, action, object, from_state, to_state, note FROM audit
                WHERE (\(object)::uuid IS NULL OR object = \(object))
                ORDER BY sequence DESC LIMIT \(Int64(limit))
                """
            ).map { row in
                let (sequence, at, token, name, action, object, from, to, note) =
                    try row.decode((Int64, Int64, UUID?, String, String, UUID, String, String, String).self)
                return AuditEntry(
                    sequence: sequence, at: at, actor: AuditActor(tokenID: token, name: name), action: action, object: object, from: from, to: to,
                    note: note
                )
            }
        }
    }

    /// Adds an audit entry inside the caller's transaction.
    static func audit(
        _ session: PostgresSession, at time: Int64, actor: AuditActor, action: String, object: UUID, from: String, to: String, note: String
    ) throws {
        try session.execute(
            """
            INSERT INTO audit (at, actor_token, actor_name, action, object, from_state, to_state, note)
            VALUES (\(time), \(actor.tokenID), \(actor.name), \(action), \(object), \(from), \(to), \(note))
            """
        )
    }

    private static let tokenColumns = "id, name, role, sites, created_at, expires_at, revoked_at"

    private static func apiToken(_ row: PostgresRow) throws -> APIToken? {
        let (id, name, role, sites, createdAt, expiresAt, revokedAt) = try row.decode((UUID, String, String, String, Int64, Int64?, Int64?).self)
        guard let role = APIToken.Role(rawValue: role) else { return nil }
        return APIToken(
            id: id, name: name, role: role, sites: SiteScope(storedFormOrNone: sites), createdAt: createdAt, expiresAt: expiresAt,
            revokedAt: revokedAt
        )
    }
}

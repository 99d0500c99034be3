import Foundation
import Hummingbird

/// Who the caller is, the token list and the audit trail, on the operations port:
///
/// - `GET /v1/me`: the caller's token (id, name, role, sites, expiry); any role.
/// - `GET /v1/tokens`: every token, without secrets; admin.
/// - `GET /v1/audit?limit=N&object=UUID`: the audit trail, newest first; admin.
///
/// Tokens are made and revoked with `feedback-hub tokens` on the hub's host: a stolen token
/// cannot mint another.
struct AccessAPI: Sendable {
    let store: any AccessStore
    /// How long a browser session lasts, ms.
    let sessionMilliseconds: Int64
    /// Whether the port serves HTTPS (the cookie is then `Secure` and `__Host-`).
    let secure: Bool
    let clock: @Sendable () -> Int64

    func register(on router: Router<OperationsContext>) {
        let store = self.store
        router.get("v1/me") { _, context -> Response in
            switch context.caller(allowedTo: .read) {
            case .success(let caller): OperationsJSON.response(.ok, Self.object(caller))
            case .failure(let refusal): refusal.response
            }
        }
        self.registerSessions(on: router)
        router.get("v1/tokens") { _, context -> Response in
            if case .failure(let refusal) = context.caller(allowedTo: .administer) { return refusal.response }
            let tokens = try await StoreAccess.run { try store.apiTokens() }
            return OperationsJSON.response(.ok, ["tokens": tokens.map(Self.object)])
        }
        router.get("v1/audit") { request, context -> Response in
            if case .failure(let refusal) = context.caller(allowedTo: .administer) { return refusal.response }
            let query = request.uri.queryParameters
            var limit = 100
            if let text = query.get("limit") {
                guard let parsed = Int(text), (1...1_000).contains(parsed) else {
                    return OperationsJSON.error(.badRequest, "invalidQuery", "limit must be 1...1000", field: "limit")
                }
                limit = parsed
            }
            var object: UUID?
            if let text = query.get("object") {
                guard let parsed = UUID(uuidString: text) else {
                    return OperationsJSON.error(.badRequest, "invalidQuery", "object must be a UUID", field: "object")
                }
                object = parsed
            }
            let (most, about) = (limit, object)
            let entries = try await StoreAccess.run { try store.auditTrail(object: about, limit: most) }
            return OperationsJSON.response(.ok, ["audit": entries.map(Self.object)])
        }
    }

    /// `POST /v1/session` exchanges the bearer token for a session cookie; `GET` tells a page
    /// its session (and CSRF token); `DELETE` ends it (``BrowserSession``).
    private func registerSessions(on router: Router<OperationsContext>) {
        let (store, clock, length, secure) = (self.store, self.clock, self.sessionMilliseconds, self.secure)
        router.post("v1/session") { _, context -> Response in
            let caller: APIToken
            switch context.caller(allowedTo: .read) {
            case .success(let token): caller = token
            case .failure(let refusal): return refusal.response
            }
            guard context.session == nil else {
                return OperationsJSON.error(.badRequest, "tokenRequired", "a session is made from a token: send Authorization: Bearer fma_…")
            }
            let now = clock()
            let expires = min(now + length, caller.expiresAt ?? .max)
            let secret = BrowserSession.newSecret()
            let hash = SecretToken.hash(secret)
            try await StoreAccess.run { try store.addSession(hash: hash, token: caller.id, createdAt: now, expiresAt: expires) }
            var response = OperationsJSON.response(.created, Self.sessionObject(caller, secret: secret, expiresAt: expires))
            response.headers[.setCookie] = BrowserSession.setCookie(secret, seconds: max(1, (expires - now) / 1000), secure: secure)
            response.headers[.cacheControl] = "no-store"
            return response
        }
        router.get("v1/session") { request, context -> Response in
            guard let caller = context.caller, context.session != nil,
                let secret = BrowserSession.secret(inCookies: request.headers[values: .cookie], secure: secure),
                let hash = context.session, let expires = try await StoreAccess.run({ try store.session(hash: hash, at: clock()) })?.expiresAt
            else {
                return OperationsJSON.error(.notFound, "noSession", "this request came without a session cookie (POST /v1/session makes one)")
            }
            var response = OperationsJSON.response(.ok, Self.sessionObject(caller, secret: secret, expiresAt: expires))
            response.headers[.cacheControl] = "no-store"
            return response
        }
        router.delete("v1/session") { request, context -> Response in
            // The cookie's session ends however the request was authenticated: a sign-out
            // sent with a bearer token as well must not leave the session alive.
            var hash = context.session
            if let secret = BrowserSession.secret(inCookies: request.headers[values: .cookie], secure: secure), BrowserSession.isWellFormedSecret(secret) {
                hash = SecretToken.hash(secret)
            }
            if let hash { try await StoreAccess.run { try store.removeSession(hash: hash) } }
            var response = Response(status: .noContent)
            response.headers[.setCookie] = BrowserSession.setCookie(nil, seconds: 0, secure: secure)
            return response
        }
    }

    static func sessionObject(_ token: APIToken, secret: String, expiresAt: Int64) -> [String: Any] {
        ["csrfToken": BrowserSession.csrfToken(for: secret), "expiresAt": expiresAt, "token": Self.object(token)]
    }

    static func object(_ token: APIToken) -> [String: Any] {
        var object: [String: Any] = [
            "id": token.id.uuidString.lowercased(), "name": token.name, "role": token.role.rawValue, "sites": token.sites.patterns,
            "createdAt": token.createdAt,
        ]
        if let expires = token.expiresAt { object["expiresAt"] = expires }
        if let revoked = token.revokedAt { object["revokedAt"] = revoked }
        return object
    }

    static func object(_ entry: AuditEntry) -> [String: Any] {
        var actor: [String: Any] = ["name": entry.actor.name]
        if let token = entry.actor.tokenID { actor["tokenId"] = token.uuidString.lowercased() }
        return [
            "sequence": entry.sequence, "at": entry.at, "actor": actor, "action": entry.action,
            "object": entry.object.uuidString.lowercased(), "from": entry.from, "to": entry.to, "note": entry.note,
        ]
    }
}

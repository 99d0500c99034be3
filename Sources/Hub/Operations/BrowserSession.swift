import Crypto
import Foundation
import Hummingbird

/// A browser's session on the operations port: an API token exchanged at `POST /v1/session`
/// for a cookie, so a page need not keep the token (docs/OPERATIONS.md, "Browser sessions").
///
/// The cookie holds a random secret (`fms_` and 256 bits in base32); the store keeps its
/// SHA-256 and the token it stands for. It is `HttpOnly` (no script reads it), `SameSite=Strict`
/// (no other site's page sends it), `Path=/`, and, over TLS, `Secure` and named with the
/// `__Host-` prefix (no subdomain can set it). It ends after `operations.sessionHours`, when
/// its token is revoked or expires, or at `DELETE /v1/session`.
///
/// Every state-changing request made with it must carry its CSRF token in `X-CSRF-Token`:
/// the HMAC-SHA256 of a fixed label under the cookie's secret, so the hub recomputes it and a
/// page that cannot read the cookie cannot compute it.
enum BrowserSession {
    /// The prefix of session secrets.
    static let secretPrefix = "fms_"
    /// The header that carries the CSRF token (lowercase, as HTTP/2 and the fields' canonical
    /// names spell it).
    static let csrfHeader = "x-csrf-token"

    /// The cookie's name: `__Host-fm_session` over TLS (browsers then insist on Secure, Path=/
    /// and no Domain), `fm_session` over plain HTTP on loopback.
    static func cookieName(secure: Bool) -> String {
        secure ? "__Host-fm_session" : "fm_session"
    }

    /// A new secret.
    static func newSecret() -> String {
        SecretToken.generate(prefix: Self.secretPrefix, byteCount: 32)
    }

    /// Whether `text` has the shape of a session secret.
    static func isWellFormedSecret(_ text: String) -> Bool {
        SecretToken.isWellFormed(text, prefix: Self.secretPrefix, byteCount: 32)
    }

    /// What a request's `Cookie` header values hold of one cookie.
    enum CookieState: Equatable {
        /// No cookie of that name.
        case absent
        /// One, with this value.
        case one(String)
        /// Several of that name: one was planted by another page of the same host or domain
        /// (cookie tossing, session fixation), and which is the hub's own cannot be told.
        case several
    }

    /// The session cookie among a request's `Cookie` header values.
    static func cookie(in cookies: [String], secure: Bool) -> CookieState {
        Self.cookie(named: Self.cookieName(secure: secure), in: cookies)
    }

    /// The cookie `name` among a request's `Cookie` header values.
    static func cookie(named name: String, in cookies: [String]) -> CookieState {
        var found: String?
        for field in cookies {
            for pair in field.split(separator: ";") {
                let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces) == name else { continue }
                guard found == nil else { return .several }
                found = parts[1].trimmingCharacters(in: .whitespaces)
            }
        }
        return found.map { .one($0) } ?? .absent
    }

    /// The session cookie's value, when a request carries exactly one.
    static func secret(inCookies cookies: [String], secure: Bool) -> String? {
        guard case .one(let secret) = Self.cookie(in: cookies, secure: secure) else { return nil }
        return secret
    }

    /// Whether the session cookie should be `Secure` and `__Host-`: the port serves TLS, or
    /// a proxy in front serves it over https (an `https://` entry in `operations.origins`).
    /// Without it a proxy's users would get a cookie a plain-http request gives away.
    static func isSecure(portTLS: Bool, origins: [String]) -> Bool {
        portTLS || origins.contains { $0.lowercased().hasPrefix("https://") }
    }

    /// The CSRF token of the session whose cookie holds `secret`.
    static func csrfToken(for secret: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Data("feedbackmesh csrf v1".utf8), using: SymmetricKey(data: Data(secret.utf8)))
        return Data(mac).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// The CSRF token a request carries, if any.
    static func csrf(of request: Request) -> String? {
        request.headers.first { $0.name.canonicalName == Self.csrfHeader }?.value
    }

    /// Whether `given` is the session's CSRF token (compared in constant time).
    static func matches(csrf given: String?, secret: String) -> Bool {
        guard let given else { return false }
        let expected = Array(Self.csrfToken(for: secret).utf8)
        let offered = Array(given.utf8)
        guard offered.count == expected.count else { return false }
        return zip(offered, expected).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }

    /// The `Set-Cookie` value that stores `secret` for `seconds`, or (with nil) ends it.
    static func setCookie(_ secret: String?, seconds: Int64, secure: Bool) -> String {
        var cookie = "\(Self.cookieName(secure: secure))=\(secret ?? ""); Path=/; HttpOnly; SameSite=Strict; Max-Age=\(secret == nil ? 0 : seconds)"
        if secure { cookie += "; Secure" }
        return cookie
    }
}

import Foundation
import Hummingbird
import Logging
import Support

/// Authenticates every request of the operations port before it is routed: a bearer token
/// (`Authorization: Bearer fma_…`, made by `feedback-hub tokens add`) looked up by its
/// SHA-256 in the store, unrevoked and unexpired. `/healthz`, `/readyz` and `/metrics` are
/// open or need a token as ``HubConfiguration/Operations`` says; everything else needs one.
///
/// A browser may come with a session cookie instead (``BrowserSession``: a token exchanged
/// at `POST /v1/session`); then every state-changing request (any method but GET, HEAD and
/// OPTIONS) must also carry the session's CSRF token in `X-CSRF-Token`.
///
/// A state-changing request that carries an `Origin` header must come from the operations
/// port's own origin: a page elsewhere cannot act, even with a browser that holds credentials
/// for the hub. A `Host` that is neither an IP address, `localhost` nor one of the port's
/// names (``HubConfiguration/Operations/hosts``) is refused: a page whose DNS name was
/// rebound to the hub's address cannot use the port.
///
/// Refusals never say whether a token exists: unknown, revoked and expired tokens get the
/// same 401. Failed attempts are counted (`feedback_hub_http_auth_refusals_total{reason}`),
/// never locked out (a lockout would let a stranger lock a manager out).
struct AccessGuard: RouterMiddleware {
    typealias Context = OperationsContext

    let store: any AccessStore
    let access: HubConfiguration.Operations
    /// `http` or `https`: the scheme of the port's own origin.
    let scheme: String
    /// Whether session cookies are `Secure` and `__Host-` named (``BrowserSession/isSecure(portTLS:origins:)``).
    let secureCookie: Bool
    let metrics: HubMetrics
    let clock: @Sendable () -> Int64

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let host = request.head.authority else {
            self.metrics.httpAuthRefused("unknown_host")
            return OperationsJSON.error(.badRequest, "missingHost", "the request has no Host header")
        }
        if !self.access.allowsHost(host) {
            self.metrics.httpAuthRefused("unknown_host")
            return OperationsRefusal(
                status: .forbidden, code: "unknownHost",
                message: "this port does not answer to the name \(TerminalText.excerpt(String(HostNames.hostPart(of: host)), limit: 64)); add it to operations.hosts"
            ).response
        }
        if let refusal = self.originRefusal(request) {
            self.metrics.httpAuthRefused("foreign_origin")
            return refusal.response
        }
        let path = request.uri.path
        let mode: HubConfiguration.Operations.Access =
            switch path {
            case "/healthz", "/readyz": self.access.health
            case "/metrics": self.access.metrics
            case _ where Dashboard.openPaths.contains(path): .open
            default: .token
            }
        guard mode == .token else { return try await next(request, context) }
        // A dashboard page a browser asks for without a (valid) session goes to sign-in.
        let isPage = Dashboard.pages.contains(path) && (request.method == .get || request.method == .head)
        if request.headers[.authorization] == nil {
            switch BrowserSession.cookie(in: request.headers[values: .cookie], secure: self.secureCookie) {
            case .absent:
                if isPage { return Dashboard.toLogin(request) }
            case .several:
                self.metrics.httpAuthRefused("malformed")
                return Self.endingCookie(
                    .unauthenticated("the request carries several session cookies, one set by another page of this name; sign in again"),
                    secure: self.secureCookie
                )
            case .one(let secret):
                switch try await self.authenticate(session: secret, request) {
                case .success(let (token, hash)):
                    var context = context
                    context.caller = token
                    context.session = hash
                    return try await next(request, context)
                case .failure(let refusal) where refusal.status == .unauthorized:
                    if isPage {
                        var redirect = Dashboard.toLogin(request)
                        redirect.headers[.setCookie] = BrowserSession.setCookie(nil, seconds: 0, secure: self.secureCookie)
                        return redirect
                    }
                    return Self.endingCookie(refusal, secure: self.secureCookie)
                case .failure(let refusal):
                    return refusal.response
                }
            }
        }
        switch try await self.authenticate(request) {
        case .success(let token):
            var context = context
            context.caller = token
            return try await next(request, context)
        case .failure(let refusal):
            return refusal.response
        }
    }

    /// A 401 that also tells the browser to drop its session cookie: an ended or doubtful
    /// session is not sent again.
    static func endingCookie(_ refusal: OperationsRefusal, secure: Bool) -> Response {
        var response = refusal.response
        response.headers[.setCookie] = BrowserSession.setCookie(nil, seconds: 0, secure: secure)
        return response
    }

    /// The token of a session cookie, when the session and its token are valid; for a
    /// state-changing request, only with the session's CSRF token in `X-CSRF-Token`.
    private func authenticate(session secret: String, _ request: Request) async throws -> Result<(APIToken, [UInt8]), OperationsRefusal> {
        guard BrowserSession.isWellFormedSecret(secret) else {
            self.metrics.httpAuthRefused("malformed")
            return .failure(.unauthenticated("the session cookie is not one this hub makes; sign in again"))
        }
        let hash = SecretToken.hash(secret)
        let (store, now) = (self.store, self.clock())
        guard let token = try await StoreAccess.run({ try store.session(hash: hash, at: now) })?.token, token.isValid(at: now) else {
            self.metrics.httpAuthRefused("invalid")
            return .failure(.unauthenticated("the session has ended (expired, signed out, or its token revoked); sign in again"))
        }
        if ![.get, .head, .options].contains(request.method),
            !BrowserSession.matches(csrf: BrowserSession.csrf(of: request), secret: secret)
        {
            self.metrics.httpAuthRefused("csrf")
            return .failure(
                OperationsRefusal(
                    status: .forbidden, code: "csrfRequired",
                    message: "a change made with a session cookie needs its CSRF token in X-CSRF-Token (GET /v1/session gives it)"
                )
            )
        }
        return .success((token, hash))
    }

    private func authenticate(_ request: Request) async throws -> Result<APIToken, OperationsRefusal> {
        guard let header = request.headers[.authorization] else {
            self.metrics.httpAuthRefused("missing")
            return .failure(.unauthenticated("send a token: Authorization: Bearer fma_… (feedback-hub tokens add makes one)"))
        }
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            self.metrics.httpAuthRefused("malformed")
            return .failure(.unauthenticated("the Authorization header must be `Bearer TOKEN`"))
        }
        let secret = parts[1].trimmingCharacters(in: .whitespaces)
        guard APIToken.isWellFormedSecret(secret) else {
            self.metrics.httpAuthRefused("malformed")
            return .failure(.unauthenticated("the token is not an API token (they start with fma_ and hold 52 letters and digits)"))
        }
        let hash = SecretToken.hash(secret)
        let store = self.store
        let token = try await StoreAccess.run { try store.apiToken(hash: hash) }
        guard let token, token.isValid(at: self.clock()) else {
            self.metrics.httpAuthRefused("invalid")
            return .failure(.unauthenticated("the token is unknown, revoked or expired"))
        }
        return .success(token)
    }

    /// A 403 for a state-changing request whose `Origin` is neither this port's own origin
    /// (its scheme and the request's `Host`) nor one of `operations.origins` (the names a
    /// proxy in front serves it under). A request without `Host` has no own origin.
    private func originRefusal(_ request: Request) -> OperationsRefusal? {
        guard ![.get, .head, .options].contains(request.method), let origin = request.headers[.origin] else { return nil }
        let given = Self.normalised(origin)
        if let host = request.head.authority, given == Self.normalised("\(self.scheme)://\(host)") { return nil }
        if self.access.origins.contains(where: { Self.normalised($0) == given }) { return nil }
        return OperationsRefusal(
            status: .forbidden, code: "foreignOrigin",
            message: "requests that change something must come from this port's own pages (Origin \(self.scheme)://HOST) or operations.origins"
        )
    }

    /// An origin compared as browsers mean it: case-insensitive, the scheme's default port
    /// left out.
    static func normalised(_ origin: String) -> String {
        let lowered = origin.lowercased()
        for (scheme, port) in [("http://", ":80"), ("https://", ":443")] where lowered.hasPrefix(scheme) && lowered.hasSuffix(port) {
            return String(lowered.dropLast(port.count))
        }
        return lowered
    }
}

extension APIToken {
    /// The prefix of API token secrets.
    public static let secretPrefix = "fma_"
    /// Random bytes in a secret.
    static let secretBytes = 32

    /// A new secret, shown once; the store keeps its SHA-256 (``SecretToken/hash(_:)``).
    public static func newSecret() -> String {
        SecretToken.generate(prefix: Self.secretPrefix, byteCount: Self.secretBytes)
    }

    /// Whether `text` has the shape of an API token secret.
    public static func isWellFormedSecret(_ text: String) -> Bool {
        SecretToken.isWellFormed(text, prefix: Self.secretPrefix, byteCount: Self.secretBytes)
    }
}

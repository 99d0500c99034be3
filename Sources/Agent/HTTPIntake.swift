import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import ListenerLimits
import Logging
import NIOCore
import ServiceLifecycle
import Support
import Wire

/// The agent's local HTTP intake, for backends in other languages and in-product popups:
///
/// - `POST /v1/feedback`: one submission (a JSON object) or several (an array). 202 once
///   durable in the spool; 400 for bad JSON or an invalid record (all or nothing), 409 for
///   a customer's repeated answer (with a ``ResponseLimiter``), 413 for a body over the
///   limit, 503 when the spool is full or the agent is stopping. Errors are
///   `{"error":{"code":…,"message":…,"field":…}}`.
/// - `GET /healthz`, `GET /metrics` (Prometheus text), `GET /status` (JSON, for
///   `feedback-agent status`).
///
/// Browsers may post from the origins in ``Configuration/corsOrigins`` (CORS, with
/// preflight). A request that names another origin in `Origin` is refused (403
/// `foreignOrigin`) before its body is read: the allow-list is enforced on the request, not
/// only on what the page may read of the answer. A `Host` that is neither an IP address,
/// `localhost` nor one of ``Configuration/hosts`` is refused (403 `unknownHost`): a page
/// whose DNS name was re-pointed at the agent cannot use it.
public struct HTTPIntake: Sendable {
    /// Settings.
    public struct Configuration: Sendable {
        /// Where to listen.
        public var listen: HubAddress
        /// Browser origins allowed to post.
        public var corsOrigins: Set<String> = []
        /// Names the intake answers to besides IP addresses and `localhost` (the name a
        /// product page's browser reaches it by).
        public var hosts: Set<String> = []
        /// Largest request body.
        public var maxBodyBytes = 1 << 20
        /// When set, a customer's second answer to a survey within its window is refused
        /// with 409 `alreadyAnswered`.
        public var responseLimiter: ResponseLimiter?
        /// Connection cap and header, body and idle timeouts.
        public var limits = HTTPListenerLimits()
        /// Who may submit: write and survey keys; ``IntakeAccess/open`` takes any request.
        public var access = IntakeAccess.open
        /// Ratings per second from one client address with a survey key (a browser), and
        /// how many at once.
        public var perAddress: (rate: Double, burst: Double) = (1, 10)
        /// When set, `Idempotency-Key` (or record ids for every rating) makes a retry store
        /// nothing new and get the first answer.
        public var idempotency: IdempotencyMemory?
        /// Addresses of reverse proxies in front of the intake: from them, the client is the
        /// last address in `X-Forwarded-For` (what the proxy saw), for the per-address limit.
        /// Written as ``canonicalIP(_:)`` gives them.
        public var trustedProxies: Set<String> = []

        /// Creates settings.
        public init(listen: HubAddress) {
            self.listen = listen
        }
    }

    let agent: FeedbackAgent
    let configuration: Configuration
    let logger: Logger
    /// What `/metrics` serves: the agent's own registry.
    public let metrics = AgentMetrics()
    /// The rate limits per key and per client address.
    let rates: IntakeRateLimiter

    /// Creates the intake for `agent`.
    public init(agent: FeedbackAgent, configuration: Configuration, logger: Logger) {
        self.agent = agent
        self.configuration = configuration
        self.logger = logger
        self.rates = IntakeRateLimiter()
    }

    /// The HTTP server as a `Service`; `onBound` gets the bound port.
    public func application(onBound: @escaping @Sendable (Int) -> Void = { _ in }) -> some Service {
        let router = Router(context: IntakeContext.self)
        let agent = self.agent
        let metrics = self.metrics
        let origins = self.configuration.corsOrigins.union(self.configuration.access.surveyOrigins)
        router.add(middleware: IntakeGuard(hosts: self.configuration.hosts, origins: origins, metrics: metrics))
        router.add(middleware: AllowListCORS(origins: origins))
        let intake = self
        router.post("v1/feedback") { request, context -> Response in
            let answer = await intake.take(request, client: intake.client(request, context))
            metrics.responded(code: answer.status.code, reason: answer.reason)
            var response = Self.json(answer.status, answer.body)
            response.headers.append(contentsOf: answer.headers)
            return response
        }
        router.get("v1/widget.js") { _, _ -> Response in
            Response(
                status: .ok,
                headers: [
                    .contentType: "text/javascript; charset=utf-8", .cacheControl: "public, max-age=3600",
                    .xContentTypeOptions: "nosniff", .crossOriginResourcePolicy: "cross-origin",
                ],
                body: .init(byteBuffer: ByteBuffer(string: PopupWidget.script))
            )
        }
        router.get("healthz") { _, _ in "ok\n" }
        router.get("status") { request, context -> Response in
            if let refusal = intake.refuseStatus(request, context) { return refusal }
            return Self.json(.ok, Self.statusJSON(agent.status))
        }
        let quotaBytes = agent.configuration.spool.quotaBytes
        router.get("metrics") { request, context -> Response in
            if let refusal = intake.refuseStatus(request, context) { return refusal }
            metrics.update(from: agent.status, quotaBytes: quotaBytes, now: Int64(Date().timeIntervalSince1970 * 1000))
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: metrics.registry.emitToBuffer()))
            )
        }
        let slots = HTTPConnectionSlots(limits: self.configuration.limits) { metrics.httpConnectionClosed($0) }
        return Application(
            router: router,
            server: .http1(configuration: .init(additionalChannelHandlers: [slots.makeGuard()])),
            configuration: .init(address: .hostname(self.configuration.listen.host, port: self.configuration.listen.port)),
            onServerRunning: { channel in onBound(channel.localAddress?.port ?? 0) },
            logger: self.logger
        )
    }

    /// Who sent a request: the address the rate limit counts by, and whether it is this machine.
    struct Client {
        var address: String
        var isLocal: Bool
    }

    static let forwardedForHeader = HTTPField.Name("X-Forwarded-For")!

    /// `text` (an IPv4 or IPv6 address, brackets allowed) as a peer's address is printed, so
    /// `::0:1`, `[::1]` and `::1` are one proxy; nil when it is not an address.
    public static func canonicalIP(_ text: String) -> String? {
        let bare = text.hasPrefix("[") && text.hasSuffix("]") ? String(text.dropFirst().dropLast()) : text
        return (try? SocketAddress(ipAddress: bare, port: 0))?.ipAddress
    }

    /// The request's client: the peer, or behind a trusted proxy the address it forwarded.
    func client(_ request: Request, _ context: IntakeContext) -> Client {
        let peer = context.peer
        guard let ip = peer?.ipAddress, self.configuration.trustedProxies.contains(ip), let forwarded = request.headers[Self.forwardedForHeader] else {
            // This machine: a loopback peer, or the intake's own address (a listen address that is not loopback).
            let isLocal = peer?.ipAddress.map { HostNames.isLoopback($0) || $0 == context.local?.ipAddress } ?? false
            return Client(address: peer?.slotKey ?? "", isLocal: isLocal)
        }
        let last = forwarded.split(separator: ",").last.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        guard let address = try? SocketAddress(ipAddress: last, port: 0) else {
            return Client(address: "forwarded:" + TerminalText.excerpt(last, limit: 64), isLocal: false)
        }
        return Client(address: address.slotKey, isLocal: false)
    }

    /// With keys configured, `/status` and `/metrics` answer this machine and write keys
    /// only: they name the hub and the spool's state, nothing a page's visitor needs.
    func refuseStatus(_ request: Request, _ context: IntakeContext) -> Response? {
        let access = self.configuration.access
        guard access.requiresKey, !self.client(request, context).isLocal else { return nil }
        if case .success(let key?) = access.authenticate(authorization: request.headers[.authorization], origin: request.headers[.origin]), key.kind == .write {
            return nil
        }
        return Self.json(.forbidden, ["error": ["code": "localOnly", "message": "status and metrics are for this machine or a write key"]])
    }

    /// What the intake answers a request, and why (`accepted` or the error code).
    struct Answer {
        var status: HTTPResponse.Status
        var reason: String
        var body: [String: Any]
        var headers: HTTPFields = [:]
    }

    /// Takes the ratings of one `POST /v1/feedback` from `client`.
    private func take(_ request: Request, client: Client) async -> Answer {
        var request = request
        let key: IntakeKey?
        switch self.configuration.access.authenticate(authorization: request.headers[.authorization], origin: request.headers[.origin]) {
        case .success(let found): key = found
        case .failure(let denial):
            var answer = Self.error(denial.status, denial.code, denial.message)
            if denial.status == .unauthorized { answer.headers[.wwwAuthenticate] = #"Bearer realm="feedbackmesh-intake""# }
            return answer
        }
        let idempotencyKey = request.headers[Self.idempotencyKeyHeader]
        if let idempotencyKey, !Self.isValidIdempotencyKey(idempotencyKey) {
            return Self.error(
                .badRequest, "invalidIdempotencyKey", "Idempotency-Key must be 1–255 visible ASCII characters (a UUID is best)",
                field: "Idempotency-Key"
            )
        }
        var limits: [IntakeRateLimiter.Limit] = []
        if let key { limits.append(.init(name: "key:" + key.name, rate: key.ratePerSecond, burst: key.burst)) }
        if key?.kind == .survey {
            limits.append(.init(name: "address:" + client.address, rate: self.configuration.perAddress.rate, burst: self.configuration.perAddress.burst))
        }
        // An exhausted client is refused before its body is read.
        if let wait = self.rates.wait(limits) { return Self.rateLimited(key, wait: wait) }
        // A page's answer is one rating: a survey key's body is small.
        let maxBody = key?.kind == .survey ? min(self.configuration.maxBodyBytes, Self.surveyKeyMaxBodyBytes) : self.configuration.maxBodyBytes
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: maxBody)
        } catch {
            return Self.error(.contentTooLarge, "tooLarge", "the request body is over \(maxBody) bytes; send fewer ratings per request")
        }
        var submissions: [FeedbackSubmission]
        switch Self.parse(body) {
        case .success(let parsed): submissions = parsed
        case .failure(let refusal): return Self.error(.badRequest, refusal.code, refusal.message, field: refusal.field)
        }
        guard submissions.count <= Self.maxRatingsPerRequest else {
            return Self.error(
                .contentTooLarge, "tooManyRatings",
                "the request holds \(submissions.count) ratings; at most \(Self.maxRatingsPerRequest) per request (a batch's worth)"
            )
        }
        if let key {
            switch key.admit(submissions) {
            case .success(let admitted): submissions = admitted
            case .failure(let refusal): return Self.error(.forbidden, refusal.code, refusal.message, field: refusal.field)
            }
        }
        var ids = Set<UUID>()
        if let twice = submissions.compactMap(\.id).first(where: { !ids.insert($0).inserted }) {
            return Self.error(.badRequest, "duplicateID", "id \(twice.uuidString.lowercased()) is given to two ratings of the request", field: "id")
        }
        // Idempotency: the header, or record ids on every rating (a scope no header can name:
        // a header holds no control character).
        var scope: String?
        let implicit = idempotencyKey == nil
        if let idempotencyKey {
            scope = IdempotencyMemory.scope(key: key?.name, idempotencyKey: idempotencyKey)
        } else if submissions.allSatisfy({ $0.id != nil }) {
            scope = IdempotencyMemory.scope(key: key?.name, idempotencyKey: "\u{1}ids:" + submissions.map { $0.id!.uuidString }.joined(separator: ","))
        }
        var acceptedAt = Int64(Date().timeIntervalSince1970 * 1000)
        let memory = scope == nil ? nil : self.configuration.idempotency
        if let memory, let scope {
            // Looked up before the rate limit: a retry of an accepted request gets its answer.
            switch memory.begin(scope: scope, body: body.readableBytesView, now: acceptedAt) {
            case .fresh(let at): acceptedAt = at
            case .replay(let at):
                var answer = self.accepted(self.ids(for: submissions, scope: scope, at: at))
                answer.headers[Self.replayedHeader] = "true"
                return answer
            case .inProgress:
                var answer = Self.error(
                    .conflict, "requestInProgress", "the same request is being handled; retry shortly", field: implicit ? "id" : "Idempotency-Key"
                )
                answer.headers[.retryAfter] = "1"
                return answer
            case .reused:
                return Self.error(
                    .unprocessableContent, "idempotencyKeyReused",
                    implicit
                        ? "these ids were sent with a different request body within the last \(memory.window.components.seconds / 3_600) h"
                        : "this Idempotency-Key was used for a different request body within the last \(memory.window.components.seconds / 3_600) h",
                    field: implicit ? "id" : "Idempotency-Key"
                )
            }
            let derived = self.ids(for: submissions, scope: scope, at: acceptedAt)
            for index in submissions.indices { submissions[index].id = derived[index] }
        }
        if let wait = self.rates.take(submissions.count, from: limits) {
            if let memory, let scope { memory.abandon(scope: scope) }
            return Self.rateLimited(key, wait: wait)
        }
        let answer = await self.store(submissions, now: acceptedAt)
        if let memory, let scope {
            if answer.status == .accepted {
                do {
                    try memory.finish(scope: scope)
                } catch {
                    // The ratings are kept and the request's begin line is on disk: a retry after a
                    // restart is stored again with the same ids, and the hub keeps one copy.
                    self.logger.warning("cannot record an idempotent request", metadata: ["error": "\(error)"])
                }
            } else {
                memory.abandon(scope: scope)
            }
        }
        return answer
    }

    /// Most ratings in one request: what one sealed batch holds.
    static let maxRatingsPerRequest = 10_000
    /// The largest body taken with a survey key: one rating and its comment.
    static let surveyKeyMaxBodyBytes = 16 << 10
    static let idempotencyKeyHeader = HTTPField.Name("Idempotency-Key")!
    static let replayedHeader = HTTPField.Name("Idempotent-Replayed")!

    static func rateLimited(_ key: IntakeKey?, wait: Int) -> Answer {
        var answer = Self.error(
            .tooManyRequests, "rateLimited", "too many ratings from \(key.map { "key \($0.name)" } ?? "this client"); retry after \(wait) s"
        )
        answer.headers[.retryAfter] = String(wait)
        return answer
    }

    /// The record ids of an idempotent request: the caller's, or derived from its scope and
    /// the time it was first accepted, so a retry is answered with the same ids.
    private func ids(for submissions: [FeedbackSubmission], scope: String, at: Int64) -> [UUID] {
        let node = self.agent.configuration.identity.nodeID.uuidString
        return submissions.indices.map { index in
            submissions[index].id ?? UUIDv7.derived(milliseconds: at, seed: SHA256.hash(data: Array("\(node) \(scope) \(index)".utf8)))
        }
    }

    private func accepted(_ ids: [UUID]) -> Answer {
        Answer(status: .accepted, reason: "accepted", body: ["accepted": ids.count, "ids": ids.map { $0.uuidString.lowercased() }])
    }

    /// An `Idempotency-Key` of 1–255 visible ASCII characters.
    static func isValidIdempotencyKey(_ value: String) -> Bool {
        (1...255).contains(value.utf8.count) && value.utf8.allSatisfy { (0x21...0x7E).contains($0) }
    }

    /// Stores admitted ratings, keeping to the one-response-per-customer rule.
    private func store(_ submissions: [FeedbackSubmission], now: Int64) async -> Answer {
        let pairs = submissions.map { (customer: $0.customer ?? "", survey: $0.survey ?? "") }
        let limiter = self.configuration.responseLimiter
        if let limiter, let index = limiter.reserve(pairs, now: now) {
            let days = limiter.window.components.seconds / 86_400
            return Self.error(
                .conflict, "alreadyAnswered",
                "customer \"\(pairs[index].customer)\" already answered survey \"\(pairs[index].survey)\" within the last \(days) days",
                field: "customer"
            )
        }
        do {
            let records = try await self.agent.submit(submissions)
            do {
                try limiter?.commit(pairs, now: now)
            } catch {
                // The ratings are kept; only the memory of this answer may not outlive a restart.
                self.logger.warning("cannot record answered surveys", metadata: ["error": "\(error)"])
            }
            return self.accepted(records.map(\.id))
        } catch {
            limiter?.release(pairs)
            return Self.refusal(error)
        }
    }

    static func refusal(_ error: any Error) -> Answer {
        switch error {
        case let error as WireError:
            return Self.error(.badRequest, "invalidRecord", error.detail, field: error.field)
        case let error as SpoolError where error.code == .full || error.code == .closed:
            return Self.error(.serviceUnavailable, error.code == .full ? "spoolFull" : "stopping", error.message)
        case let error as SpoolError where error.code == .io:
            // A full or failing disk: nothing of the request was kept; the caller may retry.
            return Self.error(.serviceUnavailable, "spoolUnavailable", error.message)
        default:
            return Self.error(.internalServerError, "storeFailed", "the rating could not be stored: \(error)")
        }
    }

    struct Refusal: Error {
        var code: String
        var message: String
        var field: String?
    }

    /// One object or a non-empty array of them.
    static func parse(_ body: ByteBuffer) -> Result<[FeedbackSubmission], Refusal> {
        let data = Data(body.readableBytesView)
        let decoder = JSONDecoder()
        let first = body.readableBytesView.first { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }
        if let problem = StrictJSONNumbers.check(body.readableBytesView) {
            return .failure(Refusal(code: "invalidNumber", message: problem.description, field: problem.field))
        }
        do {
            if first == UInt8(ascii: "[") {
                let all = try decoder.decode([FeedbackSubmission].self, from: data)
                guard !all.isEmpty else { return .failure(Refusal(code: "empty", message: "the array holds no ratings")) }
                return .success(all)
            }
            return .success([try decoder.decode(FeedbackSubmission.self, from: data)])
        } catch let DecodingError.keyNotFound(key, context) {
            let field = (context.codingPath + [key]).map(\.stringValue).filter { !$0.hasPrefix("Index ") }.joined(separator: ".")
            return .failure(Refusal(code: "missingField", message: "\"\(field)\" is required", field: field))
        } catch let DecodingError.typeMismatch(_, context) {
            let field = context.codingPath.map(\.stringValue).filter { !$0.hasPrefix("Index ") }.joined(separator: ".")
            return .failure(Refusal(code: "wrongType", message: "\"\(field)\" has the wrong type", field: field))
        } catch let DecodingError.dataCorrupted(context) where !context.codingPath.isEmpty {
            let field = context.codingPath.map(\.stringValue).filter { !$0.hasPrefix("Index ") }.joined(separator: ".")
            return .failure(Refusal(code: "wrongType", message: "\"\(field)\" is not valid here (an id is a UUID)", field: field))
        } catch {
            return .failure(Refusal(code: "invalidJSON", message: "the body is not a JSON rating or array of ratings"))
        }
    }

    static func json(_ status: HTTPResponse.Status, _ object: [String: Any]) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return Response(
            status: status,
            headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: data))
        )
    }

    static func error(_ status: HTTPResponse.Status, _ code: String, _ message: String, field: String? = nil) -> Answer {
        var error: [String: Any] = ["code": code, "message": message]
        if let field { error["field"] = field }
        return Answer(status: status, reason: code, body: ["error": error])
    }

    static func statusJSON(_ status: FeedbackAgent.Status) -> [String: Any] {
        var object: [String: Any] = [
            "submitted": status.submitted,
            "unsealedRecords": status.spool.unsealedRecords,
            "unacknowledgedBatches": status.spool.unacknowledgedBatches,
            "unacknowledgedRecords": status.spool.unacknowledgedRecords,
            "spoolBytes": status.spool.bytes,
            "batchesSent": status.uplink.batchesSent,
            "batchesAcknowledged": status.uplink.batchesAcknowledged,
            "batchesDeadLettered": status.uplink.batchesDeadLettered,
            "connections": status.uplink.connections,
            "connectFailures": status.uplink.connectFailures,
        ]
        if let hub = status.uplink.connectedHub { object["connectedHub"] = hub.description }
        if let error = status.uplink.lastConnectionError { object["lastConnectionError"] = error }
        if let oldest = status.spool.oldestPendingCapturedAt { object["oldestPendingCapturedAt"] = oldest }
        return object
    }
}

/// Refuses, before anything is read: a request without `Host` (400 `missingHost`) or naming
/// a host the intake does not answer to (403 `unknownHost`), and a request whose `Origin` is
/// not one of the allowed browser origins (403 `foreignOrigin`). Requests without `Origin`
/// (a backend, curl) pass.
struct IntakeGuard<Context: RequestContext>: RouterMiddleware {
    let hosts: Set<String>
    let origins: Set<String>
    let metrics: AgentMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let authority = request.head.authority else {
            return self.refuse(.badRequest, "missingHost", "the request has no Host header")
        }
        guard HostNames.allows(authority, names: self.hosts) else {
            let name = TerminalText.excerpt(String(HostNames.hostPart(of: authority)), limit: 64)
            return self.refuse(.forbidden, "unknownHost", "the intake does not answer to the name \(name); add it to http.hosts")
        }
        if let origin = request.headers[.origin], !self.origins.contains(origin) {
            return self.refuse(
                .forbidden, "foreignOrigin", "ratings from a page on \(TerminalText.excerpt(origin, limit: 64)) are not taken; add the origin to http.corsOrigins"
            )
        }
        return try await next(request, context)
    }

    private func refuse(_ status: HTTPResponse.Status, _ code: String, _ message: String) -> Response {
        self.metrics.responded(code: Int(status.code), reason: code)
        return HTTPIntake.json(status, ["error": ["code": code, "message": message]])
    }
}

/// The intake's request context: Hummingbird's core context and the connection's peer,
/// which the per-address rate limit counts by (an IPv4 address or an IPv6 /64).
public struct IntakeContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The connection's peer.
    public let peer: SocketAddress?
    /// The intake's own address on this connection.
    public let local: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.peer = source.channel.remoteAddress
        self.local = source.channel.localAddress
    }
}

/// CORS for an allow-list of origins: preflight answered, allowed origins echoed.
struct AllowListCORS<Context: RequestContext>: RouterMiddleware {
    let origins: Set<String>

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let origin = request.headers[.origin], self.origins.contains(origin) else {
            return try await next(request, context)
        }
        if request.method == .options {
            return Response(
                status: .noContent,
                headers: [
                    .accessControlAllowOrigin: origin,
                    .accessControlAllowMethods: "POST, OPTIONS",
                    .accessControlAllowHeaders: "authorization, content-type, idempotency-key",
                    .accessControlMaxAge: "600",
                    .vary: "Origin",
                ]
            )
        }
        var response = try await next(request, context)
        response.headers[.accessControlAllowOrigin] = origin
        response.headers[.accessControlExposeHeaders] = "Retry-After, Idempotent-Replayed"
        response.headers[.vary] = "Origin"
        return response
    }
}

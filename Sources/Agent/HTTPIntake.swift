import Foundation
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

    /// Creates the intake for `agent`.
    public init(agent: FeedbackAgent, configuration: Configuration, logger: Logger) {
        self.agent = agent
        self.configuration = configuration
        self.logger = logger
    }

    /// The HTTP server as a `Service`; `onBound` gets the bound port.
    public func application(onBound: @escaping @Sendable (Int) -> Void = { _ in }) -> some Service {
        let router = Router()
        let agent = self.agent
        let metrics = self.metrics
        router.add(middleware: IntakeGuard(hosts: self.configuration.hosts, origins: self.configuration.corsOrigins, metrics: metrics))
        router.add(middleware: AllowListCORS(origins: self.configuration.corsOrigins))
        let intake = self
        router.post("v1/feedback") { request, _ -> Response in
            let answer = await intake.take(request)
            metrics.responded(code: answer.status.code, reason: answer.reason)
            return Self.json(answer.status, answer.body)
        }
        router.get("healthz") { _, _ in "ok\n" }
        router.get("status") { _, _ -> Response in
            Self.json(.ok, Self.statusJSON(agent.status))
        }
        let quotaBytes = agent.configuration.spool.quotaBytes
        router.get("metrics") { _, _ -> Response in
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

    /// What the intake answers a request, and why (`accepted` or the error code).
    struct Answer {
        var status: HTTPResponse.Status
        var reason: String
        var body: [String: Any]
    }

    /// Takes the ratings of one `POST /v1/feedback`.
    private func take(_ request: Request) async -> Answer {
        var request = request
        let maxBody = self.configuration.maxBodyBytes
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: maxBody)
        } catch {
            return Self.error(.contentTooLarge, "tooLarge", "the request body is over \(maxBody) bytes; send fewer ratings per request")
        }
        let submissions: [FeedbackSubmission]
        switch Self.parse(body) {
        case .success(let parsed): submissions = parsed
        case .failure(let refusal): return Self.error(.badRequest, refusal.code, refusal.message, field: refusal.field)
        }
        let pairs = submissions.map { (customer: $0.customer ?? "", survey: $0.survey ?? "") }
        let now = Int64(Date().timeIntervalSince1970 * 1000)
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
            return Answer(
                status: .accepted, reason: "accepted",
                body: ["accepted": records.count, "ids": records.map { $0.id.uuidString.lowercased() }]
            )
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
                    .accessControlAllowHeaders: "content-type",
                    .accessControlMaxAge: "600",
                    .vary: "Origin",
                ]
            )
        }
        var response = try await next(request, context)
        response.headers[.accessControlAllowOrigin] = origin
        response.headers[.vary] = "Origin"
        return response
    }
}

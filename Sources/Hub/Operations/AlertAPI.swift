import Foundation
import Hummingbird
import NIOCore
import Support
import Wire

/// The alert HTTP API on the hub's operations port (docs/ALERTS.md). Every call needs an API
/// token (``AccessGuard``); a token sees and acts on the alerts of its sites only, and an
/// alert outside them answers 404 as if it did not exist.
///
/// - `GET /v1/alerts?status=open,inProgress&site=S&owner=O&overdue=true&stuckFor=H&limit=N`:
///   alerts (cases), newest first.
/// - `GET /v1/alerts/ID`: one alert.
/// - `GET /v1/alerts/ID/history`: who changed it, when, from what to what.
/// - `POST /v1/alerts/ID/start`, `…/wait`, `…/complete`, `…/cancel` with a JSON body
///   `{"note": "…", "customerReached": true}` (a note is required to complete or cancel;
///   `customerReached` to complete a case raised by a rating), and `…/assign` with
///   `{"owner": "…", "note": "…"}`: moves the case along its life (``CaseChange``); needs a
///   manager or admin token. `acknowledge` and `resolve` are the older names of `start` and
///   `complete`.
/// - `GET /v1/reports/cases?from=&to=&tz=&groupBy=site|owner|rule&site=&format=csv`: how
///   cases raised in the period were worked (``CaseReport``); any token, its sites only.
///
/// Errors are `{"error":{"code","message","field"}}` with 400, 401, 403, 404 or 409.
///
/// The store is read and written on the store threads (``StoreAccess``), never on the
/// server's event loops.
struct AlertAPI: Sendable {
    let store: any AlertStore & AccessStore
    let metrics: HubMetrics
    let clock: @Sendable () -> Int64

    func register(on router: Router<OperationsContext>) {
        let store = self.store
        let clock = self.clock
        router.get("v1/alerts") { request, context -> Response in
            let caller: APIToken
            switch context.caller(allowedTo: .read) {
            case .success(let token): caller = token
            case .failure(let refusal): return refusal.response
            }
            let now = clock()
            let query: AlertQuery
            switch Self.query(request.uri.queryParameters, scope: caller.sites, now: now) {
            case .success(let parsed): query = parsed
            case .failure(let refusal): return refusal.response
            }
            let alerts = try await StoreAccess.run { try store.alerts(query) }
            // The store's query already keeps to the scope; `allows` is the rule itself, so a
            // site the SQL translation reads differently (an old NUL) is still left out.
            return OperationsJSON.response(.ok, ["alerts": alerts.filter { query.scope.allows($0.site) }.map { Self.object($0, now: now) }])
        }
        router.get("v1/alerts/:id") { _, context -> Response in
            switch try await Self.visibleAlert(context, store: store, action: .read) {
            case .success(let visible): return OperationsJSON.response(.ok, Self.object(visible.alert, now: clock()))
            case .failure(let refusal): return refusal.response
            }
        }
        router.get("v1/alerts/:id/history") { _, context -> Response in
            switch try await Self.visibleAlert(context, store: store, action: .read) {
            case .success(let visible):
                let id = visible.alert.id
                let entries = try await StoreAccess.run { try store.auditTrail(object: id, limit: 1_000) }
                return OperationsJSON.response(.ok, ["history": entries.map(AccessAPI.object)])
            case .failure(let refusal):
                return refusal.response
            }
        }
        let metrics = self.metrics
        for (name, action) in Self.actions {
            router.post("v1/alerts/:id/\(name)") { request, context -> Response in
                let (caller, alert): (APIToken, Alert)
                switch try await Self.visibleAlert(context, store: store, action: .act) {
                case .success(let visible): (caller, alert) = visible
                case .failure(let refusal): return refusal.response
                }
                var request = request
                let change: CaseChange
                switch await Self.change(action, from: &request) {
                case .success(let parsed): change = parsed
                case .failure(let refusal): return refusal.response
                }
                let (actor, at) = (AuditActor(caller), clock())
                switch try await StoreAccess.run({ try store.change(alert.id, change, by: actor, at: at) }) {
                case .success(let updated):
                    metrics.caseChanged(updated, at: at, event: change.event)
                    return OperationsJSON.response(.ok, Self.object(updated, now: clock()))
                case .failure(.notFound):
                    return OperationsJSON.error(.notFound, "notFound", "no alert has this id")
                case .failure(let refusal):
                    return Self.refusal(refusal).response
                }
            }
        }
    }

    /// `GET /v1/reports/cases`.
    func registerReport(on router: Router<OperationsContext>) {
        let store = self.store
        let clock = self.clock
        router.get("v1/reports/cases") { request, context -> Response in
            let caller: APIToken
            switch context.caller(allowedTo: .read) {
            case .success(let token): caller = token
            case .failure(let refusal): return refusal.response
            }
            func refuse(_ field: String, _ message: String) -> Response {
                OperationsJSON.error(.badRequest, "invalidQuery", message, field: field)
            }
            let parameters = request.uri.queryParameters
            let known: Set<String> = ["from", "to", "tz", "groupBy", "site", "format"]
            if let unknown = parameters.map({ String($0.key) }).first(where: { !known.contains($0) }) {
                return refuse(unknown, "unknown parameter; known: \(known.sorted().joined(separator: ", "))")
            }
            let now = clock()
            let period: (from: Date, to: Date, zone: TimeZone)
            switch ReportAPI.period(parameters, now: now) {
            case .success(let value): period = value
            case .failure(let refusal): return refusal.response
            }
            var groupBy = CaseReport.GroupBy.site
            if let text = parameters.get("groupBy") {
                guard let parsed = CaseReport.GroupBy(rawValue: text) else { return refuse("groupBy", "groupBy must be site, owner or rule") }
                groupBy = parsed
            }
            let csv: Bool
            switch parameters.get("format") {
            case nil: csv = request.headers[.accept]?.contains("text/csv") ?? false
            case "json": csv = false
            case "csv": csv = true
            default: return refuse("format", "format must be json or csv")
            }
            let (from, to) = (Int64((period.from.timeIntervalSince1970 * 1000).rounded()), Int64((period.to.timeIntervalSince1970 * 1000).rounded()))
            var query = AlertQuery(scope: caller.sites, limit: CaseReport.maxCases + 1)
            if let site = parameters.get("site"), site.unicodeScalars.count > 1_024 { return refuse("site", "site is longer than 1024 characters") }
            query.site = parameters.get("site")
            query.raisedFrom = from
            query.raisedBefore = to
            query.brief = true
            let wanted = query
            let cases = try await StoreAccess.run { try store.alerts(wanted) }.filter { caller.sites.allows($0.site) }
            guard cases.count <= CaseReport.maxCases else {
                return refuse("from", "the period holds over \(CaseReport.maxCases) cases; narrow it or name a site")
            }
            let report = CaseReport(cases: cases, from: from, to: to, groupBy: groupBy, now: now)
            if csv {
                return Response(
                    status: .ok,
                    headers: [.contentType: "text/csv; charset=utf-8", .contentDisposition: #"attachment; filename="cases.csv""#],
                    body: .init(byteBuffer: ByteBuffer(string: report.csv))
                )
            }
            return OperationsJSON.response(.ok, report.jsonObject)
        }
    }

    /// The POST endpoints under `/v1/alerts/ID/` and what each asks for.
    static let actions: [(String, CaseAction)] = [
        ("start", .status(.inProgress)), ("acknowledge", .status(.inProgress)), ("wait", .status(.waiting)),
        ("complete", .status(.completed)), ("resolve", .status(.completed)), ("cancel", .status(.cancelled)), ("assign", .assign),
    ]

    /// The names of ``actions``.
    static var actionNames: [String] { Self.actions.map(\.0) }

    /// What a POST asks for: a status, or an owner.
    enum CaseAction: Sendable {
        case status(Alert.Status)
        case assign
    }

    /// The list's filters from the query string, or a 400 naming the parameter.
    static func query(_ parameters: some Sequence<(key: Substring, value: Substring)>, scope: SiteScope, now: Int64) -> Result<AlertQuery, OperationsRefusal> {
        var query = AlertQuery(scope: scope, limit: 100)
        func refuse(_ field: String, _ message: String) -> Result<AlertQuery, OperationsRefusal> {
            .failure(OperationsRefusal(status: .badRequest, code: "invalidQuery", message: message, field: field))
        }
        for (key, value) in parameters {
            let value = String(value)
            switch key {
            case "status":
                for name in value.split(separator: ",", omittingEmptySubsequences: false) {
                    guard let status = Alert.Status(rawValue: String(name)) else {
                        return refuse("status", "status must be a comma-separated list of open, inProgress, waiting, completed, cancelled")
                    }
                    query.statuses.insert(status)
                }
            case "site":
                guard value.unicodeScalars.count <= 1_024 else { return refuse("site", "site is longer than 1024 characters") }
                query.site = value
            case "owner":
                guard value.unicodeScalars.count <= CaseChange.maxOwnerLength else {
                    return refuse("owner", "owner is longer than \(CaseChange.maxOwnerLength) characters")
                }
                query.owner = value
            case "overdue":
                guard value == "true" || value == "false" else { return refuse("overdue", "overdue must be true or false") }
                query.overdueAt = value == "true" ? now : nil
            case "stuckFor":
                guard let hours = Int(value), (1...8_760).contains(hours) else {
                    return refuse("stuckFor", "stuckFor must be a number of hours, 1...8760")
                }
                query.unchangedSince = now - Int64(hours) * 3_600_000
            case "limit":
                guard let limit = Int(value), (1...1_000).contains(limit) else { return refuse("limit", "limit must be 1...1000") }
                query.limit = limit
            default:
                return refuse(String(key), "unknown parameter \(TerminalText.excerpt(String(key))); known: status, site, owner, overdue, stuckFor, limit")
            }
        }
        return .success(query)
    }

    /// The change a POST's JSON body asks for, or a 400 or 413 naming what is wrong. The body
    /// may be empty for `start` and `wait`.
    static func change(_ action: CaseAction, from request: inout Request) async -> Result<CaseChange, OperationsRefusal> {
        func refuse(_ code: String, _ message: String, field: String? = nil) -> Result<CaseChange, OperationsRefusal> {
            .failure(OperationsRefusal(status: .badRequest, code: code, message: message, field: field))
        }
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: 16 * 1024)
        } catch {
            return .failure(OperationsRefusal(status: .contentTooLarge, code: "tooLarge", message: "the request body is over 16 KiB"))
        }
        var object: [String: Any] = [:]
        if body.readableBytes > 0 {
            guard let parsed = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any] else {
                return refuse("invalidJSON", "the body must be a JSON object such as {\"note\": \"called back\"}")
            }
            object = parsed
        }
        let known: Set<String> =
            switch action {
            case .status(.completed): ["note", "customerReached"]
            case .status: ["note"]
            case .assign: ["owner", "note"]
            }
        if let unknown = object.keys.sorted().first(where: { !known.contains($0) }) {
            return refuse("invalidField", "unknown field \(TerminalText.excerpt(unknown)); known: \(known.sorted().joined(separator: ", "))", field: unknown)
        }
        let fields: ChangeBody
        do {
            fields = body.readableBytes > 0 ? try JSONDecoder().decode(ChangeBody.self, from: Data(body.readableBytesView)) : ChangeBody()
        } catch let DecodingError.typeMismatch(_, context) {
            let field = context.codingPath.first?.stringValue ?? "body"
            let expected = field == "customerReached" ? "true or false" : "a string"
            return refuse("invalidField", "\(field) must be \(expected)", field: field)
        } catch {
            return refuse("invalidJSON", "the body must be a JSON object such as {\"note\": \"called back\"}")
        }
        if let null = object.keys.sorted().first(where: { object[$0] is NSNull }) {
            return refuse("invalidField", "\(null) must not be null", field: null)
        }
        let note = fields.note ?? ""
        guard note.unicodeScalars.count <= 4_000 else { return refuse("invalidField", "note must be at most 4000 characters", field: "note") }
        switch action {
        case .status(let status):
            return .success(CaseChange(.status(status), note: note, customerReached: fields.customerReached))
        case .assign:
            guard let owner = fields.owner else {
                return refuse("invalidField", "owner must be a string (\"\" to leave the case without an owner)", field: "owner")
            }
            return .success(CaseChange(.assign(owner), note: note))
        }
    }

    /// The fields a change's body may hold (which of them an action takes is checked first).
    private struct ChangeBody: Decodable {
        var note: String?
        var customerReached: Bool?
        var owner: String?
    }

    /// The answer to a change the case's state refuses: 409 for its status, 400 for what
    /// the request lacks.
    static func refusal(_ error: AlertTransitionError) -> OperationsRefusal {
        switch error {
        case .notFound: OperationsRefusal(status: .notFound, code: "notFound", message: error.description)
        case .notAllowed, .unchanged: OperationsRefusal(status: .conflict, code: "invalidTransition", message: error.description)
        case .noteRequired: OperationsRefusal(status: .badRequest, code: "noteRequired", message: error.description, field: "note")
        case .customerReachedRequired:
            OperationsRefusal(status: .badRequest, code: "customerReachedRequired", message: error.description, field: "customerReached")
        case .invalidOwner: OperationsRefusal(status: .badRequest, code: "invalidField", message: error.description, field: "owner")
        }
    }

    /// The alert the path names, when the caller may do `action` and the alert is inside
    /// the caller's sites; a 400, 401, 403 or 404 otherwise.
    private static func visibleAlert(
        _ context: OperationsContext, store: any AlertStore, action: APIToken.Action
    ) async throws -> Result<(caller: APIToken, alert: Alert), OperationsRefusal> {
        let caller: APIToken
        switch context.caller(allowedTo: action) {
        case .success(let token): caller = token
        case .failure(let refusal): return .failure(refusal)
        }
        guard let id = context.parameters.get("id").flatMap(UUID.init(uuidString:)) else {
            return .failure(OperationsRefusal(status: .badRequest, code: "invalidId", message: "the alert id must be a UUID", field: "id"))
        }
        guard let alert = try await StoreAccess.run({ try store.alert(id) }), caller.sites.allows(alert.site) else {
            return .failure(OperationsRefusal(status: .notFound, code: "notFound", message: "no alert has this id"))
        }
        return .success((caller, alert))
    }

    static func object(_ alert: Alert, now: Int64) -> [String: Any] {
        var object: [String: Any] = [
            "id": alert.id.uuidString.lowercased(), "rule": alert.rule, "kind": alert.kind, "status": alert.status.rawValue,
            "level": alert.level, "site": alert.site, "subject": alert.subject, "summary": alert.summary,
            "createdAt": alert.createdAt, "capturedAt": alert.capturedAt, "note": alert.note, "owner": alert.owner,
            "updatedAt": alert.updatedAt, "overdue": alert.isOverdue(at: now),
        ]
        if let recordID = alert.recordID { object["recordId"] = recordID.uuidString.lowercased() }
        if let deadline = alert.deadlineAt { object["deadlineAt"] = deadline }
        if let due = alert.dueAt { object["dueAt"] = due }
        if let first = alert.firstActionAt { object["firstActionAt"] = first }
        if let closed = alert.closedAt { object["closedAt"] = closed }
        if let reached = alert.customerReached { object["customerReached"] = reached }
        return object
    }
}

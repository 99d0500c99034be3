import Foundation
import Hummingbird
import NIOCore

/// The alert HTTP API on the hub's operations port (docs/ALERTS.md). Every call needs an API
/// token (``AccessGuard``); a token sees and acts on the alerts of its sites only, and an
/// alert outside them answers 404 as if it did not exist.
///
/// - `GET /v1/alerts?status=open&site=S&overdue=true&limit=N`: alerts, newest first.
/// - `GET /v1/alerts/ID`: one alert.
/// - `GET /v1/alerts/ID/history`: who changed it, when, from what to what.
/// - `POST /v1/alerts/ID/acknowledge`, `…/resolve`, `…/cancel` with an optional JSON body
///   `{"note": "…"}` (a note is required to cancel): moves the alert along its life; needs
///   a manager or admin token.
///
/// Errors are `{"error":{"code","message","field"}}` with 400, 401, 403, 404 or 409.
///
/// The store is read and written on the store threads (``StoreAccess``), never on the
/// server's event loops.
struct AlertAPI: Sendable {
    let store: any AlertStore & AccessStore
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
            let query = request.uri.queryParameters
            var status: Alert.Status?
            if let text = query.get("status") {
                guard let parsed = Alert.Status(rawValue: text) else {
                    return OperationsJSON.error(.badRequest, "invalidQuery", "status must be open, acknowledged, resolved or cancelled", field: "status")
                }
                status = parsed
            }
            var limit = 100
            if let text = query.get("limit") {
                guard let parsed = Int(text), (1...1_000).contains(parsed) else {
                    return OperationsJSON.error(.badRequest, "invalidQuery", "limit must be 1...1000", field: "limit")
                }
                limit = parsed
            }
            let overdue = query.get("overdue") == "true"
            let now = clock()
            let (site, wanted, most, scope) = (query.get("site"), status, limit, caller.sites)
            let alerts = try await StoreAccess.run {
                try store.alerts(status: wanted, site: site, within: scope, overdueAt: overdue ? now : nil, limit: most)
            }
            // The store's query already keeps to the scope; `allows` is the rule itself, so a
            // site the SQL translation reads differently (an old NUL) is still left out.
            return OperationsJSON.response(.ok, ["alerts": alerts.filter { scope.allows($0.site) }.map { Self.object($0, now: now) }])
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
        for (action, status) in [("acknowledge", Alert.Status.acknowledged), ("resolve", .resolved), ("cancel", .cancelled)] {
            router.post("v1/alerts/:id/\(action)") { request, context -> Response in
                let (caller, alert): (APIToken, Alert)
                switch try await Self.visibleAlert(context, store: store, action: .act) {
                case .success(let visible): (caller, alert) = visible
                case .failure(let refusal): return refusal.response
                }
                var request = request
                let body: ByteBuffer
                do {
                    body = try await request.collectBody(upTo: 16 * 1024)
                } catch {
                    return OperationsJSON.error(.contentTooLarge, "tooLarge", "the request body is over 16 KiB")
                }
                var note = ""
                if body.readableBytes > 0 {
                    guard let object = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any] else {
                        return OperationsJSON.error(.badRequest, "invalidJSON", "the body must be a JSON object such as {\"note\": \"called back\"}")
                    }
                    guard object["note"] == nil || object["note"] is String else {
                        return OperationsJSON.error(.badRequest, "invalidField", "note must be a string", field: "note")
                    }
                    note = (object["note"] as? String) ?? ""
                }
                if status == .cancelled, note.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                    return OperationsJSON.error(.badRequest, "noteRequired", "cancelling an alert needs a note saying why", field: "note")
                }
                let (kept, actor) = (note, AuditActor(caller))
                switch try await StoreAccess.run({ try store.transition(alert.id, to: status, note: kept, by: actor, at: clock()) }) {
                case .success(let alert):
                    return OperationsJSON.response(.ok, Self.object(alert, now: clock()))
                case .failure(.notFound):
                    return OperationsJSON.error(.notFound, "notFound", "no alert has this id")
                case .failure(let refusal):
                    return OperationsJSON.error(.conflict, "invalidTransition", refusal.description)
                }
            }
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
            "createdAt": alert.createdAt, "capturedAt": alert.capturedAt, "note": alert.note,
            "overdue": alert.status == .open && (alert.deadlineAt.map { $0 <= now } ?? false),
        ]
        if let recordID = alert.recordID { object["recordId"] = recordID.uuidString.lowercased() }
        if let deadline = alert.deadlineAt { object["deadlineAt"] = deadline }
        if let acknowledged = alert.acknowledgedAt { object["acknowledgedAt"] = acknowledged }
        if let closed = alert.closedAt { object["closedAt"] = closed }
        return object
    }
}

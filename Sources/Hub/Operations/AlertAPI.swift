import Foundation
import Hummingbird
import NIOCore

/// The alert HTTP API on the hub's operations port (docs/ALERTS.md):
///
/// - `GET /v1/alerts?status=open&site=S&overdue=true&limit=N`: alerts, newest first.
/// - `GET /v1/alerts/ID`: one alert.
/// - `POST /v1/alerts/ID/acknowledge`, `…/resolve`, `…/cancel` with an optional JSON body
///   `{"note": "…"}` (a note is required to cancel): moves the alert along its life.
///
/// Errors are `{"error":{"code","message","field"}}` with 400, 404 or 409.
///
/// The store is read and written on NIO's blocking pool (``StoreAccess``), never on the
/// server's event loops.
struct AlertAPI: Sendable {
    let store: any AlertStore
    let clock: @Sendable () -> Int64

    func register(on router: Router<BasicRequestContext>) {
        let store = self.store
        let clock = self.clock
        router.get("v1/alerts") { request, _ -> Response in
            let query = request.uri.queryParameters
            var status: Alert.Status?
            if let text = query.get("status") {
                guard let parsed = Alert.Status(rawValue: text) else {
                    return Self.error(.badRequest, "invalidQuery", "status must be open, acknowledged, resolved or cancelled", field: "status")
                }
                status = parsed
            }
            var limit = 100
            if let text = query.get("limit") {
                guard let parsed = Int(text), (1...1_000).contains(parsed) else {
                    return Self.error(.badRequest, "invalidQuery", "limit must be 1...1000", field: "limit")
                }
                limit = parsed
            }
            let overdue = query.get("overdue") == "true"
            let now = clock()
            let (site, wanted, most) = (query.get("site"), status, limit)
            let alerts = try await StoreAccess.run { try store.alerts(status: wanted, site: site, overdueAt: overdue ? now : nil, limit: most) }
            return Self.json(.ok, ["alerts": alerts.map { Self.object($0, now: now) }])
        }
        router.get("v1/alerts/:id") { _, context -> Response in
            guard let id = context.parameters.get("id").flatMap(UUID.init(uuidString:)) else {
                return Self.error(.badRequest, "invalidId", "the alert id must be a UUID", field: "id")
            }
            guard let alert = try await StoreAccess.run({ try store.alert(id) }) else { return Self.error(.notFound, "notFound", "no alert has this id") }
            return Self.json(.ok, Self.object(alert, now: clock()))
        }
        for (action, status) in [("acknowledge", Alert.Status.acknowledged), ("resolve", .resolved), ("cancel", .cancelled)] {
            router.post("v1/alerts/:id/\(action)") { request, context -> Response in
                guard let id = context.parameters.get("id").flatMap(UUID.init(uuidString:)) else {
                    return Self.error(.badRequest, "invalidId", "the alert id must be a UUID", field: "id")
                }
                var request = request
                let body: ByteBuffer
                do {
                    body = try await request.collectBody(upTo: 16 * 1024)
                } catch {
                    return Self.error(.contentTooLarge, "tooLarge", "the request body is over 16 KiB")
                }
                var note = ""
                if body.readableBytes > 0 {
                    guard let object = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any] else {
                        return Self.error(.badRequest, "invalidJSON", "the body must be a JSON object such as {\"note\": \"called back\"}")
                    }
                    guard object["note"] == nil || object["note"] is String else {
                        return Self.error(.badRequest, "invalidField", "note must be a string", field: "note")
                    }
                    note = (object["note"] as? String) ?? ""
                }
                if status == .cancelled, note.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                    return Self.error(.badRequest, "noteRequired", "cancelling an alert needs a note saying why", field: "note")
                }
                let kept = note
                switch try await StoreAccess.run({ try store.transition(id, to: status, note: kept, at: clock()) }) {
                case .success(let alert):
                    return Self.json(.ok, Self.object(alert, now: clock()))
                case .failure(.notFound):
                    return Self.error(.notFound, "notFound", "no alert has this id")
                case .failure(let refusal):
                    return Self.error(.conflict, "invalidTransition", refusal.description)
                }
            }
        }
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

    static func json(_ status: HTTPResponse.Status, _ object: [String: Any]) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func error(_ status: HTTPResponse.Status, _ code: String, _ message: String, field: String? = nil) -> Response {
        var error: [String: Any] = ["code": code, "message": message]
        if let field { error["field"] = field }
        return Self.json(status, ["error": error])
    }
}

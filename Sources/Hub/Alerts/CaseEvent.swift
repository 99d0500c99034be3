import Foundation
import Wire

/// The webhooks of a case's life (docs/ALERTS.md, "Cases"): each change a person makes
/// (`case.inProgress`, `case.waiting`, `case.completed`, `case.cancelled`, `case.assigned`)
/// and the hub's follow-ups (`case.reminder` before the due time, `case.overdue` after it)
/// go to every target told of the case so far, as Standard Webhooks messages like
/// `alert.raised`, with the case as the event left it in the payload's `case` member.
public enum CaseEvent {
    /// The hub's reminder that a case is due soon.
    public static let reminder = "case.reminder"
    /// The hub's word that a case is past its due time.
    public static let overdue = "case.overdue"

    /// Events that lose their point once the case is closed: a delivery of one of them still
    /// pending then is dropped (state `skipped`). A change's own event always goes.
    public static let droppedWhenClosed: Set<String> = ["alert.raised", "alert.escalated", reminder, overdue]

    /// The payload's `case` member: the case after `event`, the status it came `from` (for
    /// a change of status), who made the change and when, and the change's note. A JSON
    /// object with sorted keys.
    public static func payload(of alert: Alert, event: String, from: Alert.Status?, by actor: AuditActor?, at time: Int64, note: String) -> String {
        var object: [String: Any] = [
            "event": event, "at": time, "status": alert.status.rawValue, "owner": alert.owner, "level": alert.level,
        ]
        if let from { object["from"] = from.rawValue }
        if let actor { object["by"] = actor.name }
        if !note.isEmpty { object["note"] = note }
        if let due = alert.dueAt { object["dueAt"] = due }
        if let first = alert.firstActionAt { object["firstActionAt"] = first }
        if let closed = alert.closedAt { object["closedAt"] = closed }
        if let reached = alert.customerReached { object["customerReached"] = reached }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    /// One delivery of a person's change to each of `targets`, each with an id of its own
    /// (a case can go back and forth between in progress and waiting; each change is news).
    public static func deliveries(of alert: Alert, event: String, payload: String, to targets: [String], at time: Int64) -> [NewDelivery] {
        targets.map {
            NewDelivery(id: UUID(), alertID: alert.id, level: alert.level, target: $0, dueAt: time, event: event, payload: payload)
        }
    }

    /// One delivery of a follow-up (`case.reminder` or `case.overdue`) to each of `targets`:
    /// a case has each follow-up once, so its id is derived from the case, the event and the
    /// target, and a second hub's attempt at the same finds the row.
    public static func followUps(of alert: Alert, event: String, payload: String, to targets: [String], at time: Int64) -> [NewDelivery] {
        targets.map {
            NewDelivery(
                id: AlertEvaluator.derivedID("delivery", alert.id.uuidString, event, $0), alertID: alert.id, level: alert.level,
                target: $0, dueAt: time, event: event, payload: payload
            )
        }
    }

    /// What a follow-up (`event`) does to the case `alert` at `now`, given the targets told
    /// of it so far: a `case.overdue` moves it up one escalation level when it has one left
    /// (`maxLevel`, the rule's next target then told too); every target gets the event. A
    /// reminder whose due time has passed is not sent (no deliveries).
    static func followUp(
        _ alert: Alert, maxLevel: Int, event: String, told: [String], evaluator: AlertEvaluator, now: Int64
    ) -> (alert: Alert, step: AlertEvaluator.Escalation?, deliveries: [NewDelivery]) {
        // A hub that was down past the due time sends the overdue notice, not a late "due soon".
        if event == Self.reminder, let due = alert.dueAt, due <= now { return (alert, nil, []) }
        var alert = alert
        var step: AlertEvaluator.Escalation?
        if event == Self.overdue, alert.level < maxLevel {
            step = evaluator.escalation(of: alert.id, rule: alert.rule, level: alert.level, now: now)
        }
        var targets = told
        if let step {
            alert.level = step.level
            if !targets.contains(step.delivery.target) { targets.append(step.delivery.target) }
        }
        let payload = Self.payload(of: alert, event: event, from: nil, by: nil, at: now, note: "")
        return (alert, step, Self.followUps(of: alert, event: event, payload: payload, to: targets, at: now))
    }

    /// A line for a chat target (Slack) announcing `event` for the case summarised as `summary`.
    static func chatLine(event: String, level: Int, summary: String, payload: String?) -> String {
        // Slack reads <…> as links and mentions (<!channel>): a comment or an owner's name
        // must not ping a channel. Its escapes are &amp; &lt; &gt;.
        Self.line(event: event, level: level, summary: summary, payload: payload)
            .replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
    }

    private static func line(event: String, level: Int, summary: String, payload: String?) -> String {
        let fields = payload.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] } ?? [:]
        let by = (fields["by"] as? String).map { " by \($0)" } ?? ""
        switch event {
        case "alert.raised": return ":rotating_light: " + summary
        case "alert.escalated": return ":rotating_light: escalated (level \(level)): " + summary
        case reminder: return ":alarm_clock: case due soon: " + summary
        case overdue: return ":warning: case overdue" + (level > 0 ? " (escalated, level \(level))" : "") + ": " + summary
        case "case.assigned":
            let owner = (fields["owner"] as? String).flatMap { $0.isEmpty ? nil : $0 }
            return ":bust_in_silhouette: case " + (owner.map { "assigned to \($0)" } ?? "unassigned") + by + ": " + summary
        default:
            let status = (fields["status"] as? String) ?? event
            return ":memo: case \(status)\(by): " + summary
        }
    }
}

/// What a store writes for a change a person made: the audit entry and the webhook payload.
struct AppliedCaseChange {
    /// The audit action and the event's type.
    let event: String
    /// The audit entry's `from`: the status before, or the owner before.
    let from: String
    /// The audit entry's `to`.
    let to: String
    /// The change's note, trimmed.
    let note: String
    /// The payload's `case` member.
    let payload: String

    init(_ change: CaseChange, before: Alert, after: Alert, by actor: AuditActor, at time: Int64) {
        self.event = change.event
        self.note = change.note.trimmingCharacters(in: .whitespacesAndNewlines)
        let statusBefore: Alert.Status?
        switch change.kind {
        case .status:
            (self.from, self.to, statusBefore) = (before.status.rawValue, after.status.rawValue, before.status)
        case .assign:
            (self.from, self.to, statusBefore) = (before.owner, after.owner, nil)
        }
        self.payload = CaseEvent.payload(of: after, event: self.event, from: statusBefore, by: actor, at: time, note: self.note)
    }

    /// One delivery to each of `targets`.
    func deliveries(of alert: Alert, to targets: [String], at time: Int64) -> [NewDelivery] {
        CaseEvent.deliveries(of: alert, event: self.event, payload: self.payload, to: targets, at: time)
    }
}

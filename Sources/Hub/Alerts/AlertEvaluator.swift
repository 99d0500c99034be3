import Crypto
import Foundation
import Wire

/// The alert rules applied: ratings and silences in, alerts and their deliveries out.
///
/// The one place a rule is evaluated. A store calls ``raise(for:now:in:)`` inside its commit
/// transaction for every record it stores for the first time, and ``raise(_:now:in:)`` for the
/// silences ``silences(in:now:)`` finds; what the evaluator raises goes through the store's
/// ``AlertLedger`` into the same transaction. So "an alert exactly once, and only for a rating
/// stored for the first time" holds for every store with this one implementation: a duplicate
/// never reaches the evaluator, and an alert's id is derived from its rule and cause, so a
/// second raise of the same alert finds the row and writes nothing.
public struct AlertEvaluator: Sendable {
    /// The rules in force.
    public let rules: AlertRules

    /// How long a window rule keeps the count of a rating after it arrived, beyond its
    /// longest window: ratings are counted by when they occurred, and ratings of one window
    /// that arrive within this of one another (an agent's backlog, an import of last month's
    /// calls) still find one another.
    public static let lateArrivalMilliseconds: Int64 = 24 * 3_600_000

    /// Creates an evaluator of `rules`.
    public init(rules: AlertRules) {
        self.rules = rules
    }

    /// Whether any rule reads ratings (else commits skip evaluation).
    public var readsRatings: Bool {
        self.rules.rules.contains { $0.scale != nil }
    }

    // MARK: Ratings

    /// Evaluates every rule for `record`, a rating stored for the first time in the
    /// transaction `ledger` writes to.
    public func raise(for record: FeedbackRecord, now: Int64, in ledger: some AlertLedger) throws {
        for rule in self.rules.rules where rule.considers(record) {
            guard let scale = rule.scale else { continue }
            if let window = rule.window {
                try self.evaluate(window, of: rule, scale: scale, record: record, now: now, in: ledger)
            } else if rule.isNegative(record) {
                let summary = "\(rule.name): \(record.scale.name) \(record.score) at \(record.site)"
                    + (record.subject.isEmpty ? "" : " for \(record.subject)")
                    + (record.comment.isEmpty ? "" : ": \"\(record.comment.prefix(140))\"")
                let details: [String: Any] = [
                    "kind": "record", "scale": record.scale.name, "score": Int(record.score), "channel": record.channel,
                    "topic": record.topic, "survey": record.survey, "customer": record.customer, "comment": record.comment,
                    "source": "\(record.source)", "occurredAt": record.occurredAt,
                ]
                try self.raise(
                    rule: rule, kind: "record", site: record.site, subject: record.subject, summary: summary, details: details,
                    cause: .record(record), now: now, in: ledger
                )
            }
        }
    }

    /// The windows `record` counts into: (rule, key) for each window rule that considers it.
    /// A store with several writers locks them, in one order, before evaluating.
    public func windows(of record: FeedbackRecord) -> [(rule: String, key: String)] {
        self.rules.rules.compactMap { rule in
            guard let window = rule.window, rule.considers(record) else { return nil }
            return (rule.name, window.per == .site ? record.site : record.subject)
        }
    }

    /// A window rule fires when its window crosses the threshold, and re-arms when it falls
    /// back below: only the crossing alerts.
    private func evaluate(
        _ window: AlertRules.Window, of rule: AlertRules.Rule, scale: FeedbackRecord.Scale, record: FeedbackRecord, now: Int64,
        in ledger: some AlertLedger
    ) throws {
        let key = window.per == .site ? record.site : record.subject
        let counts = try ledger.countInWindow(
            rule: rule.name, key: key, recordID: record.id, occurredAt: record.occurredAt, storedAt: now, negative: rule.isNegative(record),
            from: record.occurredAt - window.periodMilliseconds, through: record.occurredAt
        )
        let firing = counts.total >= window.minResponses && counts.negative * 100 >= window.sharePercent * counts.total
        guard firing != (try ledger.isWindowFiring(rule: rule.name, key: key)) else { return }
        try ledger.setWindowFiring(firing, rule: rule.name, key: key)
        guard firing else { return }
        let minutes = window.periodMilliseconds / 60_000
        let summary =
            "\(rule.name): \(counts.negative) of \(counts.total) \(scale.name) ratings negative at \(window.per.rawValue) \(key) in \(minutes) min"
        let details: [String: Any] = [
            "kind": "window", "scale": scale.name, "per": window.per.rawValue, "key": key, "responses": counts.total,
            "negative": counts.negative, "sharePercent": counts.negative * 100 / max(counts.total, 1),
            "thresholdPercent": window.sharePercent, "minutes": minutes,
        ]
        try self.raise(
            rule: rule, kind: "window", site: record.site, subject: window.per == .subject ? record.subject : "", summary: summary,
            details: details, cause: .record(record), now: now, in: ledger
        )
    }

    /// Window counts of ratings that arrived before this are no longer needed (older than the
    /// longest window and ``lateArrivalMilliseconds``); nil when no rule has a window.
    public func windowHorizon(now: Int64) -> Int64? {
        guard let longest = self.rules.rules.compactMap(\.window?.periodMilliseconds).max() else { return nil }
        return now - longest - Self.lateArrivalMilliseconds
    }

    // MARK: Silences

    /// A node silent under a silent rule.
    public struct Silence: Sendable {
        /// The silent rule.
        public var rule: AlertRules.Rule
        /// The node and when it was last seen.
        public var node: FleetNode
        /// When it became silent under the rule: last seen plus the rule's `silentFor`.
        public var since: Int64

        /// The id of the alert this silence raises; a node alerts once per silence.
        public var alertID: UUID {
            AlertCause.silence(node: self.node.node.nodeID, since: self.since).alertID(rule: self.rule.name)
        }
    }

    /// The silences in `fleet` at `now`: for each silent rule, each watched node seen before
    /// and not since the rule's `silentFor`.
    public func silences(in fleet: [FleetNode], now: Int64) -> [Silence] {
        var silences: [Silence] = []
        for rule in self.rules.rules {
            guard let silentFor = rule.silentForMilliseconds else { continue }
            for node in fleet where rule.watches(node.node) && node.isSilent(at: now, after: silentFor) {
                guard let seen = node.lastSeenAt else { continue }
                silences.append(Silence(rule: rule, node: node, since: seen + silentFor))
            }
        }
        return silences
    }

    /// Raises the alert of `silence` (nothing when it was raised before).
    public func raise(_ silence: Silence, now: Int64, in ledger: some AlertLedger) throws {
        let node = silence.node.node
        guard let seen = silence.node.lastSeenAt, let silentFor = silence.rule.silentForMilliseconds else { return }
        let role = node.role == .relay ? "relay" : "agent"
        let site = node.sites.patterns.count == 1 && !node.sites.patterns[0].contains("*") ? node.sites.patterns[0] : ""
        let summary =
            "\(silence.rule.name): \(role) \(node.nodeID.uuidString.lowercased()) (\(node.sites)) not seen for \((now - seen) / 60_000) min"
        var details: [String: Any] = [
            "kind": "silent", "nodeId": node.nodeID.uuidString.lowercased(), "role": role, "sites": node.sites.patterns,
            "lastSeenAt": seen, "silentForMinutes": silentFor / 60_000,
        ]
        if let status = silence.node.status {
            details["statusSentAt"] = status.sentAt
            if let via = status.via { details["via"] = via.uuidString.lowercased() }
        }
        try self.raise(
            rule: silence.rule, kind: "silent", site: site, subject: "", summary: summary, details: details,
            cause: .silence(node: node.nodeID, since: silence.since), now: now, in: ledger
        )
    }

    // MARK: Escalation

    /// An open alert's next escalation step.
    public struct Escalation: Sendable, Hashable {
        /// The level it moves to.
        public var level: Int
        /// Its new deadline, ms since the epoch.
        public var deadlineAt: Int64
        /// The message to the level's target.
        public var delivery: NewDelivery
    }

    /// The next step of the overdue alert `alert` of rule `rule` at `level`; nil when the rule
    /// is gone or has no level left (the alert then stays overdue and stops escalating).
    public func escalation(of alert: UUID, rule name: String, level: Int, now: Int64) -> Escalation? {
        guard let rule = self.rules.rule(named: name), level >= 0, level < rule.escalate.count,
            let within = rule.acknowledgeWithinMilliseconds
        else { return nil }
        return Escalation(
            level: level + 1, deadlineAt: now + within,
            delivery: Self.delivery(alert: alert, level: level + 1, target: rule.escalate[level], dueAt: now)
        )
    }

    // MARK: Writing

    /// What raised an alert: a record, or a node's silence (which began at `since`).
    enum AlertCause {
        case record(FeedbackRecord)
        case silence(node: UUID, since: Int64)

        /// The alert's id: the same for the same rule and cause, so raising it again finds the row.
        func alertID(rule: String) -> UUID {
            switch self {
            case .record(let record): AlertEvaluator.derivedID("alert", rule, record.id.uuidString)
            case .silence(let node, let since): AlertEvaluator.derivedID("alert", rule, "silent", node.uuidString, "\(since)")
            }
        }

        var recordID: UUID? {
            if case .record(let record) = self { record.id } else { nil }
        }

        /// For a record its capture time; for a silence the moment the node became silent
        /// under the rule, so the alert latency metric measures evaluation and delivery.
        var capturedAt: Int64 {
            switch self {
            case .record(let record): record.capturedAt
            case .silence(_, let since): since
            }
        }
    }

    private func raise(
        rule: AlertRules.Rule, kind: String, site: String, subject: String, summary: String, details: [String: Any], cause: AlertCause,
        now: Int64, in ledger: some AlertLedger
    ) throws {
        let id = cause.alertID(rule: rule.name)
        let deadline = rule.acknowledgeWithinMilliseconds.map { now + $0 }
        let due = rule.closeWithinMilliseconds.map { now + $0 }
        let remind = due.flatMap { due in rule.remindBeforeMilliseconds.map { due - $0 } }
        var document = details
        document["id"] = id.uuidString.lowercased()
        document["rule"] = rule.name
        document["site"] = site
        document["subject"] = subject
        document["summary"] = summary
        if let recordID = cause.recordID { document["recordId"] = recordID.uuidString.lowercased() }
        document["capturedAt"] = cause.capturedAt
        document["createdAt"] = now
        if let deadline { document["deadlineAt"] = deadline }
        if let due { document["dueAt"] = due }
        let json = String(decoding: try JSONSerialization.data(withJSONObject: document, options: [.sortedKeys]), as: UTF8.self)
        let alert = NewAlert(
            id: id, rule: rule.name, kind: kind, maxLevel: rule.escalate.count, site: site, subject: subject, summary: summary,
            details: json, recordID: cause.recordID, createdAt: now, capturedAt: cause.capturedAt, deadlineAt: deadline,
            dueAt: due, remindAt: remind
        )
        let deliveries = self.rules.targets(of: rule, site: site, subject: subject).map {
            Self.delivery(alert: id, level: 0, target: $0, dueAt: now)
        }
        try ledger.raise(alert, deliveries: deliveries)
    }

    /// The delivery of `alert` at `level` to `target`; its id is derived from the three, so
    /// a retried insert finds the same row.
    static func delivery(alert: UUID, level: Int, target: String, dueAt: Int64) -> NewDelivery {
        NewDelivery(
            id: Self.derivedID("delivery", alert.uuidString, "\(level)", target), alertID: alert, level: level, target: target,
            dueAt: dueAt
        )
    }

    /// A stable UUID (version 8) from names.
    static func derivedID(_ parts: String...) -> UUID {
        UUID(version: 8, Array(SHA256.hash(data: Data(parts.joined(separator: "\u{0}").utf8)).prefix(16)))
    }
}

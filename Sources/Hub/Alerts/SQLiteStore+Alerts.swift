import Crypto
import Foundation
import GRDB
import Wire

/// An alert as the store and the HTTP API show it.
public struct Alert: Sendable, Hashable, Codable {
    /// Where an alert is in its life.
    public enum Status: String, Sendable, Hashable, Codable, CaseIterable {
        /// Raised; nobody has taken it yet. Escalates when its deadline passes.
        case open
        /// Someone took it.
        case acknowledged
        /// Dealt with.
        case resolved
        /// Withdrawn (a false alarm, a test), with a note.
        case cancelled
    }

    /// Stable id, derived from the rule and the record (or window) that raised it.
    public var id: UUID
    /// The rule's name.
    public var rule: String
    /// `record` or `window`.
    public var kind: String
    /// Open, acknowledged, resolved or cancelled.
    public var status: Status
    /// Escalation level reached: 0 when only the first targets were told.
    public var level: Int
    /// The site concerned.
    public var site: String
    /// The subject concerned ("" for a site window).
    public var subject: String
    /// One line for people.
    public var summary: String
    /// The record that raised it (for a window rule, the one that crossed the threshold).
    public var recordID: UUID?
    /// When the hub raised it, ms since the epoch.
    public var createdAt: Int64
    /// When the record was captured, ms since the epoch.
    public var capturedAt: Int64
    /// When it escalates if not acknowledged (nil: it does not).
    public var deadlineAt: Int64?
    /// When it was acknowledged.
    public var acknowledgedAt: Int64?
    /// When it was resolved or cancelled.
    public var closedAt: Int64?
    /// Who acknowledged, resolved or cancelled it, and why.
    public var note: String
}

/// Why an alert could not change state.
public enum AlertTransitionError: Error, Sendable, Hashable, CustomStringConvertible {
    /// No alert has this id.
    case notFound
    /// The alert's state does not allow it (for example resolving a cancelled alert).
    case notAllowed(from: Alert.Status, action: String)

    /// A sentence for the API's error message.
    public var description: String {
        switch self {
        case .notFound: "no alert has this id"
        case .notAllowed(let from, let action): "an alert that is \(from.rawValue) cannot be \(action)"
        }
    }
}

/// A webhook to send: one alert, one target, one escalation level.
public struct DueDelivery: Sendable, Hashable {
    /// Also the `webhook-id` header: the same on every retry, so receivers can drop repeats.
    public var id: UUID
    /// The alert.
    public var alertID: UUID
    /// The escalation level the message is for.
    public var level: Int
    /// The target's name.
    public var target: String
    /// Attempts so far.
    public var attempts: Int
    /// The alert's JSON (the `alert` member of the payload).
    public var details: String
    /// The alert's one-line summary.
    public var summary: String
    /// The record's capture time, ms since the epoch.
    public var capturedAt: Int64
}

extension SQLiteStore {
    static func registerAlertSchema(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v2-alerts") { db in
            try db.execute(
                sql: """
                    CREATE TABLE alerts (
                        id BLOB NOT NULL PRIMARY KEY,
                        rule TEXT NOT NULL,
                        kind TEXT NOT NULL,
                        status TEXT NOT NULL,
                        level INTEGER NOT NULL,
                        max_level INTEGER NOT NULL,
                        site TEXT NOT NULL,
                        subject TEXT NOT NULL,
                        summary TEXT NOT NULL,
                        details TEXT NOT NULL,
                        record_id BLOB,
                        created_at INTEGER NOT NULL,
                        captured_at INTEGER NOT NULL,
                        deadline_at INTEGER,
                        acknowledged_at INTEGER,
                        closed_at INTEGER,
                        note TEXT NOT NULL DEFAULT ''
                    ) WITHOUT ROWID;
                    CREATE INDEX alerts_by_status ON alerts (status, created_at);
                    CREATE INDEX alerts_by_deadline ON alerts (status, deadline_at);
                    CREATE TABLE alert_deliveries (
                        id BLOB NOT NULL PRIMARY KEY,
                        alert_id BLOB NOT NULL,
                        level INTEGER NOT NULL,
                        target TEXT NOT NULL,
                        state TEXT NOT NULL,
                        attempts INTEGER NOT NULL DEFAULT 0,
                        next_attempt_at INTEGER NOT NULL,
                        last_error TEXT NOT NULL DEFAULT '',
                        delivered_at INTEGER,
                        UNIQUE (alert_id, level, target)
                    ) WITHOUT ROWID;
                    CREATE INDEX alert_deliveries_due ON alert_deliveries (state, next_attempt_at);
                    CREATE TABLE alert_windows (
                        rule TEXT NOT NULL,
                        key TEXT NOT NULL,
                        firing INTEGER NOT NULL,
                        PRIMARY KEY (rule, key)
                    ) WITHOUT ROWID;
                    """
            )
        }
    }

    // MARK: Raising (inside the commit transaction)

    /// Evaluates the rules for a record stored for the first time, in the commit's
    /// transaction, and writes any alert and its deliveries there. Returns alerts raised.
    func raiseAlerts(for record: FeedbackRecord, rules: AlertRules, db: Database, now: Int64) throws -> Int {
        var raised = 0
        for rule in rules.rules where rule.considers(record) {
            guard let scale = rule.scale else { continue }
            if let window = rule.window {
                raised += try self.evaluateWindow(rule, window, scale: scale, record: record, rules: rules, db: db, now: now)
            } else if rule.isNegative(record) {
                let summary = "\(rule.name): \(record.scale.name) \(record.score) at \(record.site)"
                    + (record.subject.isEmpty ? "" : " for \(record.subject)")
                    + (record.comment.isEmpty ? "" : ": \"\(record.comment.prefix(140))\"")
                let details: [String: Any] = [
                    "kind": "record", "scale": record.scale.name, "score": Int(record.score), "channel": record.channel,
                    "topic": record.topic, "survey": record.survey, "customer": record.customer, "comment": record.comment,
                    "source": "\(record.source)", "occurredAt": record.occurredAt,
                ]
                raised += try self.insertAlert(
                    rule: rule, rules: rules, kind: "record", site: record.site, subject: record.subject, summary: summary,
                    details: details, cause: .record(record), db: db, now: now
                )
            }
        }
        return raised
    }

    private func evaluateWindow(
        _ rule: AlertRules.Rule, _ window: AlertRules.Window, scale: FeedbackRecord.Scale, record: FeedbackRecord, rules: AlertRules,
        db: Database, now: Int64
    ) throws -> Int {
        let key = window.per == .site ? record.site : record.subject
        var sql = """
            SELECT COUNT(*), COALESCE(SUM(score BETWEEN ? AND ?), 0) FROM records
            WHERE \(window.per == .site ? "site" : "subject") = ? AND occurred_at > ? AND occurred_at <= ? AND scale = ?
              AND attributes NOT LIKE '%"misuse":"true"%'
            """
        var arguments: StatementArguments = [
            Int(rule.scores.lowerBound), Int(rule.scores.upperBound), key,
            record.occurredAt - window.periodMilliseconds, record.occurredAt, Int(scale.rawValue),
        ]
        func restrict(_ column: String, _ values: [any DatabaseValueConvertible]) {
            guard !values.isEmpty else { return }
            sql += " AND \(column) IN (\(Array(repeating: "?", count: values.count).joined(separator: ",")))"
            _ = arguments.append(contentsOf: StatementArguments(values))
        }
        restrict("site", rule.filter.sites.sorted())
        restrict("channel", rule.filter.channels.sorted())
        restrict("subject", rule.filter.subjects.sorted())
        restrict("topic", rule.filter.topics.sorted())
        restrict("source", rule.filter.sources.map { Int($0.rawValue) }.sorted())
        guard let row = try Row.fetchOne(db.cachedStatement(sql: sql), arguments: arguments) else { return 0 }
        let total: Int = row[0]
        let negative: Int = row[1]
        let firing = total >= window.minResponses && negative * 100 >= window.sharePercent * total
        let wasFiring =
            try Bool.fetchOne(db, sql: "SELECT firing FROM alert_windows WHERE rule = ? AND key = ?", arguments: [rule.name, key]) ?? false
        guard firing != wasFiring else { return 0 }
        try db.execute(
            sql: "INSERT INTO alert_windows (rule, key, firing) VALUES (?, ?, ?) ON CONFLICT (rule, key) DO UPDATE SET firing = excluded.firing",
            arguments: [rule.name, key, firing]
        )
        // Falling back below the threshold re-arms the rule; only crossing it alerts.
        guard firing else { return 0 }
        let minutes = window.periodMilliseconds / 60_000
        let summary = "\(rule.name): \(negative) of \(total) \(scale.name) ratings negative at \(window.per.rawValue) \(key) in \(minutes) min"
        let details: [String: Any] = [
            "kind": "window", "scale": scale.name, "per": window.per.rawValue, "key": key, "responses": total,
            "negative": negative, "sharePercent": negative * 100 / max(total, 1), "thresholdPercent": window.sharePercent,
            "minutes": minutes,
        ]
        return try self.insertAlert(
            rule: rule, rules: rules, kind: "window", site: record.site, subject: window.per == .subject ? record.subject : "",
            summary: summary, details: details, cause: .record(record), db: db, now: now
        )
    }

    /// What raised an alert: a record, or a node's silence (which began at `since`).
    enum AlertCause {
        case record(FeedbackRecord)
        case silence(node: UUID, since: Int64)

        /// The alert's id: the same for the same rule and cause, so raising it again finds the row.
        func alertID(rule: String) -> UUID {
            switch self {
            case .record(let record): SQLiteStore.derivedID("alert", rule, record.id.uuidString)
            case .silence(let node, let since): SQLiteStore.derivedID("alert", rule, "silent", node.uuidString, "\(since)")
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

    private func insertAlert(
        rule: AlertRules.Rule, rules: AlertRules, kind: String, site: String, subject: String, summary: String,
        details: [String: Any], cause: AlertCause, db: Database, now: Int64
    ) throws -> Int {
        let id = cause.alertID(rule: rule.name)
        let deadline = rule.acknowledgeWithinMilliseconds.map { now + $0 }
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
        let json = String(decoding: try JSONSerialization.data(withJSONObject: document, options: [.sortedKeys]), as: UTF8.self)
        try db.execute(
            sql: """
                INSERT OR IGNORE INTO alerts (id, rule, kind, status, level, max_level, site, subject, summary, details,
                    record_id, created_at, captured_at, deadline_at)
                VALUES (?, ?, ?, 'open', 0, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                id, rule.name, kind, rule.escalate.count, site, subject, summary, json, cause.recordID, now, cause.capturedAt, deadline,
            ]
        )
        guard db.changesCount == 1 else { return 0 }
        for target in rules.targets(of: rule, site: site, subject: subject) {
            try Self.insertDelivery(alert: id, level: 0, target: target, db: db, now: now)
        }
        return 1
    }

    // MARK: Raising (silent nodes)

    /// Raises, for each silent rule, one alert per watched node that is silent under it at
    /// `now` (seen before, not since `silentFor`), in one transaction with its deliveries.
    /// A silence is known by the node's last-seen time: raising it again finds its alert, so
    /// a node alerts once per silence, and again only after it was seen and fell silent
    /// again. Returns the alerts raised.
    public func raiseSilenceAlerts(rules: AlertRules, fleet: [FleetNode], now: Int64) throws -> Int {
        var silent: [(AlertRules.Rule, FleetNode, Int64)] = []
        for rule in rules.rules {
            guard let silentFor = rule.silentForMilliseconds else { continue }
            for node in fleet where rule.watches(node.node) && node.isSilent(at: now, after: silentFor) {
                silent.append((rule, node, silentFor))
            }
        }
        guard !silent.isEmpty else { return 0 }
        // Most ticks find only silences already raised: look before taking the write lock.
        let raisedBefore = try self.pool.read { db in
            try silent.filter { rule, node, silentFor in
                guard let seen = node.lastSeenAt else { return true }
                let id = AlertCause.silence(node: node.node.nodeID, since: seen + silentFor).alertID(rule: rule.name)
                return try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM alerts WHERE id = ?)", arguments: [id]) ?? false
            }.count
        }
        guard raisedBefore < silent.count else { return 0 }
        let raised = try self.pool.write { db in
            var raised = 0
            for (rule, fleetNode, silentFor) in silent {
                guard let seen = fleetNode.lastSeenAt else { continue }
                let node = fleetNode.node
                let role = node.role == .relay ? "relay" : "agent"
                let site = node.sites.patterns.count == 1 && !node.sites.patterns[0].contains("*") ? node.sites.patterns[0] : ""
                let minutes = (now - seen) / 60_000
                let summary = "\(rule.name): \(role) \(node.nodeID.uuidString.lowercased()) (\(node.sites)) not seen for \(minutes) min"
                var details: [String: Any] = [
                    "kind": "silent", "nodeId": node.nodeID.uuidString.lowercased(), "role": role, "sites": node.sites.patterns,
                    "lastSeenAt": seen, "silentForMinutes": silentFor / 60_000,
                ]
                if let status = fleetNode.status {
                    details["statusSentAt"] = status.sentAt
                    if let via = status.via { details["via"] = via.uuidString.lowercased() }
                }
                raised += try self.insertAlert(
                    rule: rule, rules: rules, kind: "silent", site: site, subject: "", summary: summary, details: details,
                    cause: .silence(node: node.nodeID, since: seen + silentFor), db: db, now: now
                )
            }
            return raised
        }
        if raised > 0, let handler = self.alertsRaised.withLock({ $0 }) { handler(raised) }
        return raised
    }

    private static func insertDelivery(alert: UUID, level: Int, target: String, db: Database, now: Int64) throws {
        try db.execute(
            sql: """
                INSERT OR IGNORE INTO alert_deliveries (id, alert_id, level, target, state, next_attempt_at)
                VALUES (?, ?, ?, ?, 'pending', ?)
                """,
            arguments: [Self.derivedID("delivery", alert.uuidString, "\(level)", target), alert, level, target, now]
        )
    }

    /// A stable UUID from names, so a retried insert finds the same row.
    static func derivedID(_ parts: String...) -> UUID {
        var bytes = Array(SHA256.hash(data: Data(parts.joined(separator: "\u{0}").utf8)).prefix(16))
        bytes[6] = (bytes[6] & 0x0F) | 0x80  // version 8: custom
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        return UUID(
            uuid: (
                bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]
            )
        )
    }

    // MARK: Delivery

    /// Pending deliveries whose time has come, oldest first, skipping `busy` ones. Deliveries
    /// of alerts resolved or cancelled meanwhile are dropped (state `skipped`).
    public func dueDeliveries(now: Int64, limit: Int, excluding busy: Set<UUID>) throws -> [DueDelivery] {
        let rows = try self.pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT d.id, d.alert_id, d.level, d.target, d.attempts, a.details, a.summary, a.captured_at, a.status
                    FROM alert_deliveries d JOIN alerts a ON a.id = d.alert_id
                    WHERE d.state = 'pending' AND d.next_attempt_at <= ?
                    ORDER BY d.next_attempt_at LIMIT ?
                    """,
                arguments: [now, limit + busy.count]
            )
        }
        var due: [DueDelivery] = []
        var closed: [UUID] = []
        for row in rows {
            guard let id = row[0] as UUID?, !busy.contains(id), let alert = row[1] as UUID? else { continue }
            if ["resolved", "cancelled"].contains(row[8] as String) {
                closed.append(id)
                continue
            }
            due.append(
                DueDelivery(
                    id: id, alertID: alert, level: row[2], target: row[3], attempts: row[4], details: row[5], summary: row[6],
                    capturedAt: row[7]
                )
            )
        }
        if !closed.isEmpty {
            try self.pool.write { db in
                for id in closed {
                    try db.execute(sql: "UPDATE alert_deliveries SET state = 'skipped' WHERE id = ?", arguments: [id])
                }
            }
        }
        return Array(due.prefix(limit))
    }

    /// The target took the delivery.
    public func deliveryDone(_ id: UUID, at time: Int64) throws {
        try self.pool.write { db in
            try db.execute(
                sql: "UPDATE alert_deliveries SET state = 'delivered', attempts = attempts + 1, delivered_at = ? WHERE id = ?",
                arguments: [time, id]
            )
        }
    }

    /// The target refused or could not be reached: try again at `retryAt`, or give up
    /// (state `dead`) when `retryAt` is nil.
    public func deliveryFailed(_ id: UUID, error: String, retryAt: Int64?) throws {
        try self.pool.write { db in
            try db.execute(
                sql: """
                    UPDATE alert_deliveries SET attempts = attempts + 1, last_error = ?,
                        state = CASE WHEN ? IS NULL THEN 'dead' ELSE state END,
                        next_attempt_at = COALESCE(?, next_attempt_at)
                    WHERE id = ?
                    """,
                arguments: [String(error.prefix(500)), retryAt, retryAt, id]
            )
        }
    }

    /// Open alerts past their deadline with levels left move up one level: a delivery to
    /// the rule's next escalation target and a new deadline. Returns the alerts escalated.
    public func escalateOverdue(rules: AlertRules, now: Int64) throws -> [(id: UUID, level: Int)] {
        // Read first: most checks find nothing, and need not take the write lock.
        let any = try self.pool.read { db in
            try Bool.fetchOne(
                db, sql: "SELECT EXISTS (SELECT 1 FROM alerts WHERE status = 'open' AND deadline_at <= ? AND level < max_level)",
                arguments: [now]
            ) ?? false
        }
        guard any else { return [] }
        return try self.pool.write { db in
            let rows = try Row.fetchAll(
                db,
                sql: "SELECT id, rule, level FROM alerts WHERE status = 'open' AND deadline_at <= ? AND level < max_level",
                arguments: [now]
            )
            var escalated: [(id: UUID, level: Int)] = []
            for row in rows {
                guard let id = row[0] as UUID? else { continue }
                let name: String = row[1]
                let level: Int = row[2]
                guard let rule = rules.rule(named: name), level < rule.escalate.count,
                    let within = rule.acknowledgeWithinMilliseconds
                else {
                    // The rule changed since: stop escalating, keep it overdue.
                    try db.execute(sql: "UPDATE alerts SET max_level = level WHERE id = ?", arguments: [id])
                    continue
                }
                try db.execute(
                    sql: "UPDATE alerts SET level = ?, deadline_at = ? WHERE id = ?", arguments: [level + 1, now + within, id]
                )
                try Self.insertDelivery(alert: id, level: level + 1, target: rule.escalate[level], db: db, now: now)
                escalated.append((id, level + 1))
            }
            return escalated
        }
    }

    /// Counts of deliveries by state, for metrics and tests.
    public func deliveryCounts() throws -> [String: Int] {
        try self.pool.read { db in
            var counts: [String: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT state, COUNT(*) FROM alert_deliveries GROUP BY state") {
                counts[row[0]] = row[1]
            }
            return counts
        }
    }

    // MARK: Lifecycle and lists

    /// Alerts, newest first, filtered by status, site and whether overdue at `now`.
    public func alerts(status: Alert.Status? = nil, site: String? = nil, overdueAt now: Int64? = nil, limit: Int = 100) throws -> [Alert] {
        var sql = "SELECT \(Self.alertColumns) FROM alerts WHERE 1 = 1"
        var arguments: StatementArguments = []
        if let status {
            sql += " AND status = ?"
            _ = arguments.append(contentsOf: [status.rawValue])
        }
        if let site {
            sql += " AND site = ?"
            _ = arguments.append(contentsOf: [site])
        }
        if let now {
            sql += " AND status = 'open' AND deadline_at <= ?"
            _ = arguments.append(contentsOf: [now])
        }
        sql += " ORDER BY created_at DESC LIMIT ?"
        _ = arguments.append(contentsOf: [limit])
        return try self.pool.read { db in
            try Row.fetchAll(db, sql: sql, arguments: arguments).compactMap(Self.alert)
        }
    }

    /// One alert.
    public func alert(_ id: UUID) throws -> Alert? {
        try self.pool.read { db in
            try Row.fetchOne(db, sql: "SELECT \(Self.alertColumns) FROM alerts WHERE id = ?", arguments: [id]).flatMap(Self.alert)
        }
    }

    /// Moves an alert along its life: `acknowledge` (open → acknowledged), `resolve` or
    /// `cancel` (open or acknowledged → resolved or cancelled). The note is kept.
    public func transition(_ id: UUID, to status: Alert.Status, note: String, at time: Int64) throws -> Result<Alert, AlertTransitionError> {
        try self.pool.write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT \(Self.alertColumns) FROM alerts WHERE id = ?", arguments: [id]), let current = Self.alert(row)
            else { return .failure(.notFound) }
            let allowed: Set<Alert.Status> =
                switch status {
                case .open: []
                case .acknowledged: [.open]
                case .resolved, .cancelled: [.open, .acknowledged]
                }
            guard allowed.contains(current.status) else {
                let action =
                    switch status {
                    case .open: "reopened"
                    case .acknowledged: "acknowledged"
                    case .resolved: "resolved"
                    case .cancelled: "cancelled"
                    }
                return .failure(.notAllowed(from: current.status, action: action))
            }
            let combined = note.isEmpty ? current.note : (current.note.isEmpty ? note : current.note + "\n" + note)
            if status == .acknowledged {
                try db.execute(
                    sql: "UPDATE alerts SET status = ?, acknowledged_at = ?, note = ? WHERE id = ?",
                    arguments: [status.rawValue, time, combined, id]
                )
            } else {
                try db.execute(
                    sql: "UPDATE alerts SET status = ?, closed_at = ?, note = ? WHERE id = ?",
                    arguments: [status.rawValue, time, combined, id]
                )
            }
            guard let updated = try Row.fetchOne(db, sql: "SELECT \(Self.alertColumns) FROM alerts WHERE id = ?", arguments: [id]).flatMap(Self.alert) else {
                return .failure(.notFound)
            }
            return .success(updated)
        }
    }

    /// Site and summary are also read as bytes: text stored before PROTOCOL.md §2.4 refused
    /// control characters may hold a NUL, where SQLite's C string would cut it short.
    private static let alertColumns = "*, CAST(site AS BLOB) AS site_bytes, CAST(summary AS BLOB) AS summary_bytes"

    private static func alert(_ row: Row) -> Alert? {
        guard let id = row["id"] as UUID?, let status = Alert.Status(rawValue: row["status"]) else { return nil }
        return Alert(
            id: id, rule: row["rule"], kind: row["kind"], status: status, level: row["level"], site: Self.text(row, "site"),
            subject: row["subject"], summary: Self.text(row, "summary"), recordID: row["record_id"], createdAt: row["created_at"],
            capturedAt: row["captured_at"], deadlineAt: row["deadline_at"], acknowledgedAt: row["acknowledged_at"],
            closedAt: row["closed_at"], note: row["note"]
        )
    }
}

import Foundation
import GRDB
import Wire

extension SQLiteStore: AlertStore {
    public func onAlertsRaised(_ handler: @escaping @Sendable (Int) -> Void) {
        self.alertsRaised.withLock { $0 = handler }
    }

    // MARK: Raising (silent nodes)

    public func raiseSilenceAlerts(fleet: [FleetNode], now: Int64) throws -> Int {
        let silences = self.evaluator.silences(in: fleet, now: now)
        guard !silences.isEmpty else { return 0 }
        // Most ticks find only silences already raised: look before taking the write lock.
        let raisedBefore = try self.pool.read { db in
            try silences.filter { silence in
                try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM alerts WHERE id = ?)", arguments: [silence.alertID]) ?? false
            }.count
        }
        guard raisedBefore < silences.count else { return 0 }
        let raised = try self.pool.write { db in
            let ledger = SQLiteAlertLedger(db: db)
            for silence in silences { try self.evaluator.raise(silence, now: now, in: ledger) }
            return ledger.raised
        }
        self.announce(raised)
        return raised
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
    public func escalateOverdue(now: Int64) throws -> [(id: UUID, level: Int)] {
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
            let ledger = SQLiteAlertLedger(db: db)
            for row in rows {
                guard let id = row[0] as UUID? else { continue }
                guard let step = self.evaluator.escalation(of: id, rule: row[1], level: row[2], now: now) else {
                    // The rule changed since: stop escalating, keep it overdue.
                    try db.execute(sql: "UPDATE alerts SET max_level = level WHERE id = ?", arguments: [id])
                    continue
                }
                try db.execute(sql: "UPDATE alerts SET level = ?, deadline_at = ? WHERE id = ?", arguments: [step.level, step.deadlineAt, id])
                try ledger.insert(step.delivery)
                escalated.append((id, step.level))
            }
            return escalated
        }
    }

    public func pruneAlertWindows(before time: Int64) throws {
        try self.pool.write { db in
            try db.execute(sql: "DELETE FROM alert_window_events WHERE stored_at < ?", arguments: [time])
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

    public func alerts(status: Alert.Status?, site: String?, within scope: SiteScope, overdueAt now: Int64?, limit: Int) throws -> [Alert] {
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
        if let (condition, globs) = scope.sqliteCondition {
            sql += " AND " + condition
            _ = arguments.append(contentsOf: StatementArguments(globs))
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

    public func transition(
        _ id: UUID, to status: Alert.Status, note: String, by actor: AuditActor, at time: Int64
    ) throws -> Result<Alert, AlertTransitionError> {
        try self.pool.write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT \(Self.alertColumns) FROM alerts WHERE id = ?", arguments: [id]), let current = Self.alert(row)
            else { return .failure(.notFound) }
            if let refusal = AlertTransitionError.check(from: current.status, to: status) { return .failure(refusal) }
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
            try Self.audit(
                db, at: time, actor: actor, action: "alert.\(status.rawValue)", object: id, from: current.status.rawValue, to: status.rawValue,
                note: note
            )
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

/// The alert ledger over an open SQLite transaction: what ``AlertEvaluator`` raises is
/// written in it at once.
final class SQLiteAlertLedger: AlertLedger {
    let db: Database
    /// Alerts written so far.
    private(set) var raised = 0

    init(db: Database) {
        self.db = db
    }

    func countInWindow(
        rule: String, key: String, recordID: UUID, occurredAt: Int64, storedAt: Int64, negative: Bool, from: Int64, through: Int64
    ) throws -> (total: Int, negative: Int) {
        try self.db.execute(
            sql: """
                INSERT OR IGNORE INTO alert_window_events (rule, key, occurred_at, record_id, negative, stored_at)
                VALUES (?, ?, ?, ?, ?, ?)
                """,
            arguments: [rule, key, occurredAt, recordID, negative, storedAt]
        )
        let row = try Row.fetchOne(
            self.db.cachedStatement(
                sql: """
                    SELECT COUNT(*), COALESCE(SUM(negative), 0) FROM alert_window_events
                    WHERE rule = ? AND key = ? AND occurred_at > ? AND occurred_at <= ?
                    """
            ),
            arguments: [rule, key, from, through]
        )
        return (row?[0] ?? 0, row?[1] ?? 0)
    }

    func isWindowFiring(rule: String, key: String) throws -> Bool {
        try Bool.fetchOne(self.db, sql: "SELECT firing FROM alert_windows WHERE rule = ? AND key = ?", arguments: [rule, key]) ?? false
    }

    func setWindowFiring(_ firing: Bool, rule: String, key: String) throws {
        try self.db.execute(
            sql: "INSERT INTO alert_windows (rule, key, firing) VALUES (?, ?, ?) ON CONFLICT (rule, key) DO UPDATE SET firing = excluded.firing",
            arguments: [rule, key, firing]
        )
    }

    func raise(_ alert: NewAlert, deliveries: [NewDelivery]) throws {
        try self.db.execute(
            sql: """
                INSERT OR IGNORE INTO alerts (id, rule, kind, status, level, max_level, site, subject, summary, details,
                    record_id, created_at, captured_at, deadline_at)
                VALUES (?, ?, ?, 'open', 0, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                alert.id, alert.rule, alert.kind, alert.maxLevel, alert.site, alert.subject, alert.summary, alert.details, alert.recordID,
                alert.createdAt, alert.capturedAt, alert.deadlineAt,
            ]
        )
        guard self.db.changesCount == 1 else { return }
        self.raised += 1
        for delivery in deliveries { try self.insert(delivery) }
    }

    func insert(_ delivery: NewDelivery) throws {
        try self.db.execute(
            sql: """
                INSERT OR IGNORE INTO alert_deliveries (id, alert_id, level, target, state, next_attempt_at)
                VALUES (?, ?, ?, ?, 'pending', ?)
                """,
            arguments: [delivery.id, delivery.alertID, delivery.level, delivery.target, delivery.dueAt]
        )
    }
}

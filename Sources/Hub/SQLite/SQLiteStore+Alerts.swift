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
    /// that lose their point once a case is closed (``CaseEvent/droppedWhenClosed``) are
    /// dropped (state `skipped`) when it was closed meanwhile.
    public func dueDeliveries(now: Int64, limit: Int, excluding busy: Set<UUID>) throws -> [DueDelivery] {
        let rows = try self.pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT d.id, d.alert_id, d.level, d.target, d.attempts, a.details, a.summary, a.captured_at, a.status,
                        d.event, d.payload
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
            let event: String = row[9]
            if Alert.Status(rawValue: row[8])?.isClosed ?? false, CaseEvent.droppedWhenClosed.contains(event) {
                closed.append(id)
                continue
            }
            due.append(
                DueDelivery(
                    id: id, alertID: alert, level: row[2], event: event, payload: row[10], target: row[3], attempts: row[4],
                    details: row[5], summary: row[6], capturedAt: row[7]
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

    /// A closed case's follow-ups were cleared when it closed (``change(_:_:by:at:)``);
    /// at most 1,000 of each kind per call, the earliest first.
    public func followUpCases(now: Int64) throws -> [(id: UUID, event: String)] {
        let open = "status IN ('open', 'inProgress', 'waiting')"
        let any = try self.pool.read { db in
            try Bool.fetchOne(
                db, sql: "SELECT EXISTS (SELECT 1 FROM alerts WHERE remind_at <= ?) OR EXISTS (SELECT 1 FROM alerts WHERE overdue_at <= ?)",
                arguments: [now, now]
            ) ?? false
        }
        guard any else { return [] }
        return try self.pool.write { db in
            var sent: [(id: UUID, event: String)] = []
            let ledger = SQLiteAlertLedger(db: db)
            for (column, event) in [("remind_at", CaseEvent.reminder), ("overdue_at", CaseEvent.overdue)] {
                let rows = try Row.fetchAll(
                    db, sql: "SELECT \(Self.alertColumns) FROM alerts WHERE \(column) <= ? AND \(open) ORDER BY \(column) LIMIT 1000",
                    arguments: [now]
                )
                for row in rows {
                    guard let alert = Self.alert(row) else { continue }
                    let (after, step, deliveries) = CaseEvent.followUp(
                        alert, maxLevel: row["max_level"], event: event, told: try Self.toldTargets(db, alert.id), evaluator: self.evaluator,
                        now: now
                    )
                    if let step {
                        try db.execute(sql: "UPDATE alerts SET level = ?, deadline_at = ? WHERE id = ?", arguments: [step.level, step.deadlineAt, alert.id])
                    }
                    try db.execute(sql: "UPDATE alerts SET \(column) = NULL WHERE id = ?", arguments: [after.id])
                    for delivery in deliveries { try ledger.insert(delivery) }
                    if !deliveries.isEmpty { sent.append((alert.id, event)) }
                }
            }
            return sent
        }
    }

    /// The targets told of an alert so far, in the order first told.
    static func toldTargets(_ db: Database, _ alert: UUID) throws -> [String] {
        var seen = Set<String>()
        return try String.fetchAll(
            db, sql: "SELECT target FROM alert_deliveries WHERE alert_id = ? ORDER BY level, next_attempt_at", arguments: [alert]
        ).filter { seen.insert($0).inserted }
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

    public func alerts(_ query: AlertQuery) throws -> [Alert] {
        var sql = "SELECT \(Self.alertColumns(brief: query.brief)) FROM alerts WHERE 1 = 1"
        var arguments: StatementArguments = []
        if !query.statuses.isEmpty {
            sql += " AND status IN (" + query.statuses.map { _ in "?" }.joined(separator: ", ") + ")"
            _ = arguments.append(contentsOf: StatementArguments(query.statuses.map(\.rawValue).sorted()))
        }
        if let site = query.site {
            sql += " AND site = ?"
            _ = arguments.append(contentsOf: [site])
        }
        if let owner = query.owner {
            sql += " AND owner = ?"
            _ = arguments.append(contentsOf: [owner])
        }
        if let (condition, globs) = query.scope.sqliteCondition {
            sql += " AND " + condition
            _ = arguments.append(contentsOf: StatementArguments(globs))
        }
        if let now = query.overdueAt {
            sql += " AND ((status = 'open' AND deadline_at <= ?) OR (status IN ('open', 'inProgress', 'waiting') AND due_at <= ?))"
            _ = arguments.append(contentsOf: [now, now])
        }
        if let since = query.unchangedSince {
            sql += " AND status IN ('open', 'inProgress', 'waiting') AND updated_at <= ?"
            _ = arguments.append(contentsOf: [since])
        }
        if let from = query.raisedFrom {
            sql += " AND created_at >= ?"
            _ = arguments.append(contentsOf: [from])
        }
        if let before = query.raisedBefore {
            sql += " AND created_at < ?"
            _ = arguments.append(contentsOf: [before])
        }
        sql += " ORDER BY created_at DESC LIMIT ?"
        _ = arguments.append(contentsOf: [query.limit])
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

    public func change(_ id: UUID, _ change: CaseChange, by actor: AuditActor, at time: Int64) throws -> Result<Alert, AlertTransitionError> {
        try self.pool.write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT \(Self.alertColumns) FROM alerts WHERE id = ?", arguments: [id]), let current = Self.alert(row)
            else { return .failure(.notFound) }
            let updated: Alert
            switch change.applied(to: current, at: time) {
            case .success(let alert): updated = alert
            case .failure(let refusal): return .failure(refusal)
            }
            try db.execute(
                sql: """
                    UPDATE alerts SET status = ?, owner = ?, first_action_at = ?, closed_at = ?, updated_at = ?, customer_reached = ?, note = ?,
                        remind_at = CASE WHEN ? THEN NULL ELSE remind_at END, overdue_at = CASE WHEN ? THEN NULL ELSE overdue_at END
                    WHERE id = ?
                    """,
                arguments: [
                    updated.status.rawValue, updated.owner, updated.firstActionAt, updated.closedAt, updated.updatedAt, updated.customerReached,
                    updated.note, updated.status.isClosed, updated.status.isClosed, id,
                ]
            )
            let applied = AppliedCaseChange(change, before: current, after: updated, by: actor, at: time)
            try Self.audit(db, at: time, actor: actor, action: applied.event, object: id, from: applied.from, to: applied.to, note: applied.note)
            let ledger = SQLiteAlertLedger(db: db)
            for delivery in applied.deliveries(of: updated, to: try Self.toldTargets(db, id), at: time) { try ledger.insert(delivery) }
            return .success(updated)
        }
    }

    /// Site and summary are also read as bytes: text stored before PROTOCOL.md §2.4 refused
    /// control characters may hold a NUL, where SQLite's C string would cut it short.
    /// Every column an ``Alert`` shows (not the webhook details, which lists and reports
    /// need not carry).
    private static let alertColumns = SQLiteStore.alertColumns(brief: false)

    /// The columns of an ``Alert``; with `brief`, empty summaries and notes.
    private static func alertColumns(brief: Bool) -> String {
        let texts = brief ? "'' AS note, X'' AS summary_bytes" : "note, CAST(summary AS BLOB) AS summary_bytes"
        return """
            id, rule, kind, status, level, max_level, subject, record_id, created_at, captured_at, deadline_at, due_at, owner, first_action_at, \
            closed_at, updated_at, customer_reached, CAST(site AS BLOB) AS site_bytes, \(texts)
            """
    }

    private static func alert(_ row: Row) -> Alert? {
        guard let id = row["id"] as UUID?, let status = Alert.Status(rawValue: row["status"]) else { return nil }
        return Alert(
            id: id, rule: row["rule"], kind: row["kind"], status: status, level: row["level"], site: Self.text(row, "site"),
            subject: row["subject"], summary: Self.text(row, "summary"), recordID: row["record_id"], createdAt: row["created_at"],
            capturedAt: row["captured_at"], deadlineAt: row["deadline_at"], dueAt: row["due_at"], owner: row["owner"],
            firstActionAt: row["first_action_at"], closedAt: row["closed_at"], updatedAt: row["updated_at"],
            customerReached: row["customer_reached"], note: row["note"]
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
                    record_id, created_at, captured_at, deadline_at, due_at, remind_at, overdue_at, updated_at)
                VALUES (?, ?, ?, 'open', 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                alert.id, alert.rule, alert.kind, alert.maxLevel, alert.site, alert.subject, alert.summary, alert.details, alert.recordID,
                alert.createdAt, alert.capturedAt, alert.deadlineAt, alert.dueAt, alert.remindAt, alert.dueAt, alert.createdAt,
            ]
        )
        guard self.db.changesCount == 1 else { return }
        self.raised += 1
        for delivery in deliveries { try self.insert(delivery) }
    }

    func insert(_ delivery: NewDelivery) throws {
        try self.db.execute(
            sql: """
                INSERT OR IGNORE INTO alert_deliveries (id, alert_id, level, target, event, payload, state, next_attempt_at)
                VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)
                """,
            arguments: [delivery.id, delivery.alertID, delivery.level, delivery.target, delivery.event, delivery.payload, delivery.dueAt]
        )
    }
}

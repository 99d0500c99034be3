import Foundation
import PostgresNIO
import Wire

extension PostgresStore: AlertStore {
    /// How long a hub holds a delivery it took: twice the request's time limit and 5 s. A
    /// hub that dies holding one loses it when the lease ends, and another hub sends it
    /// (with the same `webhook-id`).
    var claimMilliseconds: Int64 { self.evaluator.rules.delivery.timeoutMilliseconds * 2 + 5_000 }

    public func onAlertsRaised(_ handler: @escaping @Sendable (Int) -> Void) {
        self.alertsRaised.withLock { $0 = handler }
    }

    public func raiseSilenceAlerts(fleet: [FleetNode], now: Int64) throws -> Int {
        let silences = self.evaluator.silences(in: fleet, now: now)
        guard !silences.isEmpty else { return 0 }
        let raised = try self.pool.transaction { session in
            // Most ticks find only silences already raised: look before writing.
            let known = Set(
                try session.query("SELECT id FROM alerts WHERE id = ANY(\(silences.map(\.alertID))::uuid[])").map { try $0.decode(UUID.self) }
            )
            let ledger = PostgresAlertLedger(session: session)
            for silence in silences where !known.contains(silence.alertID) {
                try self.evaluator.raise(silence, now: now, in: ledger)
            }
            return try ledger.flush()
        }
        self.announce(raised)
        return raised
    }

    /// Claims the due deliveries (`FOR UPDATE SKIP LOCKED`, then a lease): each goes out
    /// from one hub at a time; one whose lease ended (its hub died) is claimable again.
    public func dueDeliveries(now: Int64, limit: Int, excluding busy: Set<UUID>) throws -> [DueDelivery] {
        let until = now + self.claimMilliseconds
        return try self.pool.transaction { session in
            let rows = try session.query(
                """
                UPDATE alert_deliveries d SET claimed_by = \(self.claimant), claimed_until = \(until)
                FROM alerts a
                WHERE a.id = d.alert_id AND d.id IN (
                    SELECT id FROM alert_deliveries
                    WHERE state = 'pending' AND next_attempt_at <= \(now) AND (claimed_until IS NULL OR claimed_until < \(now))
                        AND NOT (id = ANY(\(Array(busy))::uuid[]))
                    ORDER BY next_attempt_at LIMIT \(Int64(limit))
                    FOR UPDATE SKIP LOCKED)
                RETURNING d.id, d.alert_id, d.level, d.target, d.attempts, a.details, a.summary, a.captured_at, a.status, d.event, d.payload
                """
            )
            var due: [DueDelivery] = []
            var closed: [UUID] = []
            for row in rows {
                let (id, alert, level, target, attempts, details, summary, capturedAt, status, event, payload) = try row.decode(
                    (UUID, UUID, Int32, String, Int32, String, String, Int64, String, String, String?).self
                )
                if Alert.Status(rawValue: status)?.isClosed ?? false, CaseEvent.droppedWhenClosed.contains(event) {
                    closed.append(id)
                    continue
                }
                due.append(
                    DueDelivery(
                        id: id, alertID: alert, level: Int(level), event: event, payload: payload, target: target, attempts: Int(attempts),
                        details: details, summary: summary, capturedAt: capturedAt
                    )
                )
            }
            if !closed.isEmpty {
                try session.execute("UPDATE alert_deliveries SET state = 'skipped', claimed_by = NULL WHERE id = ANY(\(closed)::uuid[])")
            }
            return due
        }
    }

    public func deliveryDone(_ id: UUID, at time: Int64) throws {
        try self.pool.withSession { session in
            try session.execute(
                """
                UPDATE alert_deliveries SET state = 'delivered', attempts = attempts + 1, delivered_at = \(time),
                    claimed_by = NULL, claimed_until = NULL
                WHERE id = \(id) AND state = 'pending' AND claimed_by = \(self.claimant)
                """
            )
        }
    }

    public func deliveryFailed(_ id: UUID, error: String, retryAt: Int64?) throws {
        try self.pool.withSession { session in
            try session.execute(
                """
                UPDATE alert_deliveries SET attempts = attempts + 1, last_error = \(String(error.prefix(500))),
                    state = CASE WHEN \(retryAt)::int8 IS NULL THEN 'dead' ELSE state END,
                    next_attempt_at = COALESCE(\(retryAt)::int8, next_attempt_at), claimed_by = NULL, claimed_until = NULL
                WHERE id = \(id) AND state = 'pending' AND claimed_by = \(self.claimant)
                """
            )
        }
    }

    /// The overdue alerts are locked (`FOR UPDATE SKIP LOCKED`) while they move up a level:
    /// with several hubs, each escalation happens once. A hundred per transaction, the
    /// earliest deadlines first, so a backlog after an outage never holds many rows locked
    /// (acknowledgements wait on them) nor one long transaction; at most 10,000 per call.
    public func escalateOverdue(now: Int64) throws -> [(id: UUID, level: Int)] {
        var escalated: [(id: UUID, level: Int)] = []
        for _ in 0..<100 {
            let (done, taken) = try self.escalateOverdue(now: now, atMost: 100)
            escalated += done
            if taken < 100 { break }
        }
        return escalated
    }

    /// One transaction of ``escalateOverdue(now:)``: the alerts it moved up, and how many it took.
    private func escalateOverdue(now: Int64, atMost limit: Int) throws -> (escalated: [(id: UUID, level: Int)], taken: Int) {
        try self.pool.transaction { session in
            let rows = try session.query(
                """
                SELECT id, rule, level FROM alerts
                WHERE status = 'open' AND deadline_at <= \(now) AND level < max_level
                ORDER BY deadline_at LIMIT \(limit)
                FOR UPDATE SKIP LOCKED
                """
            )
            var escalated: [(id: UUID, level: Int)] = []
            var taken = 0
            for row in rows {
                taken += 1
                let (id, rule, level) = try row.decode((UUID, String, Int32).self)
                guard let step = self.evaluator.escalation(of: id, rule: rule, level: Int(level), now: now) else {
                    // The rule changed since: stop escalating, keep it overdue.
                    try session.execute("UPDATE alerts SET max_level = level WHERE id = \(id)")
                    continue
                }
                try session.execute(
                    "UPDATE alerts SET level = \(Int32(step.level)), deadline_at = \(step.deadlineAt) WHERE id = \(id)"
                )
                try PostgresAlertLedger.insert([step.delivery], session)
                escalated.append((id, step.level))
            }
            return (escalated, taken)
        }
    }

    /// The cases due a follow-up are locked (`FOR UPDATE SKIP LOCKED`) while it is written,
    /// so with several hubs each follow-up happens once; a closed case's were cleared when
    /// it closed. At most 1,000 of each kind per call, the earliest first.
    public func followUpCases(now: Int64) throws -> [(id: UUID, event: String)] {
        var sent: [(id: UUID, event: String)] = []
        for (column, event) in [("remind_at", CaseEvent.reminder), ("overdue_at", CaseEvent.overdue)] {
            try self.pool.transaction { session in
                let rows = try session.query(
                    """
                    SELECT \(unescaped: Self.alertColumns), max_level FROM alerts
                    WHERE \(unescaped: column) <= \(now) AND status IN ('open', 'inProgress', 'waiting')
                    ORDER BY \(unescaped: column) LIMIT 1000
                    FOR UPDATE SKIP LOCKED
                    """
                )
                for row in rows {
                    guard let alert = try Self.alert(row) else { continue }
                    let maxLevel = try row.makeRandomAccess()[Self.alertColumnCount].decode(Int32.self)
                    let (after, step, deliveries) = CaseEvent.followUp(
                        alert, maxLevel: Int(maxLevel), event: event, told: try Self.toldTargets(session, alert.id), evaluator: self.evaluator,
                        now: now
                    )
                    if let step {
                        try session.execute("UPDATE alerts SET level = \(Int32(step.level)), deadline_at = \(step.deadlineAt) WHERE id = \(alert.id)")
                    }
                    try session.execute("UPDATE alerts SET \(unescaped: column) = NULL WHERE id = \(after.id)")
                    try PostgresAlertLedger.insert(deliveries, session)
                    if !deliveries.isEmpty { sent.append((alert.id, event)) }
                }
            }
        }
        return sent
    }

    /// The targets told of an alert so far, in the order first told.
    static func toldTargets(_ session: PostgresSession, _ alert: UUID) throws -> [String] {
        var seen = Set<String>()
        return try session.query("SELECT target FROM alert_deliveries WHERE alert_id = \(alert) ORDER BY level, next_attempt_at")
            .map { try $0.decode(String.self) }.filter { seen.insert($0).inserted }
    }

    /// Deletes in chunks of 10,000 rows, each its own statement, so a large backlog never
    /// meets the statement timeout (and then never shrinks).
    public func pruneAlertWindows(before time: Int64) throws {
        try self.pool.withSession { session in
            while true {
                let deleted = try session.query(
                    """
                    WITH gone AS (
                        DELETE FROM alert_window_events WHERE ctid IN (
                            SELECT ctid FROM alert_window_events WHERE stored_at < \(time) LIMIT 10000
                        ) RETURNING 1
                    ) SELECT COUNT(*) FROM gone
                    """
                ).first?.decode(Int.self) ?? 0
                if deleted < 10_000 { break }
            }
        }
    }

    public func deliveryCounts() throws -> [String: Int] {
        try self.pool.withSession { session in
            var counts: [String: Int] = [:]
            for row in try session.query("SELECT state, COUNT(*) FROM alert_deliveries GROUP BY state") {
                let (state, count) = try row.decode((String, Int).self)
                counts[state] = count
            }
            return counts
        }
    }

    public func alerts(_ query: AlertQuery) throws -> [Alert] {
        let patterns: [String]? = query.scope.allowsAnySite ? nil : query.scope.postgresLikePatterns
        let statuses: [String]? = query.statuses.isEmpty ? nil : query.statuses.map(\.rawValue).sorted()
        let (now, since) = (query.overdueAt, query.unchangedSince)
        return try self.pool.withSession { session in
            try session.query(
                """
                SELECT \(unescaped: query.brief ? Self.briefAlertColumns : Self.alertColumns) FROM alerts
                WHERE (\(statuses)::text[] IS NULL OR status = ANY (\(statuses)::text[]))
                    AND (\(query.site)::text IS NULL OR site = \(query.site))
                    AND (\(query.owner)::text IS NULL OR owner = \(query.owner))
                    AND (\(patterns)::text[] IS NULL OR site LIKE ANY (\(patterns)::text[]))
                    AND (\(now)::int8 IS NULL OR (status = 'open' AND deadline_at <= \(now))
                        OR (status IN ('open', 'inProgress', 'waiting') AND due_at <= \(now)))
                    AND (\(since)::int8 IS NULL OR (status IN ('open', 'inProgress', 'waiting') AND updated_at <= \(since)))
                    AND (\(query.raisedFrom)::int8 IS NULL OR created_at >= \(query.raisedFrom))
                    AND (\(query.raisedBefore)::int8 IS NULL OR created_at < \(query.raisedBefore))
                ORDER BY created_at DESC LIMIT \(Int64(query.limit))
                """
            ).compactMap(Self.alert)
        }
    }

    public func alert(_ id: UUID) throws -> Alert? {
        try self.pool.withSession { session in
            try session.query("SELECT \(unescaped: Self.alertColumns) FROM alerts WHERE id = \(id)").first.flatMap(Self.alert)
        }
    }

    /// The alert's row is locked for the change, so two people (or hubs) acting at once
    /// see one another's change.
    public func change(_ id: UUID, _ change: CaseChange, by actor: AuditActor, at time: Int64) throws -> Result<Alert, AlertTransitionError> {
        try self.pool.transaction { session in
            guard let current = try session.query("SELECT \(unescaped: Self.alertColumns) FROM alerts WHERE id = \(id) FOR UPDATE").first.flatMap(Self.alert)
            else { return .failure(.notFound) }
            let updated: Alert
            switch change.applied(to: current, at: time) {
            case .success(let alert): updated = alert
            case .failure(let refusal): return .failure(refusal)
            }
            let closed = updated.status.isClosed
            try session.execute(
                """
                UPDATE alerts SET status = \(updated.status.rawValue), owner = \(updated.owner), first_action_at = \(updated.firstActionAt),
                    closed_at = \(updated.closedAt), updated_at = \(updated.updatedAt), customer_reached = \(updated.customerReached),
                    note = \(updated.note), remind_at = CASE WHEN \(closed) THEN NULL ELSE remind_at END,
                    overdue_at = CASE WHEN \(closed) THEN NULL ELSE overdue_at END
                WHERE id = \(id)
                """
            )
            let applied = AppliedCaseChange(change, before: current, after: updated, by: actor, at: time)
            try Self.audit(session, at: time, actor: actor, action: applied.event, object: id, from: applied.from, to: applied.to, note: applied.note)
            try PostgresAlertLedger.insert(applied.deliveries(of: updated, to: try Self.toldTargets(session, id), at: time), session)
            return .success(updated)
        }
    }

    private static let alertColumns = """
        id, rule, kind, status, level, site, subject, summary, record_id, created_at, captured_at, deadline_at, due_at, owner, \
        first_action_at, closed_at, updated_at, customer_reached, note
        """
    /// ``alertColumns`` with empty summaries and notes.
    private static let briefAlertColumns = """
        id, rule, kind, status, level, site, subject, '' AS summary, record_id, created_at, captured_at, deadline_at, due_at, owner, \
        first_action_at, closed_at, updated_at, customer_reached, '' AS note
        """
    /// How many columns ``alertColumns`` names.
    private static let alertColumnCount = 19

    /// The alert in the first columns of `row` (``alertColumns``); nil for a status this
    /// release does not know (as on SQLite).
    private static func alert(_ row: PostgresRow) throws -> Alert? {
        let columns = row.makeRandomAccess()
        func column<T: PostgresDecodable>(_ index: Int, _: T.Type) throws -> T { try columns[index].decode(T.self) }
        guard let status = Alert.Status(rawValue: try column(3, String.self)) else { return nil }
        return Alert(
            id: try column(0, UUID.self), rule: try column(1, String.self), kind: try column(2, String.self),
            status: status, level: Int(try column(4, Int32.self)),
            site: try column(5, String.self), subject: try column(6, String.self), summary: try column(7, String.self),
            recordID: try column(8, UUID?.self), createdAt: try column(9, Int64.self), capturedAt: try column(10, Int64.self),
            deadlineAt: try column(11, Int64?.self), dueAt: try column(12, Int64?.self), owner: try column(13, String.self),
            firstActionAt: try column(14, Int64?.self), closedAt: try column(15, Int64?.self), updatedAt: try column(16, Int64.self),
            customerReached: try column(17, Bool?.self), note: try column(18, String.self)
        )
    }
}

/// The alert ledger over an open PostgreSQL transaction. Window counts are read and written
/// at once, under the transaction-scoped advisory locks ``lockWindows(_:_:)`` took for the
/// commit (several hubs count into one window one at a time); alerts and their deliveries
/// wait in memory and go in with two statements at ``flush()``, before the commit.
final class PostgresAlertLedger: AlertLedger {
    let session: PostgresSession
    private var alerts: [NewAlert] = []
    private var deliveries: [NewDelivery] = []

    init(session: PostgresSession) {
        self.session = session
    }

    func countInWindow(
        rule: String, key: String, recordID: UUID, occurredAt: Int64, storedAt: Int64, negative: Bool, from: Int64, through: Int64
    ) throws -> (total: Int, negative: Int) {
        try self.session.execute(
            """
            INSERT INTO alert_window_events (rule, key, occurred_at, record_id, negative, stored_at)
            VALUES (\(rule), \(key), \(occurredAt), \(recordID), \(negative), \(storedAt)) ON CONFLICT DO NOTHING
            """
        )
        let row = try self.session.query(
            """
            SELECT COUNT(*), COALESCE(SUM(CASE WHEN negative THEN 1 ELSE 0 END), 0) FROM alert_window_events
            WHERE rule = \(rule) AND key = \(key) AND occurred_at > \(from) AND occurred_at <= \(through)
            """
        ).first
        guard let row else { return (0, 0) }
        let (total, negatives) = try row.decode((Int, Int).self)
        return (total, negatives)
    }

    /// Takes the transaction's advisory lock of each window, all in one statement and in the
    /// order of their lock keys, so two hubs committing ratings of the same windows in
    /// different orders wait for one another instead of deadlocking. Held until the commit.
    static func lockWindows(_ windows: [(rule: String, key: String)], _ session: PostgresSession) throws {
        guard !windows.isEmpty else { return }
        try session.execute(
            """
            SELECT pg_advisory_xact_lock(r, k) FROM (
                SELECT DISTINCT hashtext(rule) AS r, hashtext(key) AS k
                FROM UNNEST(\(windows.map(\.rule))::text[], \(windows.map(\.key))::text[]) AS t(rule, key)
                ORDER BY 1, 2
            ) AS locks
            """
        )
    }

    func isWindowFiring(rule: String, key: String) throws -> Bool {
        try self.session.query("SELECT firing FROM alert_windows WHERE rule = \(rule) AND key = \(key)").first?.decode(Bool.self) ?? false
    }

    func setWindowFiring(_ firing: Bool, rule: String, key: String) throws {
        try self.session.execute(
            """
            INSERT INTO alert_windows (rule, key, firing) VALUES (\(rule), \(key), \(firing))
            ON CONFLICT (rule, key) DO UPDATE SET firing = excluded.firing
            """
        )
    }

    func raise(_ alert: NewAlert, deliveries: [NewDelivery]) throws {
        self.alerts.append(alert)
        self.deliveries.append(contentsOf: deliveries)
    }

    /// Stands for "no record" in the array of record ids (PostgreSQL arrays hold NULLs, the
    /// driver's arrays do not).
    static let noRecord = UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))

    /// Writes the alerts held (those whose id exists are skipped, with their deliveries) and
    /// returns how many were new.
    func flush() throws -> Int {
        guard !self.alerts.isEmpty else { return 0 }
        let alerts = self.alerts
        self.alerts = []
        let inserted = try self.session.query(
            """
            INSERT INTO alerts (id, rule, kind, status, level, max_level, site, subject, summary, details, record_id, created_at,
                captured_at, deadline_at, due_at, remind_at, overdue_at, updated_at)
            SELECT id, rule, kind, 'open', 0, max_level, site, subject, summary, details, NULLIF(record_id, \(Self.noRecord)),
                created_at, captured_at, NULLIF(deadline_at, -1), NULLIF(due_at, -1), NULLIF(remind_at, -1), NULLIF(due_at, -1), created_at
            FROM UNNEST(\(alerts.map(\.id))::uuid[], \(alerts.map(\.rule))::text[], \(alerts.map(\.kind))::text[],
                \(alerts.map { Int32($0.maxLevel) })::int4[], \(alerts.map(\.site))::text[], \(alerts.map(\.subject))::text[],
                \(alerts.map(\.summary))::text[], \(alerts.map(\.details))::text[], \(alerts.map { $0.recordID ?? Self.noRecord })::uuid[],
                \(alerts.map(\.createdAt))::int8[], \(alerts.map(\.capturedAt))::int8[], \(alerts.map { $0.deadlineAt ?? -1 })::int8[],
                \(alerts.map { $0.dueAt ?? -1 })::int8[], \(alerts.map { $0.remindAt ?? -1 })::int8[])
                AS t(id, rule, kind, max_level, site, subject, summary, details, record_id, created_at, captured_at, deadline_at, due_at,
                    remind_at)
            ORDER BY id
            ON CONFLICT (id) DO NOTHING
            RETURNING id
            """
        )
        let new = Set(try inserted.map { try $0.decode(UUID.self) })
        try Self.insert(self.deliveries.filter { new.contains($0.alertID) }, self.session)
        self.deliveries = []
        return new.count
    }

    /// Queues `deliveries`, skipping those whose id exists.
    static func insert(_ deliveries: [NewDelivery], _ session: PostgresSession) throws {
        guard !deliveries.isEmpty else { return }
        try session.execute(
            """
            INSERT INTO alert_deliveries (id, alert_id, level, target, event, payload, state, next_attempt_at)
            SELECT id, alert_id, level, target, event, NULLIF(payload, ''), 'pending', due_at
            FROM UNNEST(\(deliveries.map(\.id))::uuid[], \(deliveries.map(\.alertID))::uuid[], \(deliveries.map { Int32($0.level) })::int4[],
                \(deliveries.map(\.target))::text[], \(deliveries.map(\.dueAt))::int8[], \(deliveries.map(\.event))::text[],
                \(deliveries.map { $0.payload ?? "" })::text[]) AS t(id, alert_id, level, target, due_at, event, payload)
            ON CONFLICT DO NOTHING
            """
        )
    }
}

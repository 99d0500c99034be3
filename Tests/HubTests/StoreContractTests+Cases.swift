import Foundation
import GRDB
import Hub
import TestSupport
import Testing
import Wire

/// Cases (every alert is one): their lists, follow-ups and webhooks, the same on each store.
extension StoreContractTests {
    static let caseRulesYAML = """
        targets:
          manager: {url: "http://127.0.0.1:9/manager"}
          regional: {url: "http://127.0.0.1:9/regional"}
        rules:
          - name: detractor
            scale: nps
            notify: [manager]
            acknowledgeWithin: 15m
            escalate: [regional]
            closeWithin: 2h
            remindBefore: 30m
        """

    @Test(arguments: TestStores.Kind.allCases)
    func aCaseIsRemindedAndMarkedOverdueOnceAndEveryChangeIsSentToWhoeverWasTold(_ kind: TestStores.Kind) throws {
        let opened = try TestStores.open(kind, alerts: try AlertRules.parse(yaml: Self.caseRulesYAML, path: "rules.yaml"))
        defer { opened.remove() }
        let store = opened.store
        let detractors = [Self.detractor(1), Self.detractor(2)]
        _ = try store.commit([Self.batch(1, detractors)])
        let alerts = try store.alerts(AlertQuery(scope: .any, limit: 10))
        let first = try #require(alerts.first { $0.recordID == detractors[0].id })
        let second = try #require(alerts.first { $0.recordID == detractors[1].id })
        let due = try #require(first.dueAt)
        #expect(due == first.createdAt + 7_200_000 && first.updatedAt == first.createdAt && first.owner.isEmpty)
        let anna = AuditActor(tokenID: UUID(), name: "anna")

        // The second is closed at once: it is never followed up.
        _ = try store.change(second.id, CaseChange(.status(.inProgress)), by: anna, at: first.createdAt + 1)
        _ = try store.change(second.id, CaseChange(.status(.cancelled), note: "a test rating"), by: anna, at: first.createdAt + 2)

        #expect(try store.followUpCases(now: due - 1_800_001).isEmpty)
        #expect(try store.followUpCases(now: due - 1_800_000).map(\.event) == [CaseEvent.reminder])
        #expect(try store.followUpCases(now: due - 1_000_000).isEmpty, "a reminder once")
        let assigned = try store.change(first.id, CaseChange(.assign("Anna Petrova"), note: "hers"), by: anna, at: due - 600_000)
        #expect(try assigned.get().owner == "Anna Petrova" && assigned.get().status == .open && assigned.get().firstActionAt == nil)

        #expect(try store.alerts(AlertQuery(scope: .any, limit: 10)).filter { $0.isOverdue(at: due) }.map(\.id) == [first.id])
        var overdue = AlertQuery(scope: .any, limit: 10)
        overdue.overdueAt = due
        #expect(try store.alerts(overdue).map(\.id) == [first.id], "past its due time (the first-action deadline passed long before)")
        let followed = try store.followUpCases(now: due)
        #expect(followed.map(\.id) == [first.id] && followed.map(\.event) == [CaseEvent.overdue])
        #expect(try store.followUpCases(now: due + 3_600_000).isEmpty, "an overdue notice once")
        #expect(try store.alert(first.id)?.level == 1, "overdue with a level left: escalated")

        var mine = AlertQuery(scope: .any, limit: 10)
        mine.owner = "Anna Petrova"
        #expect(try store.alerts(mine).map(\.id) == [first.id])
        var stuck = AlertQuery(scope: .any, limit: 10)
        stuck.unchangedSince = due - 600_001
        #expect(try store.alerts(stuck).isEmpty, "changed at due - 10 min")
        stuck.unchangedSince = due - 600_000
        #expect(try store.alerts(stuck).map(\.id) == [first.id], "the cancelled one is not stuck")
        var raised = AlertQuery(scope: .any, limit: 10)
        raised.raisedBefore = first.createdAt
        #expect(try store.alerts(raised).isEmpty)
        raised.raisedBefore = nil
        raised.raisedFrom = first.createdAt
        raised.statuses = [.cancelled, .waiting]
        #expect(try store.alerts(raised).map(\.id) == [second.id])

        // What goes out: each change and follow-up to every target told of the case; the
        // raised alert of the case cancelled before it went is dropped, its changes are not.
        var sent: [String] = []
        for delivery in try store.dueDeliveries(now: due + 1, limit: 100, excluding: []) {
            let which = delivery.alertID == first.id ? "first" : "second"
            sent.append("\(which) \(delivery.event) \(delivery.target)")
            if delivery.event.hasPrefix("case.") {
                let payload = try #require(delivery.payload.flatMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] })
                #expect(payload["event"] as? String == delivery.event)
                if delivery.event == "case.assigned" { #expect(payload["owner"] as? String == "Anna Petrova" && payload["by"] as? String == "anna") }
                if delivery.event == CaseEvent.overdue { #expect(payload["level"] as? Int == 1 && payload["by"] == nil) }
            }
        }
        #expect(
            sent.sorted() == [
                "first alert.raised manager", "first case.assigned manager", "first case.overdue manager", "first case.overdue regional",
                "first case.reminder manager", "second case.cancelled manager", "second case.inProgress manager",
            ]
        )
    }

    @Test(arguments: TestStores.Kind.allCases)
    func aCaseFollowsItsLifeAndNothingLeavesAClosedOne(_ kind: TestStores.Kind) throws {
        let opened = try TestStores.open(kind, alerts: try AlertRules.parse(yaml: Self.caseRulesYAML, path: "rules.yaml"))
        defer { opened.remove() }
        let store = opened.store
        _ = try store.commit([Self.batch(1, [Self.detractor(1), Self.detractor(2)])])
        let both = try store.alerts(AlertQuery(scope: .any, limit: 2))
        let alert = try #require(both.first { $0.recordID == Self.detractor(1).id })
        let late = try #require(both.first { $0.recordID == Self.detractor(2).id })
        let due = try #require(alert.dueAt)
        // A hub down past the due time: the overdue notice, not a late "due soon".
        #expect(try store.followUpCases(now: due).map(\.event) == [CaseEvent.overdue, CaseEvent.overdue])
        #expect(try store.followUpCases(now: due + 1).isEmpty, "the reminder not sent late, and not again")
        _ = try store.change(late.id, CaseChange(.status(.cancelled), note: "a test"), by: .commandLine, at: due + 2)
        let actor = AuditActor.commandLine
        func change(_ kind: CaseChange.Kind, note: String = "", reached: Bool? = nil, at time: Int64) throws -> Result<Alert, AlertTransitionError> {
            try store.change(alert.id, CaseChange(kind, note: note, customerReached: reached), by: actor, at: time)
        }
        #expect(try change(.status(.open), at: 1) == .failure(.notAllowed(from: .open, action: "reopened")))
        #expect(try change(.status(.waiting), note: "  asked billing  ", at: 10).get().firstActionAt == 10)
        #expect(try change(.status(.waiting), at: 11) == .failure(.notAllowed(from: .waiting, action: "set waiting")))
        #expect(try change(.status(.inProgress), at: 12).get().firstActionAt == 10, "the first action stays the first")
        #expect(try change(.status(.waiting), at: 13).get().status == .waiting)
        #expect(try change(.assign(String(repeating: "x", count: 201)), at: 14) == .failure(.invalidOwner))
        #expect(try change(.status(.cancelled), note: " ", at: 15) == .failure(.noteRequired(.cancelled)))
        let completed = try change(.status(.completed), note: "refund issued", reached: false, at: 16).get()
        #expect(completed.closedAt == 16 && completed.customerReached == false && completed.note == "asked billing\nrefund issued")
        for kind in [CaseChange.Kind.status(.inProgress), .status(.waiting), .status(.cancelled), .assign("anna")] {
            guard case .failure(.notAllowed(from: .completed, _)) = try change(kind, note: "x", at: 17) else {
                Issue.record("\(kind) changed a completed case")
                continue
            }
        }
        #expect(try store.alert(alert.id) == completed)
        // Closed: its pending raise, reminder-less overdue notices and escalation are dropped;
        // the changes go.
        let sent = try store.dueDeliveries(now: due + 10, limit: 100, excluding: []).filter { $0.alertID == alert.id }.map(\.event)
        #expect(
            sent.sorted() == ["case.completed", "case.completed", "case.inProgress", "case.inProgress", "case.waiting", "case.waiting", "case.waiting", "case.waiting"],
            "each change to both targets told (the overdue notice told the regional manager)"
        )
        #expect(try store.auditTrail(object: alert.id, limit: 10).map(\.action).reversed() == [
            "case.waiting", "case.inProgress", "case.waiting", "case.completed",
        ])
    }
}

extension StoreContractTests {
    @Test(arguments: TestStores.Kind.allCases)
    func alertsOfTheReleaseBeforeCasesBecomeCases(_ kind: TestStores.Kind) throws {
        let opened = try TestStores.open(kind, alerts: try AlertRules.parse(yaml: Self.caseRulesYAML, path: "rules.yaml"))
        defer { opened.remove() }
        _ = try opened.store.commit([Self.batch(1, (1...4).map(Self.detractor))])
        let alerts = try opened.store.alerts(AlertQuery(scope: .any, limit: 10)).sorted { $0.id.uuidString < $1.id.uuidString }
        let (open, started, done, dropped) = (alerts[0], alerts[1], alerts[2], alerts[3])
        _ = try opened.store.change(started.id, CaseChange(.status(.inProgress)), by: .commandLine, at: 100)
        _ = try opened.store.change(done.id, CaseChange(.status(.inProgress)), by: .commandLine, at: 200)
        _ = try opened.store.change(done.id, CaseChange(.status(.completed), note: "called", customerReached: true), by: .commandLine, at: 300)
        _ = try opened.store.change(dropped.id, CaseChange(.status(.cancelled), note: "a test"), by: .commandLine, at: 50)
        // The open one escalates: a pending level-1 delivery.
        #expect(try opened.store.escalateOverdue(now: try #require(open.deadlineAt)).map(\.id) == [open.id])
        // A store of the release before cases: its columns, statuses and migration record.
        switch kind {
        case .sqlite:
            let path = try #require(opened.folder).appendingPathComponent("feedback.sqlite").path
            let database = try DatabaseQueue(path: path)
            try database.write { db in
                try db.execute(
                    sql: """
                        DROP INDEX alerts_by_created; DROP INDEX alerts_reminders; DROP INDEX alerts_overdue; DROP INDEX alert_deliveries_by_alert;
                        ALTER TABLE alerts DROP COLUMN owner; ALTER TABLE alerts DROP COLUMN due_at; ALTER TABLE alerts DROP COLUMN remind_at;
                        ALTER TABLE alerts DROP COLUMN overdue_at; ALTER TABLE alerts DROP COLUMN updated_at;
                        ALTER TABLE alerts DROP COLUMN customer_reached; ALTER TABLE alerts RENAME COLUMN first_action_at TO acknowledged_at;
                        UPDATE alerts SET status = CASE status WHEN 'inProgress' THEN 'acknowledged' WHEN 'completed' THEN 'resolved' ELSE status END;
                        UPDATE alerts SET acknowledged_at = NULL WHERE status = 'cancelled';
                        DELETE FROM alert_deliveries WHERE event LIKE 'case.%';
                        ALTER TABLE alert_deliveries DROP COLUMN event; ALTER TABLE alert_deliveries DROP COLUMN payload;
                        DELETE FROM grdb_migrations WHERE identifier = 'v8-cases'
                        """
                )
            }
            try database.close()
        case .postgres:
            let settings = try #require(opened.settings)
            for statement in [
                "DROP INDEX alerts_by_created", "DROP INDEX alerts_reminders", "DROP INDEX alerts_overdue", "DROP INDEX alert_deliveries_by_alert",
                "ALTER TABLE alerts DROP COLUMN owner, DROP COLUMN due_at, DROP COLUMN remind_at, DROP COLUMN overdue_at, DROP COLUMN updated_at, DROP COLUMN customer_reached",
                "ALTER TABLE alerts RENAME COLUMN first_action_at TO acknowledged_at",
                "UPDATE alerts SET status = CASE status WHEN 'inProgress' THEN 'acknowledged' WHEN 'completed' THEN 'resolved' ELSE status END",
                "UPDATE alerts SET acknowledged_at = NULL WHERE status = 'cancelled'",
                "DELETE FROM alert_deliveries WHERE event LIKE 'case.%'",
                "ALTER TABLE alert_deliveries DROP COLUMN event, DROP COLUMN payload",
                "ALTER TABLE alert_deliveries ADD CONSTRAINT alert_deliveries_alert_id_level_target_key UNIQUE (alert_id, level, target)",
                "DELETE FROM schema_migrations WHERE version = 'v4-cases'",
            ] {
                _ = try TestStores.sql(settings, statement)
            }
        }
        let reopened = try TestStores.reopen(opened)
        #expect(try reopened.alert(open.id)?.status == .open && reopened.alert(open.id)?.updatedAt == open.createdAt)
        let migratedStarted = try #require(try reopened.alert(started.id))
        #expect(migratedStarted.status == .inProgress && migratedStarted.firstActionAt == 100 && migratedStarted.updatedAt == 100)
        let migratedDone = try #require(try reopened.alert(done.id))
        #expect(migratedDone.status == .completed && migratedDone.closedAt == 300 && migratedDone.updatedAt == 300 && migratedDone.owner.isEmpty)
        let cancelled = try #require(try reopened.alert(dropped.id))
        #expect(cancelled.status == .cancelled && cancelled.firstActionAt == 50, "closed straight from open: that was its first action")
        let events = try reopened.dueDeliveries(now: 4_000_000_000_000, limit: 10, excluding: []).map(\.event)
        #expect(events.sorted() == ["alert.escalated", "alert.raised", "alert.raised"], "the closed cases' pending alerts are dropped")
        #expect(try reopened.change(started.id, CaseChange(.assign("anna")), by: .commandLine, at: 400).get().owner == "anna")
    }
}

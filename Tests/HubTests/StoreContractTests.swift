import Foundation
import Hub
import TestSupport
import Testing
import Wire

/// What every store promises (the `FeedbackStore` protocols), one suite run on each store:
/// the SQLite file and a real PostgreSQL server.
@Suite(.serialized)
struct StoreContractTests {
    static let rulesYAML = """
        targets:
          manager: {url: "http://127.0.0.1:9/manager"}
          regional: {url: "http://127.0.0.1:9/regional"}
          ops: {url: "http://127.0.0.1:9/ops"}
        rules:
          - name: detractor
            scale: nps
            notify: [manager]
            acknowledgeWithin: 15m
            escalate: [regional]
          - name: wave
            scale: smiley
            window: {per: site, share: 40, minResponses: 5, minutes: 15}
            notify: [ops]
          - name: silent
            silentFor: 30m
            notify: [ops]
        """

    static func rules() throws -> AlertRules {
        try AlertRules.parse(yaml: Self.rulesYAML, path: "rules.yaml")
    }

    static func batch(_ sequence: UInt64, _ records: [FeedbackRecord], origin: UUID = Samples.agentID) -> IncomingBatch {
        IncomingBatch(key: BatchKey(origin: origin, sequence: sequence), records: records, receivedAt: Samples.baseTime + Int64(sequence))
    }

    /// NPS ratings 7–10: no alert.
    static func calm(_ index: Int) -> FeedbackRecord {
        var record = Samples.popupRecord(index)
        record.score = UInt8(7 + index % 4)
        return record
    }

    /// An NPS detractor (score 3).
    static func detractor(_ index: Int) -> FeedbackRecord {
        var record = Samples.popupRecord(index)
        record.score = 3
        return record
    }

    @Test(arguments: TestStores.Kind.allCases)
    func aBatchIsStoredOnceAndARecordUnderOneIdOnce(_ kind: TestStores.Kind) throws {
        let opened = try TestStores.open(kind)
        defer { opened.remove() }
        let store = opened.store
        let first = try store.commit([Self.batch(1, (0..<5).map(Self.calm)), Self.batch(2, (5..<8).map(Self.calm))])
        #expect(first == [.stored(newRecords: 5), .stored(newRecords: 3)])
        // The same batch again, a new batch repeating two stored ids, and one batch twice in one transaction.
        let second = try store.commit([
            Self.batch(1, (0..<5).map(Self.calm)), Self.batch(3, (6..<10).map(Self.calm)), Self.batch(4, [Self.calm(20)]),
            Self.batch(4, [Self.calm(20)]),
        ])
        #expect(second == [.duplicate, .stored(newRecords: 2), .stored(newRecords: 1), .duplicate])
        #expect(try store.recordCount() == 11)
        #expect(try store.batchCount() == 4)
        #expect(try store.isCommitted(BatchKey(origin: Samples.agentID, sequence: 3)))
        #expect(try !store.isCommitted(BatchKey(origin: Samples.agentID, sequence: 5)))
        #expect(try store.committedSequence(origin: Samples.agentID) == 4)
        #expect(try store.committedSequence(origin: UUID()) == 0)
        let summary = try #require(try store.siteSummaries().first)
        #expect(summary.site == "web-eu" && summary.responses == 11 && summary.npsResponses == 11 && summary.detractors == 0)
    }

    @Test(arguments: TestStores.Kind.allCases)
    func aDetractorAlertsOnceWhicheverBatchBringsIt(_ kind: TestStores.Kind) throws {
        let opened = try TestStores.open(kind, alerts: try Self.rules())
        defer { opened.remove() }
        let store = opened.store
        _ = try store.commit([Self.batch(1, [Self.detractor(1), Self.calm(2)])])
        // Re-sent in another batch (a resealed spool), and the same batch again: no new alert.
        _ = try store.commit([Self.batch(2, [Self.detractor(1)]), Self.batch(1, [Self.detractor(1), Self.calm(2)])])
        let alerts = try store.alerts(status: nil, site: nil, within: .any, overdueAt: nil, limit: 100)
        #expect(alerts.count == 1)
        let alert = try #require(alerts.first)
        #expect(alert.rule == "detractor" && alert.recordID == Samples.recordID(1) && alert.status == .open && alert.site == "web-eu")
        let due = try store.dueDeliveries(now: Samples.baseTime + 1_000_000_000_000, limit: 10, excluding: [])
        #expect(due.map(\.target) == ["manager"])
        #expect(try store.alert(alert.id)?.summary == alert.summary)
    }

    @Test(arguments: TestStores.Kind.allCases)
    func deliveriesRetryDieAndAreDone(_ kind: TestStores.Kind) throws {
        let opened = try TestStores.open(kind, alerts: try Self.rules())
        defer { opened.remove() }
        let store = opened.store
        _ = try store.commit([Self.batch(1, [Self.detractor(1), Self.detractor(2)])])
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let due = try store.dueDeliveries(now: now, limit: 10, excluding: [])
        #expect(due.count == 2)
        try store.deliveryDone(due[0].id, at: now)
        try store.deliveryFailed(due[1].id, error: "HTTP 503", retryAt: now + 60_000)
        // Not due again before its retry time; due after, with its attempt counted.
        #expect(try store.dueDeliveries(now: now + 1, limit: 10, excluding: []).isEmpty)
        let retry = try store.dueDeliveries(now: now + 60_001, limit: 10, excluding: [])
        #expect(retry.map(\.id) == [due[1].id] && retry.first?.attempts == 1)
        try store.deliveryFailed(due[1].id, error: "HTTP 503", retryAt: nil)
        #expect(try store.deliveryCounts() == ["delivered": 1, "dead": 1])
    }

    /// A backlog of overdue alerts (after an outage, say) is escalated whole by one sweep,
    /// each once, though PostgreSQL takes them a hundred per transaction.
    @Test(arguments: TestStores.Kind.allCases)
    func aBacklogOfOverdueAlertsEscalatesWholeAndOnce(_ kind: TestStores.Kind) throws {
        let opened = try TestStores.open(kind, alerts: try Self.rules())
        defer { opened.remove() }
        let store = opened.store
        _ = try store.commit([Self.batch(1, (1...250).map(Self.detractor))])
        let alerts = try store.alerts(status: .open, site: nil, within: .any, overdueAt: nil, limit: 1_000)
        #expect(alerts.count == 250)
        let latest = try #require(alerts.compactMap(\.deadlineAt).max())
        let escalated = try store.escalateOverdue(now: latest)
        #expect(escalated.count == 250 && Set(escalated.map(\.id)) == Set(alerts.map(\.id)))
        #expect(try store.escalateOverdue(now: latest + 3_600_000).isEmpty)
    }

    @Test(arguments: TestStores.Kind.allCases)
    func anOverdueAlertEscalatesOnceAndItsLifeIsChecked(_ kind: TestStores.Kind) throws {
        let opened = try TestStores.open(kind, alerts: try Self.rules())
        defer { opened.remove() }
        let store = opened.store
        _ = try store.commit([Self.batch(1, [Self.detractor(1)])])
        let alert = try #require(try store.alerts(status: .open, site: nil, within: .any, overdueAt: nil, limit: 10).first)
        let deadline = try #require(alert.deadlineAt)
        #expect(try store.escalateOverdue(now: deadline - 1).isEmpty)
        let escalated = try store.escalateOverdue(now: deadline)
        #expect(escalated.map(\.level) == [1] && escalated.first?.id == alert.id)
        // One level only: nothing left to escalate to.
        #expect(try store.escalateOverdue(now: deadline + 3_600_000).isEmpty)
        let targets = try store.dueDeliveries(now: deadline + 1, limit: 10, excluding: []).map(\.target).sorted()
        #expect(targets == ["manager", "regional"])
        #expect(try store.alerts(status: nil, site: nil, within: .any, overdueAt: deadline + 3_600_000, limit: 10).count == 1)
        guard case .success(let started) = try store.change(alert.id, CaseChange(.status(.inProgress), note: "calling"), by: .commandLine, at: deadline + 2)
        else {
            Issue.record("starting an open case was refused")
            return
        }
        #expect(started.status == .inProgress && started.firstActionAt == deadline + 2 && started.updatedAt == deadline + 2)
        #expect(
            try store.change(alert.id, CaseChange(.status(.inProgress)), by: .commandLine, at: deadline + 3)
                == .failure(.notAllowed(from: .inProgress, action: "started"))
        )
        #expect(try store.change(alert.id, CaseChange(.status(.completed), note: "called back"), by: .commandLine, at: deadline + 4) == .failure(.customerReachedRequired))
        #expect(try store.change(alert.id, CaseChange(.status(.completed), customerReached: true), by: .commandLine, at: deadline + 4) == .failure(.noteRequired(.completed)))
        guard
            case .success(let completed) = try store.change(
                alert.id, CaseChange(.status(.completed), note: "called back", customerReached: true), by: .commandLine, at: deadline + 4
            )
        else {
            Issue.record("completing a case in progress was refused")
            return
        }
        #expect(completed.status == .completed && completed.note == "calling\ncalled back" && completed.closedAt == deadline + 4)
        #expect(completed.customerReached == true && completed.firstActionAt == deadline + 2)
        #expect(try store.alert(alert.id) == completed)
        #expect(try store.change(alert.id, CaseChange(.assign("anna")), by: .commandLine, at: deadline + 5) == .failure(.notAllowed(from: .completed, action: "assigned")))
        #expect(try store.change(UUID(), CaseChange(.status(.cancelled), note: "x"), by: .commandLine, at: 0) == .failure(.notFound))
    }

    @Test(arguments: TestStores.Kind.allCases)
    func aWindowRuleFiresOnceOnCrossingAndMisuseNeverCounts(_ kind: TestStores.Kind) throws {
        let opened = try TestStores.open(kind, alerts: try Self.rules())
        defer { opened.remove() }
        let store = opened.store
        func kiosk(_ index: Int, _ score: UInt8, misuse: Bool = false) -> FeedbackRecord {
            var record = Samples.kioskRecord(index)
            record.score = score
            if misuse { record.attributes[FeedbackRecord.misuseAttribute] = "true" }
            return record
        }
        // Four ratings, two red, and five hammered red presses that do not count.
        _ = try store.commit([Self.batch(1, [kiosk(0, 4), kiosk(1, 1), kiosk(2, 4), kiosk(3, 1)] + (10..<15).map { kiosk($0, 1, misuse: true) })])
        #expect(try store.alerts(status: nil, site: nil, within: .any, overdueAt: nil, limit: 10).isEmpty)
        // The fifth counted rating is red: 3 of 5 (60 % ≥ 40 %) fires; more red while over: no new alert.
        _ = try store.commit([Self.batch(2, [kiosk(4, 2)]), Self.batch(3, (5..<9).map { kiosk($0, 1) })])
        let alerts = try store.alerts(status: nil, site: nil, within: .any, overdueAt: nil, limit: 10)
        #expect(alerts.count == 1 && alerts.first?.rule == "wave" && alerts.first?.kind == "window")
        #expect(alerts.first?.summary.contains("3 of 5") == true)
    }

    @Test(arguments: TestStores.Kind.allCases)
    func aSilentNodeAlertsOncePerSilence(_ kind: TestStores.Kind) throws {
        let opened = try TestStores.open(kind, alerts: try Self.rules())
        defer { opened.remove() }
        let store = opened.store
        let node = RegisteredNode(
            nodeID: Samples.agentID, publicKey: Array(Samples.agentKey.publicKey.rawRepresentation), keyID: KeyID(Samples.agentKey.publicKey),
            role: .agent, sites: .any, revoked: false, createdAt: Samples.baseTime
        )
        try store.addNode(node)
        _ = try store.commit([Self.batch(1, [Self.calm(1)])])
        let seen = Samples.baseTime + 1
        let fleet = try store.fleet()
        #expect(fleet.count == 1 && fleet.first?.lastSeenAt == seen)
        #expect(try store.raiseSilenceAlerts(fleet: fleet, now: seen + 29 * 60_000) == 0)
        #expect(try store.raiseSilenceAlerts(fleet: fleet, now: seen + 31 * 60_000) == 1)
        #expect(try store.raiseSilenceAlerts(fleet: fleet, now: seen + 45 * 60_000) == 0)
        #expect(try store.alerts(status: nil, site: nil, within: .any, overdueAt: nil, limit: 10).first?.kind == "silent")
    }

    @Test(arguments: TestStores.Kind.allCases)
    func theRegistryAndItsTokens(_ kind: TestStores.Kind) throws {
        let opened = try TestStores.open(kind)
        defer { opened.remove() }
        let store = opened.store
        let key = Array(Samples.agentKey.publicKey.rawRepresentation)
        let node = RegisteredNode(
            nodeID: Samples.agentID, publicKey: key, keyID: KeyID(Samples.agentKey.publicKey), role: .agent,
            sites: try SiteScope(["branch-*"]), revoked: false, createdAt: 5
        )
        try store.addNode(node)
        #expect(throws: StoreError.self) { try store.addNode(node) }
        #expect(try store.nodes() == [node])
        #expect(try store.setSites(try SiteScope(["branch-042"]), of: node.nodeID))
        #expect(try !store.setSites(.any, of: UUID()))
        #expect(try store.revokeNode(node.nodeID, at: 9))
        #expect(try !store.revokeNode(UUID(), at: 9))
        #expect(try store.nodes().first?.revoked == true && store.nodes().first?.sites == SiteScope(["branch-042"]))

        let hash = Array(repeating: UInt8(7), count: 32)
        try store.addEnrollmentToken(hash: hash, sites: try SiteScope(["web-eu"]), role: .agent, createdAt: 0, expiresAt: 100)
        let newcomer = RegisteredNode(
            nodeID: UUID(), publicKey: Array(Samples.otherKey.publicKey.rawRepresentation), keyID: KeyID(Samples.otherKey.publicKey),
            role: .agent, sites: .any, revoked: false, createdAt: 0
        )
        var asRelay = newcomer
        asRelay.role = .relay
        #expect(try store.redeemEnrollmentToken(hash: hash, node: asRelay, at: 10) == .failure(.relayNotAllowed))
        #expect(try store.redeemEnrollmentToken(hash: Array(repeating: 8, count: 32), node: newcomer, at: 10) == .failure(.unknownToken))
        var taken = newcomer
        taken.nodeID = Samples.agentID
        #expect(try store.redeemEnrollmentToken(hash: hash, node: taken, at: 10) == .failure(.nodeTaken))
        guard case .success(let enrolled) = try store.redeemEnrollmentToken(hash: hash, node: newcomer, at: 10) else {
            Issue.record("a valid token was refused")
            return
        }
        #expect(try enrolled.sites == SiteScope(["web-eu"]) && enrolled.createdAt == 10)
        // The same node retrying (its answer lost) is enrolled again; anyone else is refused.
        #expect(try store.redeemEnrollmentToken(hash: hash, node: newcomer, at: 11) == .success(enrolled))
        var other = newcomer
        other.nodeID = UUID()
        #expect(try store.redeemEnrollmentToken(hash: hash, node: other, at: 11) == .failure(.alreadyUsed))
        let late = Array(repeating: UInt8(9), count: 32)
        try store.addEnrollmentToken(hash: late, sites: .any, role: .relay, createdAt: 0, expiresAt: 100)
        #expect(try store.redeemEnrollmentToken(hash: late, node: other, at: 101) == .failure(.expired))
    }

    @Test(arguments: TestStores.Kind.allCases)
    func aNodesNewestStatusIsKept(_ kind: TestStores.Kind) throws {
        let opened = try TestStores.open(kind)
        defer { opened.remove() }
        let store = opened.store
        let node = RegisteredNode(
            nodeID: Samples.agentID, publicKey: Array(Samples.agentKey.publicKey.rawRepresentation), keyID: KeyID(Samples.agentKey.publicKey),
            role: .agent, sites: .any, revoked: false, createdAt: 1
        )
        try store.addNode(node)
        try store.keep([KeptStatus(nodeID: node.nodeID, receivedAt: 100, sentAt: 50, via: nil, body: "{\"a\":1}")])
        try store.keep([KeptStatus(nodeID: node.nodeID, receivedAt: 200, sentAt: 40, via: Samples.relayID, body: "{\"a\":0}")])
        let status = try #require(try store.fleet().first?.status)
        #expect(status.sentAt == 50 && status.body == "{\"a\":1}" && status.via == nil)
        try store.keep([KeptStatus(nodeID: node.nodeID, receivedAt: 300, sentAt: 60, via: Samples.relayID, body: "{\"a\":2}")])
        let newer = try #require(try store.fleet().first)
        #expect(newer.status?.via == Samples.relayID && newer.lastSeenAt == 300)
    }

    @Test(arguments: TestStores.Kind.allCases)
    func theStoreAnswersItsPing(_ kind: TestStores.Kind) throws {
        let opened = try TestStores.open(kind)
        defer { opened.remove() }
        try opened.store.ping()
        try opened.store.maintain(now: Int64(Date().timeIntervalSince1970 * 1000))
        #expect(opened.store.kind == kind.rawValue)
    }
}

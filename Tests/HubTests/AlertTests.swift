import Agent
import Crypto
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Hub
import NIOConcurrencyHelpers
import TestSupport
import Testing
import Wire

/// Alerts end to end: a real hub with a rules file, batches over real TLS, webhooks to a
/// real HTTP receiver on loopback, the alert API over HTTP.
@Suite struct AlertTests {
    static let secret = Array(UInt8(1)...UInt8(24))

    /// Hub, receiver, an agent identity registered with the hub, and a settable clock offset.
    struct Setup {
        let hub: HubHarness
        let receiver: WebhookReceiver
        let identity: AgentIdentity
        let offset: NIOLockedValueBox<Int64>
        /// A manager's token for every site.
        let token: String

        static func start(extraRules: String = "", adjust: (inout HubConfiguration) -> Void = { _ in }) async throws -> Setup {
            let receiver = try await WebhookReceiver.start()
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("hub-\(UUID())")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let rules = folder.appendingPathComponent("alerts.yaml").path
            let secret = "whsec_" + Data(AlertTests.secret).base64EncodedString()
            try """
            targets:
              manager-042: {url: "\(receiver.url("manager-042"))", secret: "\(secret)"}
              manager-web: {url: "\(receiver.url("manager-web"))", secret: "\(secret)"}
              regional: {url: "\(receiver.url("regional"))", secret: "\(secret)"}
              ops-slack: {kind: slack, url: "\(receiver.url("ops-slack"))"}
            routes:
              - {site: branch-042, target: manager-042}
              - {site: web-eu, target: manager-web}
            rules:
              - name: detractor
                scale: nps
                acknowledgeWithin: 15m
                escalate: [regional]
                closeWithin: 2h
                remindBefore: 30m
              - name: kiosk-wave
                scale: smiley
                sources: [kiosk]
                window: {per: site, share: 40, minResponses: 5, minutes: 15}
                notify: [route, ops-slack]
            \(extraRules)
            delivery: {firstRetry: 50ms, maxRetry: 200ms, timeout: 5s}
            """.write(toFile: rules, atomically: true, encoding: .utf8)
            let offset = NIOLockedValueBox<Int64>(0)
            let hub = try await HubHarness.start(
                folder: folder,
                adjust: {
                    $0.alerts = rules
                    adjust(&$0)
                },
                clock: { Int64(Date().timeIntervalSince1970 * 1000) + offset.withLockedValue { $0 } }
            )
            let identity = AgentIdentity.generate()
            try hub.register(identity)
            let token = try OperationsClient.token(in: hub.hub.store, role: .manager).secret
            return Setup(hub: hub, receiver: receiver, identity: identity, offset: offset, token: token)
        }

        func stop() async throws {
            try await self.hub.stopAndRemove()
            try await self.receiver.stop()
        }

        /// Seals `records` as batch `sequence` and returns the hub's answer.
        func send(_ records: [FeedbackRecord], sequence: UInt64) async throws -> BatchResult {
            let connection = try await self.hub.connect(self.identity)
            defer { Task { await connection.close() } }
            let batch = try BatchSealer(origin: self.identity.nodeID, signingKey: self.identity.signingKey).seal(records, sequence: sequence)
            return try await connection.send(batch).get()
        }

        func record(_ index: Int, score: UInt8, site: String = "web-eu", source: FeedbackRecord.Source = .popup) -> FeedbackRecord {
            var record = Samples.popupRecord(index, origin: self.identity.nodeID)
            record.score = score
            record.site = site
            record.source = source
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            record.occurredAt = now
            record.capturedAt = now
            return record
        }

        func isAcknowledged(_ result: BatchResult) -> Bool {
            if case .acknowledged = result { return true }
            return false
        }

        func api(_ method: String, _ path: String, body: String? = nil) async throws -> (status: Int, json: [String: Any]) {
            let answer = try await OperationsClient(self.hub.hub).call(method, path, token: self.token, body: body)
            return (answer.status, answer.json)
        }
    }

    private func isAcknowledged(_ result: BatchResult) -> Bool {
        if case .acknowledged = result { return true }
        return false
    }

    @Test func aDetractorRaisesOneSignedWebhookToItsSiteManagerEvenWhenItsBatchIsSentAgain() async throws {
        let setup = try await Setup.start()
        let detractor = setup.record(3, score: 3)
        let batch = [detractor, setup.record(4, score: 9), setup.record(5, score: 10)]
        #expect(self.isAcknowledged(try await setup.send(batch, sequence: 1)))
        #expect(self.isAcknowledged(try await setup.send(batch, sequence: 1)), "the same batch again: a duplicate")
        #expect(self.isAcknowledged(try await setup.send([detractor], sequence: 2)), "the same record in a new batch")

        #expect(await eventually { setup.receiver.received("manager-web").count == 1 })
        try await Task.sleep(for: .milliseconds(600))
        let requests = setup.receiver.received()
        #expect(requests.count == 1, "one alert, to the manager of web-eu only")
        let request = try #require(requests.first)
        #expect(request.name == "manager-web")
        let id = try #require(request.headers["webhook-id"])
        let timestamp = try #require(request.headers["webhook-timestamp"])
        let mac = HMAC<SHA256>.authenticationCode(
            for: Data("\(id).\(timestamp).\(request.body)".utf8), using: SymmetricKey(data: AlertTests.secret)
        )
        #expect(request.headers["webhook-signature"] == "v1," + Data(mac).base64EncodedString())
        #expect(request.json["type"] as? String == "alert.raised")
        let alert = try #require(request.json["alert"] as? [String: Any])
        #expect(alert["recordId"] as? String == detractor.id.uuidString.lowercased())
        #expect(alert["score"] as? Int == 3)
        #expect(alert["site"] as? String == "web-eu")
        #expect(alert["rule"] as? String == "detractor")
        try await setup.stop()
    }

    @Test func aReceiverThatFailsThreeTimesGetsTheAlertOnceWithTheSameID() async throws {
        let setup = try await Setup.start()
        setup.receiver.fail("manager-042", times: 3)
        #expect(self.isAcknowledged(try await setup.send([setup.record(1, score: 0, site: "branch-042")], sequence: 1)))
        #expect(await eventually { setup.receiver.received("manager-042").contains { $0.status == 204 } })
        try await Task.sleep(for: .milliseconds(600))
        let requests = setup.receiver.received("manager-042")
        #expect(requests.map(\.status) == [500, 500, 500, 204])
        #expect(Set(requests.compactMap { $0.headers["webhook-id"] }).count == 1, "retries carry the same webhook-id")
        #expect(try setup.hub.hub.store.deliveryCounts() == ["delivered": 1])
        try await setup.stop()
    }

    @Test func anUnacknowledgedAlertEscalatesOnTimeAndItsCaseIsWorkedRemindedAndClosed() async throws {
        let setup = try await Setup.start()
        #expect(self.isAcknowledged(try await setup.send([setup.record(1, score: 2)], sequence: 1)))
        #expect(await eventually { setup.receiver.received("manager-web").count == 1 })
        var (status, json) = try await setup.api("GET", "/v1/alerts?status=open")
        let alerts = try #require(json["alerts"] as? [[String: Any]])
        #expect(status == 200 && alerts.count == 1)
        let id = try #require(alerts.first?["id"] as? String)
        #expect(alerts.first?["overdue"] as? Bool == false)
        #expect(setup.receiver.received("regional").isEmpty, "not before its deadline")

        // Sixteen minutes later (on the hub's clock) nobody has acknowledged it.
        setup.offset.withLockedValue { $0 = 16 * 60_000 }
        #expect(await eventually { setup.receiver.received("regional").count == 1 })
        let escalation = try #require(setup.receiver.received("regional").first)
        #expect(escalation.json["type"] as? String == "alert.escalated")
        #expect(escalation.json["level"] as? Int == 1)
        (_, json) = try await setup.api("GET", "/v1/alerts/\(id)")
        #expect(json["level"] as? Int == 1)
        #expect(json["overdue"] as? Bool == false, "the next level has a new deadline")

        // The last level reached: later deadlines pass without another message.
        setup.offset.withLockedValue { $0 = 40 * 60_000 }
        try await Task.sleep(for: .milliseconds(600))
        #expect(setup.receiver.received("regional").count == 1)
        (_, json) = try await setup.api("GET", "/v1/alerts?overdue=true")
        #expect((json["alerts"] as? [[String: Any]])?.map { $0["id"] as? String } == [id], "listed for the team as overdue")

        // The case's life, each change a webhook to both targets told of it so far.
        func events(_ target: String) -> [String] { setup.receiver.received(target).compactMap { $0.json["type"] as? String } }
        func caseOf(_ target: String, _ type: String) -> [String: Any]? {
            setup.receiver.received(target).last { $0.json["type"] as? String == type }?.json["case"] as? [String: Any]
        }
        (status, json) = try await setup.api("POST", "/v1/alerts/\(id)/start", body: #"{"note":"calling back"}"#)
        #expect(status == 200 && json["status"] as? String == "inProgress" && json["firstActionAt"] as? Int64 != nil)
        (status, json) = try await setup.api("POST", "/v1/alerts/\(id)/assign", body: #"{"owner":"Anna Petrova"}"#)
        #expect(status == 200 && json["owner"] as? String == "Anna Petrova" && json["status"] as? String == "inProgress")
        (status, json) = try await setup.api("POST", "/v1/alerts/\(id)/wait", body: #"{"note":"customer calls back tomorrow"}"#)
        #expect(status == 200 && json["status"] as? String == "waiting")
        (status, json) = try await setup.api("POST", "/v1/alerts/\(id)/assign", body: #"{"owner":"Anna Petrova"}"#)
        #expect(status == 409, "the same owner again is no change")
        (status, json) = try await setup.api("POST", "/v1/alerts/\(id)/assign", body: #"{"owner":"a\u0007b"}"#)
        #expect(status == 400 && (json["error"] as? [String: Any])?["field"] as? String == "owner")
        // Sent concurrently (and retried apart), so in no set order: each carries its time.
        let changes = ["case.assigned", "case.inProgress", "case.waiting"]
        #expect(await eventually { events("manager-web").sorted() == ["alert.raised"] + changes }, "\(events("manager-web"))")
        #expect(await eventually { events("regional").sorted() == ["alert.escalated"] + changes }, "\(events("regional"))")
        let started = try #require(caseOf("regional", "case.inProgress"))
        #expect(started["from"] as? String == "open" && started["status"] as? String == "inProgress" && started["by"] as? String == "test manager")
        #expect(started["note"] as? String == "calling back")
        #expect(caseOf("manager-web", "case.assigned")?["owner"] as? String == "Anna Petrova")

        // Half an hour before the due time (2 h) a reminder; after it an overdue notice, once.
        setup.offset.withLockedValue { $0 = 95 * 60_000 }
        #expect(await eventually { events("manager-web").last == "case.reminder" && events("regional").last == "case.reminder" })
        setup.offset.withLockedValue { $0 = 125 * 60_000 }
        (_, json) = try await setup.api("GET", "/v1/alerts?status=waiting&owner=Anna%20Petrova&stuckFor=1")
        #expect((json["alerts"] as? [[String: Any]])?.map { $0["id"] as? String } == [id], "unchanged for over an hour: stuck")
        #expect(await eventually { events("manager-web").last == "case.overdue" && events("regional").last == "case.overdue" })
        (_, json) = try await setup.api("GET", "/v1/alerts?overdue=true&status=inProgress,waiting")
        #expect((json["alerts"] as? [[String: Any]])?.map { $0["id"] as? String } == [id], "past its due time while waiting")
        try await Task.sleep(for: .milliseconds(600))
        #expect(events("manager-web").filter { $0.hasPrefix("case.reminder") || $0 == "case.overdue" }.count == 2, "each follow-up once")

        (status, json) = try await setup.api("POST", "/v1/alerts/\(id)/cancel")
        #expect(status == 400 && (json["error"] as? [String: Any])?["field"] as? String == "note")
        (status, json) = try await setup.api("POST", "/v1/alerts/\(id)/complete", body: #"{"note":"refund issued"}"#)
        #expect(status == 400 && (json["error"] as? [String: Any])?["code"] as? String == "customerReachedRequired")
        (status, json) = try await setup.api("POST", "/v1/alerts/\(id)/complete", body: #"{"note":"refund issued","customerReached":1}"#)
        #expect(status == 400 && (json["error"] as? [String: Any])?["field"] as? String == "customerReached")
        (status, json) = try await setup.api("POST", "/v1/alerts/\(id)/complete", body: #"{"note":"refund issued","colour":"red"}"#)
        #expect(status == 400 && (json["error"] as? [String: Any])?["field"] as? String == "colour")
        (status, json) = try await setup.api("POST", "/v1/alerts/\(id)/complete", body: #"{"note":"refund issued","customerReached":true}"#)
        #expect(status == 200 && json["status"] as? String == "completed" && json["customerReached"] as? Bool == true)
        #expect(json["note"] as? String == "calling back\ncustomer calls back tomorrow\nrefund issued")
        #expect(await eventually { events("manager-web").last == "case.completed" })
        #expect(caseOf("manager-web", "case.completed")?["customerReached"] as? Bool == true)
        (status, json) = try await setup.api("POST", "/v1/alerts/\(id)/acknowledge")
        #expect(status == 409 && (json["error"] as? [String: Any])?["code"] as? String == "invalidTransition")
        (status, _) = try await setup.api("POST", "/v1/alerts/\(UUID())/resolve", body: #"{"note":"x","customerReached":false}"#)
        #expect(status == 404)
        (status, _) = try await setup.api("GET", "/v1/alerts?status=sleeping")
        #expect(status == 400)
        (status, _) = try await setup.api("GET", "/v1/alerts?stuckFor=0")
        #expect(status == 400)
        // Worked by Anna, completed after its due time: the loop closed, but late.
        (status, json) = try await setup.api("GET", "/v1/reports/cases?groupBy=owner&from=2020-01-01&to=2100-01-01")
        let groups = try #require(json["groups"] as? [[String: Any]])
        #expect(status == 200 && groups.count == 1 && groups.first?["key"] as? String == "Anna Petrova")
        #expect(groups.first?["completed"] as? Int == 1 && groups.first?["customerReached"] as? Int == 1)
        let loop = try #require(groups.first?["closeTheLoop"] as? [String: Any])
        #expect(loop["met"] as? Int == 0 && loop["decided"] as? Int == 1)
        let close = try #require(groups.first?["close"] as? [String: Any])
        #expect((close["medianMs"] as? Int64 ?? 0) >= 125 * 60_000)
        let csv = try await OperationsClient(setup.hub.hub).call("GET", "/v1/reports/cases?groupBy=owner&format=csv&from=2020-01-01", token: setup.token)
        #expect(csv.status == 200 && csv.body.split(separator: "\r\n").count == 3 && csv.body.contains("Anna Petrova,1,0,0,1,0,1,0"))
        (status, _) = try await setup.api("GET", "/v1/reports/cases?groupBy=colour")
        #expect(status == 400)
        let history = try #require(try await setup.api("GET", "/v1/alerts/\(id)/history").json["history"] as? [[String: Any]])
        #expect(history.compactMap { $0["action"] as? String }.reversed() == ["case.inProgress", "case.assigned", "case.waiting", "case.completed"])
        try await setup.stop()
    }

    @Test func aWindowRuleFiresOnceWhenItsThresholdIsCrossedAndNotForEveryRatingAfter() async throws {
        let setup = try await Setup.start()
        func kiosk(_ index: Int, _ score: UInt8) -> FeedbackRecord {
            var record = setup.record(100 + index, score: score, site: "branch-042", source: .kiosk)
            record.scale = .smiley
            record.channel = "kiosk"
            record.customer = ""
            record.comment = ""
            record.attributes = [:]
            return record
        }
        // Four ratings, two red: under the 5-response minimum, nothing.
        #expect(self.isAcknowledged(try await setup.send([kiosk(0, 4), kiosk(1, 1), kiosk(2, 4), kiosk(3, 1)], sequence: 1)))
        try await Task.sleep(for: .milliseconds(400))
        #expect(setup.receiver.received().isEmpty)
        // The fifth, red: 3 of 5 negative (60% ≥ 40%): the window fires.
        #expect(self.isAcknowledged(try await setup.send([kiosk(4, 2)], sequence: 2)))
        #expect(await eventually { setup.receiver.received("manager-042").count == 1 })
        // More red presses while it is over the threshold: no new alert.
        #expect(self.isAcknowledged(try await setup.send((5..<10).map { kiosk($0, 1) }, sequence: 3)))
        try await Task.sleep(for: .milliseconds(600))
        #expect(setup.receiver.received("manager-042").count == 1)
        let slack = try #require(setup.receiver.received("ops-slack").first)
        #expect((slack.json["text"] as? String)?.contains("kiosk-wave") == true)
        #expect(setup.receiver.received("ops-slack").count == 1)
        let (_, json) = try await setup.api("GET", "/v1/alerts?site=branch-042")
        #expect((json["alerts"] as? [[String: Any]])?.count == 1)
        try await setup.stop()
    }

    @Test func anInvalidRulesFileStopsTheHubWithTheRuleAndField() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("hub-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let rules = folder.appendingPathComponent("alerts.yaml").path
        try """
        targets:
          boss: {url: "http://127.0.0.1:9/boss"}
        rules:
          - name: detractor
            scale: npx
            notify: [boss]
        """.write(toFile: rules, atomically: true, encoding: .utf8)
        await #expect {
            _ = try await HubHarness.start(folder: folder, adjust: { $0.alerts = rules })
        } throws: { error in
            let text = "\(error)"
            return text.contains("rule \"detractor\"") && text.contains("field \"scale\"") && text.contains("npx")
        }
    }
}

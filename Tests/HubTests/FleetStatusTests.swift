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

/// Issue 14, "the fleet's status travels the mesh", hub side: STATUS reports over real TLS
/// into a real hub, `feedback-hub agents list` as a real process, the silent rule's
/// webhooks to a real receiver, and `/metrics` over HTTP.
@Suite struct FleetStatusTests {
    static func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    static func status(
        version: String = "1.4.2", role: String = "agent", backlogRecords: Int = 0, backlogBatches: Int = 0, oldestPendingAt: Int64? = nil,
        sources: [NodeStatus.Source] = [], upstream: String? = "hub.example:7443"
    ) -> NodeStatus {
        NodeStatus(
            version: version, role: role, sites: ["branch-042"], backlogRecords: backlogRecords, backlogBatches: backlogBatches,
            oldestPendingAt: oldestPendingAt, sources: sources, upstream: upstream, downstream: nil
        )
    }

    static func report(_ identity: AgentIdentity, sentAt: Int64 = now(), _ status: NodeStatus = status()) throws -> StatusReport {
        try StatusReport(nodeID: identity.nodeID, signingKey: identity.signingKey, sentAt: sentAt, status: status)
    }

    static func kept(_ hub: HubHarness, _ node: UUID) throws -> FleetNode? {
        try hub.hub.store.fleet().first { $0.node.nodeID == node }
    }

    /// The value of an unlabelled metric scraped from `/metrics`, as a whole number.
    static func metric(_ hub: HubHarness, _ name: String) async throws -> Int? {
        let port = try #require(hub.hub.httpAddress?.port)
        let (data, _) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/metrics")!)
        let line = String(decoding: data, as: UTF8.self).split(separator: "\n").first { $0.hasPrefix(name + " ") }
        return line.flatMap { Double($0.dropFirst(name.count + 1)) }.map { Int($0) }
    }

    private func controls(in output: String) -> [UInt8] {
        output.utf8.filter { ($0 < 0x20 && $0 != 0x0A) || $0 == 0x7F }
    }

    @Test func aNodesStatusReachesTheStoreAndAgentsListShowsIt() async throws {
        let hub = try await HubHarness.start()
        defer { Task { try? await hub.stopAndRemove() } }
        let kiosk = AgentIdentity.generate()
        try hub.register(kiosk, sites: try SiteScope(["branch-042"]))
        let quiet = AgentIdentity.generate()
        try hub.register(quiet, sites: try SiteScope(["branch-7"]))

        let connection = try await hub.connect(kiosk)
        let status = Self.status(
            backlogRecords: 1234, backlogBatches: 7, oldestPendingAt: Self.now() - 5 * 60_000,
            sources: [
                .init(name: "door", captured: 10, errors: 2, lastError: "device gone\u{1B}[2J"),
                .init(name: "till", captured: 5, errors: 0, lastError: nil),
            ],
            upstream: "relay.branch-042\u{1B}]0;owned\u{7}:7443"
        )
        connection.send(status: try Self.report(kiosk, status))
        #expect(await eventually { (try? Self.kept(hub, kiosk.nodeID))??.status != nil })
        let kept = try #require(try Self.kept(hub, kiosk.nodeID))
        #expect(kept.status?.status == status)
        #expect(kept.status?.via == nil)
        #expect(kept.lastSeenAt != nil)
        await connection.close()

        let config = try hub.configurationFile()
        let list = try await CLIRun.run(CLIRun.hub, ["agents", "list", "--config", config])
        #expect(list.status == 0, "\(list.output)")
        #expect(self.controls(in: list.output).isEmpty, "\(list.output.debugDescription)")
        let lines = list.output.split(separator: "\n").map(String.init)
        let kioskLine = try #require(lines.first { $0.contains(kiosk.nodeID.uuidString) }, "\(list.output)")
        let quietLine = try #require(lines.first { $0.contains(quiet.nodeID.uuidString) }, "\(list.output)")
        #expect(kioskLine.contains("1.4.2"), "\(kioskLine)")
        #expect(kioskLine.contains("1234/7"), "backlog records/batches: \(kioskLine)")
        #expect(kioskLine.contains("s ago"), "last seen: \(kioskLine)")
        #expect(kioskLine.contains("5m"), "oldest pending: \(kioskLine)")
        #expect(kioskLine.contains("door:2") && !kioskLine.contains("till:"), "sources with errors: \(kioskLine)")
        #expect(kioskLine.contains(#"relay.branch-042\u{1B}]0;owned\u{7}:7443"#), "upstream, escaped: \(kioskLine)")
        #expect(quietLine.contains("never"), "\(quietLine)")
        // Aligned: every column starts at the same place on every line.
        let header = try #require(lines.first)
        let versionColumn = try #require(header.range(of: "version")).lowerBound.utf16Offset(in: header)
        #expect(kioskLine.utf16.count > versionColumn)
        #expect(Array(kioskLine.utf16)[versionColumn..<versionColumn + 5].elementsEqual("1.4.2".utf16), "\(header)\n\(kioskLine)")

        let json = try await CLIRun.run(CLIRun.hub, ["agents", "list", "--config", config, "--json"])
        #expect(json.status == 0, "\(json.output)")
        let nodes = try #require(try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [[String: Any]], "\(json.output)")
        let entry = try #require(nodes.first { $0["nodeId"] as? String == kiosk.nodeID.uuidString.lowercased() })
        let reported = try #require(entry["status"] as? [String: Any])
        #expect(reported["backlogRecords"] as? Int == 1234)
        #expect(reported["version"] as? String == "1.4.2")
        #expect(entry["lastSeenAt"] as? Int != nil)
        #expect(nodes.first { $0["nodeId"] as? String == quiet.nodeID.uuidString.lowercased() }?["lastSeenAt"] == nil)
    }

    @Test func forgedMisroutedStaleAndFutureReportsAreDroppedAndARelaysIsKeptWithVia() async throws {
        let hub = try await HubHarness.start()
        defer { Task { try? await hub.stopAndRemove() } }
        let agentA = AgentIdentity.generate()
        let agentB = AgentIdentity.generate()
        let relay = AgentIdentity.generate()
        try hub.register(agentA)
        try hub.register(agentB)
        try hub.register(relay, role: .relay)

        // A report of A signed by another key, one of A altered after signing, and B's own
        // signed report sent by A (an agent may report only for itself): all dropped.
        let fromA = try await hub.connect(agentA)
        let stranger = AgentIdentity(nodeID: agentA.nodeID, signingKey: Curve25519.Signing.PrivateKey())
        fromA.send(status: try Self.report(stranger, Self.status(version: "forged")))
        var altered = try Self.report(agentA, Self.status(version: "genuine"))
        altered.body = Array(try Self.status(version: "altered").encoded())
        fromA.send(status: altered)
        fromA.send(status: try Self.report(agentB, Self.status(version: "b-through-a")))
        // A's own report afterwards: once it is kept, the ones before it were judged.
        fromA.send(status: try Self.report(agentA, sentAt: Self.now() - 1_000, Self.status(version: "a-own")))
        #expect(await eventually { (try? Self.kept(hub, agentA.nodeID))??.status != nil })
        #expect(try Self.kept(hub, agentA.nodeID)?.status?.status?.version == "a-own")
        #expect(try Self.kept(hub, agentB.nodeID)?.status == nil, "B's report through an agent is dropped")
        await fromA.close()

        // A relay passing B's report on: kept, with the relay as via.
        let fromRelay = try await hub.connect(relay, role: .relay)
        let sentAt = Self.now()
        fromRelay.send(status: try Self.report(agentB, sentAt: sentAt, Self.status(version: "b-newer", backlogRecords: 5)))
        #expect(await eventually { (try? Self.kept(hub, agentB.nodeID))??.status != nil })
        let kept = try #require(try Self.kept(hub, agentB.nodeID)?.status)
        #expect(kept.via == relay.nodeID)
        #expect(kept.sentAt == sentAt)
        #expect(kept.status?.version == "b-newer")

        // An older report of B, and one from ten minutes ahead, are dropped; the relay's own
        // report afterwards is the marker.
        fromRelay.send(status: try Self.report(agentB, sentAt: sentAt - 60_000, Self.status(version: "b-older")))
        fromRelay.send(status: try Self.report(agentB, sentAt: Self.now() + 10 * 60_000, Self.status(version: "b-future")))
        fromRelay.send(status: try Self.report(relay, Self.status(role: "relay")))
        #expect(await eventually { (try? Self.kept(hub, relay.nodeID))??.status != nil })
        #expect(try Self.kept(hub, agentB.nodeID)?.status?.status?.version == "b-newer")
        #expect(try Self.kept(hub, agentB.nodeID)?.status?.sentAt == sentAt)
        await fromRelay.close()
    }

    @Test func aSilentNodeRaisesOneAlertAndAnotherOnlyAfterItCameBackAndFellSilentAgain() async throws {
        let receiver = try await WebhookReceiver.start()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("hub-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let rules = folder.appendingPathComponent("alerts.yaml").path
        try """
        targets:
          ops: {url: "\(receiver.url("ops"))"}
        rules:
          - name: kiosk-silent
            silentFor: 30m
            sites: [branch-042]
            notify: [ops]
        delivery: {firstRetry: 50ms, maxRetry: 200ms, timeout: 5s}
        """.write(toFile: rules, atomically: true, encoding: .utf8)
        let offset = NIOLockedValueBox<Int64>(0)
        let clock: @Sendable () -> Int64 = { Self.now() + offset.withLockedValue { $0 } }
        let hub = try await HubHarness.start(
            folder: folder,
            adjust: {
                $0.alerts = rules
                $0.fleet.silentAfterMinutes = 30
            },
            clock: clock, fleetCheckInterval: .milliseconds(100)
        )
        defer { Task { try? await hub.stopAndRemove(); try? await receiver.stop() } }
        let kiosk = AgentIdentity.generate()
        try hub.register(kiosk, sites: try SiteScope(["branch-042"]))
        let elsewhere = AgentIdentity.generate()
        try hub.register(elsewhere, sites: try SiteScope(["branch-7"]))

        /// Reports as `identity` at the hub's present time and waits until the hub saw it then.
        func report(_ identity: AgentIdentity) async throws {
            let at = clock()
            let connection = try await hub.connect(identity)
            connection.send(status: try Self.report(identity, sentAt: at))
            #expect(await eventually { ((try? Self.kept(hub, identity.nodeID))??.lastSeenAt ?? 0) >= at })
            await connection.close()
        }
        /// Waits until a check ran with the clock where it is now: the gauge shows `silent`.
        func checked(silent: Int) async -> Bool {
            await eventually { (try? await Self.metric(hub, "feedback_hub_nodes_silent")) == silent }
        }

        try await report(kiosk)
        try await report(elsewhere)
        #expect(await checked(silent: 0))

        // It keeps reporting: no alert, though the node outside the rule's sites falls silent.
        offset.withLockedValue { $0 = 20 * 60_000 }
        try await report(kiosk)
        offset.withLockedValue { $0 = 40 * 60_000 }
        #expect(await checked(silent: 1), "only the node at branch-7 is silent")
        #expect(try hub.hub.store.alerts(status: nil, site: nil, within: .any, overdueAt: nil, limit: 100).isEmpty)

        // 35 minutes after its last report: one alert, to the receiver, and not one per check.
        offset.withLockedValue { $0 = 55 * 60_000 }
        #expect(await checked(silent: 2))
        #expect(await eventually { receiver.received("ops").count == 1 })
        try await Task.sleep(for: .seconds(1))
        #expect(receiver.received("ops").count == 1, "one alert per silence, not one per check")
        let first = try #require(receiver.received("ops").first)
        let alert = try #require(first.json["alert"] as? [String: Any])
        #expect(alert["kind"] as? String == "silent")
        #expect(alert["rule"] as? String == "kiosk-silent")
        #expect(alert["nodeId"] as? String == kiosk.nodeID.uuidString.lowercased())
        #expect(alert["site"] as? String == "branch-042")

        // Back, then silent again: a second alert.
        try await report(kiosk)
        #expect(await checked(silent: 1))
        offset.withLockedValue { $0 = 90 * 60_000 }
        #expect(await eventually { receiver.received("ops").count == 2 })
        try await Task.sleep(for: .seconds(1))
        let requests = receiver.received("ops")
        #expect(requests.count == 2)
        #expect(Set(requests.compactMap { $0.headers["webhook-id"] }).count == 2, "two silences, two alerts")
        #expect(try hub.hub.store.alerts(status: nil, site: nil, within: .any, overdueAt: nil, limit: 100).count == 2)
    }

    @Test func theSilentNodesMetricCountsSeenUnrevokedNodesNotSeenForTheSetting() async throws {
        let offset = NIOLockedValueBox<Int64>(0)
        let clock: @Sendable () -> Int64 = { Self.now() + offset.withLockedValue { $0 } }
        let hub = try await HubHarness.start(clock: clock, fleetCheckInterval: .milliseconds(100))
        defer { Task { try? await hub.stopAndRemove() } }
        #expect(await eventually { hub.hub.httpAddress != nil })
        let reporting = AgentIdentity.generate()
        let batchesOnly = AgentIdentity.generate()
        let never = AgentIdentity.generate()
        let revoked = AgentIdentity.generate()
        for identity in [reporting, batchesOnly, never, revoked] { try hub.register(identity) }

        for identity in [reporting, revoked] {
            let connection = try await hub.connect(identity)
            connection.send(status: try Self.report(identity))
            #expect(await eventually { (try? Self.kept(hub, identity.nodeID))??.status != nil })
            await connection.close()
        }
        // Seen through a committed batch alone (an agent of protocol version 1 sends no STATUS).
        let connection = try await hub.connect(batchesOnly)
        var factory = RecordFactory(origin: batchesOnly.nodeID)
        let batch = try BatchSealer(origin: batchesOnly.nodeID, signingKey: batchesOnly.signingKey).seal(factory.records(3), sequence: 1)
        _ = try await connection.send(batch).get()
        await connection.close()
        #expect(try Self.kept(hub, batchesOnly.nodeID)?.lastSeenAt != nil)
        _ = try hub.hub.store.revokeNode(revoked.nodeID, at: clock())

        #expect(await eventually { (try? await Self.metric(hub, "feedback_hub_nodes_silent")) == 0 })
        // Sixteen minutes on (the default is 15): the two seen, unrevoked nodes are silent;
        // the one never seen and the revoked one are not counted.
        offset.withLockedValue { $0 = 16 * 60_000 }
        #expect(await eventually { (try? await Self.metric(hub, "feedback_hub_nodes_silent")) == 2 })
        let again = try await hub.connect(reporting)
        again.send(status: try Self.report(reporting, sentAt: clock()))
        #expect(await eventually { (try? await Self.metric(hub, "feedback_hub_nodes_silent")) == 1 })
        await again.close()
    }

    @Test func silentAfterMinutesIsRangeChecked() throws {
        var configuration = HubConfiguration(hubID: UUID(), tls: .init(certificate: "hub.pem", privateKey: "hub-key.pem", clientCA: nil))
        configuration.fleet.silentAfterMinutes = 0
        #expect(throws: ConfigurationError.self) { try configuration.validate(path: "hub.yaml") }
        do {
            try configuration.validate(path: "hub.yaml")
        } catch {
            #expect("\(error)" == "configuration file hub.yaml fleet.silentAfterMinutes must be 1–10080, got 0")
        }
    }

    @Test func aSilentRuleTakesNoRatingSettings() throws {
        let rules = try AlertRules.parse(
            yaml: "targets: {ops: {url: \"http://127.0.0.1:9/x\"}}\nrules:\n  - {name: quiet, silentFor: 45m, sites: [branch-1], notify: [ops]}\n",
            path: "alerts.yaml"
        )
        let rule = try #require(rules.rule(named: "quiet"))
        #expect(rule.silentForMilliseconds == Int64(2_700_000))
        #expect(rule.scale == nil)
        #expect(throws: AlertRulesError.self) {
            try AlertRules.parse(yaml: "rules:\n  - {name: quiet, silentFor: 45m, scale: nps}\n", path: "alerts.yaml")
        }
        #expect(throws: AlertRulesError.self) {
            try AlertRules.parse(yaml: "rules:\n  - {name: quiet, silentFor: 10s}\n", path: "alerts.yaml")
        }
    }
}

extension HubHarness {
    /// A hub.yaml naming this hub's store and certificates, for the command-line tools.
    func configurationFile() throws -> String {
        let path = self.folder.appendingPathComponent("hub.yaml").path
        try """
        hubId: \(self.configuration.hubID.uuidString)
        store: "\(self.configuration.store)"
        tls:
          certificate: "\(self.configuration.tls.certificate)"
          privateKey: "\(self.configuration.tls.privateKey)"
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}

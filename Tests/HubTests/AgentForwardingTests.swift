import Agent
import AgentBench
import Foundation
import Hub
import Logging
import ServiceLifecycle
import TestSupport
import Testing
import Wire

/// The embeddable agent (spool, batcher, uplink) against real hubs on loopback TLS.
@Suite(.serialized) struct AgentForwardingTests {
    /// A running agent in its own ServiceGroup, as an embedding backend runs it.
    struct RunningAgent {
        let agent: FeedbackAgent
        let group: ServiceGroup
        let task: Task<Void, any Error>
        let folder: String

        static func start(
            identity: AgentIdentity, hubs: [HubAddress], ca: String, folder existing: String? = nil,
            adjust: (inout FeedbackAgent.Configuration) -> Void = { _ in }
        ) throws -> RunningAgent {
            let folder = existing ?? FileManager.default.temporaryDirectory.appendingPathComponent("agent-\(UUID())").path
            var configuration = FeedbackAgent.Configuration(
                identity: identity, hubs: hubs, tls: try HubConnection.tlsContext(trusting: ca), spoolDirectory: folder
            )
            configuration.backoff = Backoff(initial: .milliseconds(20), maximum: .milliseconds(200))
            configuration.batching.maxAge = .milliseconds(20)
            adjust(&configuration)
            var logger = Logger(label: "test-agent")
            logger.logLevel = .critical
            let agent = try FeedbackAgent(configuration: configuration, logger: logger)
            let group = ServiceGroup(configuration: .init(services: [agent], logger: logger))
            return RunningAgent(agent: agent, group: group, task: Task { try await group.run() }, folder: folder)
        }

        func stop() async throws {
            await self.group.triggerGracefulShutdown()
            try await self.task.value
            try? FileManager.default.removeItem(atPath: self.folder)
        }
    }

    private func submissions(_ count: Int, site: String = "branch-1") -> [FeedbackSubmission] {
        (0..<count).map { FeedbackSubmission(source: "kiosk", scale: "smiley", score: $0 % 4 + 1, site: site) }
    }

    @Test func ratingsTakenWhileTheHubIsDownAreAllStoredOnceItIsBack() async throws {
        let first = try await HubHarness.start()
        let identity = AgentIdentity.generate()
        try first.register(identity)
        let port = first.port
        try await first.stop()

        let running = try RunningAgent.start(identity: identity, hubs: [HubAddress(host: "127.0.0.1", port: port)], ca: first.caPath)
        for _ in 0..<30 {
            try await running.agent.submit(self.submissions(10))
        }
        #expect(await eventually { running.agent.status.uplink.connectFailures >= 2 })
        #expect(running.agent.status.spool.unacknowledgedRecords + running.agent.status.spool.unsealedRecords == 300)

        let again = try await HubHarness.start(folder: first.folder) { $0.listen = "127.0.0.1:\(port)" }
        #expect(await running.agent.flush(timeout: .seconds(30)))
        #expect(try again.recordCount == 300)
        let stored = try again.hub.sqlite.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(DISTINCT id) FROM records") ?? 0 }
        #expect(stored == 300)
        #expect(running.agent.status.uplink.batchesDeadLettered == 0)
        try await running.stop()
        try await again.stopAndRemove()
    }

    @Test func theAgentFailsOverToTheNextHubAndReturnsToTheFirst() async throws {
        let second = try await HubHarness.start()
        let identity = AgentIdentity.generate()
        try second.register(identity)
        let firstPort = try CrashTests.freePort()
        let running = try RunningAgent.start(
            identity: identity,
            hubs: [HubAddress(host: "127.0.0.1", port: firstPort), HubAddress(host: "127.0.0.1", port: second.port)],
            ca: second.caPath
        ) { $0.returnToPrimaryAfter = .milliseconds(300) }

        try await running.agent.submit(self.submissions(100))
        #expect(await running.agent.flush(timeout: .seconds(20)))
        // The first hub being down, they went to the second. (Which hub the agent is connected
        // to right now is not asserted: it may already be retrying the first.)
        #expect(try second.recordCount == 100)

        // The first hub comes up (same CA): the agent goes back to it by itself.
        let first = try await HubHarness.start(certificatesFrom: second.folder) { $0.listen = "127.0.0.1:\(firstPort)" }
        try first.register(identity)
        #expect(await eventually { running.agent.status.uplink.connectedHub?.port == firstPort })
        try await running.agent.submit(self.submissions(50))
        #expect(await running.agent.flush(timeout: .seconds(20)))
        #expect(try first.recordCount == 50)
        #expect(try second.recordCount == 100)
        try await running.stop()
        try await first.stopAndRemove()
        try await second.stopAndRemove()
    }

    @Test func aBatchTheHubRefusesForGoodGoesToTheDeadLetterFolderWithItsReason() async throws {
        let hub = try await HubHarness.start { $0.limits.maxBatchRecords = 50 }
        let identity = AgentIdentity.generate()
        try hub.register(identity)
        let running = try RunningAgent.start(
            identity: identity, hubs: [HubAddress(host: "127.0.0.1", port: hub.port)], ca: hub.caPath
        ) { $0.batching.maxRecords = 80 }

        try await running.agent.submit(self.submissions(80))
        #expect(await running.agent.flush(timeout: .seconds(20)), "a dead-lettered batch leaves the spool")
        #expect(running.agent.status.uplink.batchesDeadLettered == 1)
        let folder = running.folder + "/dead-letter"
        let files = try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
        #expect(files.count == 2)
        let reasonFile = try #require(files.first { $0.hasSuffix(".reason") })
        let reason = try String(contentsOfFile: folder + "/" + reasonFile, encoding: .utf8)
        #expect(reason.contains("batchTooLarge"))
        // Dead letters hold customer data: owner-only, in an owner-only folder.
        for file in files {
            #expect(try FileManager.default.attributesOfItem(atPath: folder + "/" + file)[.posixPermissions] as? Int == 0o600, "\(file)")
        }
        #expect(try FileManager.default.attributesOfItem(atPath: folder)[.posixPermissions] as? Int == 0o700)
        #expect(try hub.recordCount == 0)
        try await running.stop()
        try await hub.stopAndRemove()
    }

    @Test func anInvalidSubmissionIsRefusedNamingTheFieldAndNothingIsKept() async throws {
        let hub = try await HubHarness.start()
        let identity = AgentIdentity.generate()
        try hub.register(identity)
        let running = try RunningAgent.start(identity: identity, hubs: [HubAddress(host: "127.0.0.1", port: hub.port)], ca: hub.caPath)
        var batch = self.submissions(3)
        batch[1].score = 11
        await #expect(throws: WireError.self) { try await running.agent.submit(batch) }
        do {
            try await running.agent.submit(batch)
        } catch let error as WireError {
            #expect(error.field == "score")
        }
        #expect(running.agent.status.spool.unsealedRecords == 0)
        #expect(running.agent.status.submitted == 0)
        try await running.stop()
        try await hub.stopAndRemove()
    }

    @Test func aSpoolBehindTheHubSealsAfterWhatTheHubCommitted() async throws {
        // The hub already holds batches 1–5 of this origin (an agent restored from an old
        // backup, say): WELCOME's resume point moves the spool past them.
        let hub = try await HubHarness.start()
        let identity = AgentIdentity.generate()
        try hub.register(identity)
        var factory = RecordFactory(origin: identity.nodeID)
        for sequence in 1...5 {
            _ = try hub.hub.store.commit([
                IncomingBatch(key: BatchKey(origin: identity.nodeID, sequence: UInt64(sequence)), records: factory.records(2), receivedAt: 0)
            ])
        }
        let running = try RunningAgent.start(identity: identity, hubs: [HubAddress(host: "127.0.0.1", port: hub.port)], ca: hub.caPath)
        #expect(await eventually { running.agent.status.uplink.connectedHub != nil })
        #expect(running.agent.spool.nextSequence == 6)
        try await running.agent.submit(self.submissions(30))
        #expect(await running.agent.flush(timeout: .seconds(20)))
        #expect(try hub.recordCount == 10 + 30, "the new ratings were stored, not taken for duplicates")
        try await running.stop()
        try await hub.stopAndRemove()
    }

    @Test func aRelaysUplinkForwardsTheBatchesItHoldsUnderTheirOriginAndSettlesThem() async throws {
        let hub = try await HubHarness.start()
        let relay = AgentIdentity.generate()
        let kiosk = AgentIdentity.generate()
        try hub.register(relay, role: .relay)
        try hub.register(kiosk)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("relay-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let spool = try Spool(configuration: Spool.Configuration(directory: folder))
        // The relay's own ratings and a kiosk's batches, interleaved as they arrived.
        var own = SyntheticRatings(origin: relay.nodeID)
        var theirs = SyntheticRatings(origin: kiosk.nodeID)
        let kioskSealer = BatchSealer(origin: kiosk.nodeID, signingKey: kiosk.signingKey)
        for round in 0..<3 {
            let records = own.next(10)
            try await spool.append(records)
            try await spool.sealed(BatchSealer(origin: relay.nodeID, signingKey: relay.signingKey).seal(records, sequence: spool.nextSequence), recordCount: 10)
            #expect(try await spool.hold(kioskSealer.seal(theirs.next(20), sequence: UInt64(round + 1)), path: [UUID()]) == .held)
        }

        func uplink(_ identity: AgentIdentity) throws -> Uplink {
            var configuration = Uplink.Configuration(
                hubs: [HubAddress(host: "127.0.0.1", port: hub.port)], tls: try HubConnection.tlsContext(trusting: hub.caPath), identity: identity,
                deadLetterDirectory: folder + "/dead-letter"
            )
            configuration.role = .relay
            configuration.backoff = Backoff(initial: .milliseconds(20), maximum: .milliseconds(200))
            return Uplink(configuration: configuration, spool: spool, logger: Logger(label: "test-relay"))
        }
        // The role reaches the hub: a node registered as an agent may not connect as a relay.
        let impostor = try uplink(kiosk)
        let refused = Task { await impostor.run() }
        #expect(await eventually { impostor.stats.lastConnectionError?.contains("not registered as a relay") == true })
        refused.cancel()
        await refused.value
        #expect(spool.stats.unacknowledgedBatches == 6)

        let forwarding = try uplink(relay)
        let running = Task { await forwarding.run() }
        #expect(await eventually { spool.stats.unacknowledgedBatches == 0 })
        running.cancel()
        await running.value
        #expect(forwarding.stats.batchesDeadLettered == 0)
        func stored(_ origin: UUID) throws -> Int {
            try hub.hub.sqlite.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM records WHERE origin = ?", arguments: [origin]) ?? 0 }
        }
        #expect(try stored(kiosk.nodeID) == 60, "stored under the kiosk, not the relay that forwarded them")
        #expect(try stored(relay.nodeID) == 30)
        #expect(try hub.recordCount == 90)
        spool.close()
        try await hub.stopAndRemove()
    }

    @Test func anAgentWhoseSpoolHasADamagedSegmentStartsAndForwardsTheRest() async throws {
        let hub = try await HubHarness.start()
        let identity = AgentIdentity.generate()
        try hub.register(identity)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("agent-\(UUID())").path
        var configuration = Spool.Configuration(directory: folder)
        configuration.segmentBytes = 4_096
        let spool = try Spool(configuration: configuration)
        var ratings = SyntheticRatings(origin: identity.nodeID)
        for _ in 0..<20 { try await spool.append(ratings.next(10)) }
        spool.close()
        let segments = try FileManager.default.contentsOfDirectory(atPath: folder + "/segments").sorted()
        #expect(segments.count >= 3)
        let damaged = folder + "/segments/" + segments[1]
        var bytes = try Data(contentsOf: URL(fileURLWithPath: damaged))
        bytes[bytes.count - 3] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: damaged))

        let running = try RunningAgent.start(
            identity: identity, hubs: [HubAddress(host: "127.0.0.1", port: hub.port)], ca: hub.caPath, folder: folder
        ) { $0.spool.segmentBytes = 4_096 }
        #expect(running.agent.spool.recovery.quarantinedSegments.count == 1)
        #expect(FileManager.default.fileExists(atPath: folder + "/quarantine"))
        #expect(await running.agent.flush(timeout: .seconds(20)))
        #expect(try hub.recordCount == 199, "all but the one damaged entry")
        try await running.agent.submit(self.submissions(5))
        #expect(await running.agent.flush(timeout: .seconds(20)))
        #expect(try hub.recordCount == 204, "and it keeps going")
        try await running.stop()
        try await hub.stopAndRemove()
    }
}


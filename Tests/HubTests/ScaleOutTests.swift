import Agent
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Hub
import NIOConcurrencyHelpers
import PostgresNIO
import TestSupport
import Testing
import Wire

/// Several hubs on one PostgreSQL database, as real `feedback-hub serve` processes against a
/// real server (scripts/test.sh starts one), killed for real.
final class ScaleOut: @unchecked Sendable {
    let folder: URL
    let database: PostgresSettings
    let receiver: WebhookReceiver
    var hubs: [(config: String, port: Int, http: Int, process: Process?)] = []
    var caPath: String { self.folder.appendingPathComponent("hub1/ca.pem").path }

    private init(folder: URL, database: PostgresSettings, receiver: WebhookReceiver) {
        self.folder = folder
        self.database = database
        self.receiver = receiver
    }

    /// `count` hubs configured on one new database, with a detractor rule notifying the receiver.
    static func make(hubs count: Int = 2, deliveryTimeout: String = "2s") async throws -> ScaleOut {
        let database = try TestStores.makeDatabase()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("scaleout-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let receiver = try await WebhookReceiver.start()
        let setup = ScaleOut(folder: folder, database: database, receiver: receiver)
        let rules = folder.appendingPathComponent("alerts.yaml").path
        try """
            targets:
              manager: {url: "\(receiver.url("manager"))"}
            rules:
              - name: detractor
                scale: nps
                notify: [manager]
            delivery: {firstRetry: 100ms, maxRetry: 500ms, timeout: \(deliveryTimeout)}
            """.write(toFile: rules, atomically: true, encoding: .utf8)
        let first = folder.appendingPathComponent("hub1").path
        for index in 1...count {
            let port = try CrashTests.freePort()
            let http = try CrashTests.freePort()
            let config: String
            if index == 1 {
                _ = try await CrashTests.runHub(["init", first, "--listen", "127.0.0.1:\(port)", "--http", "127.0.0.1:\(http)"])
                config = first + "/hub.yaml"
            } else {
                let own = folder.appendingPathComponent("hub\(index)").path
                try FileManager.default.createDirectory(atPath: own, withIntermediateDirectories: true)
                config = own + "/hub.yaml"
                try """
                    hubId: \(UUID().uuidString.lowercased())
                    listen: "127.0.0.1:\(port)"
                    http: "127.0.0.1:\(http)"
                    tls: {certificate: \(first)/hub.pem, privateKey: \(first)/hub-key.pem}

                    """.write(toFile: config, atomically: true, encoding: .utf8)
            }
            // Every hub on the one database, with the alert rules.
            var text = try String(contentsOfFile: config, encoding: .utf8)
            text = text.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.hasPrefix("store:") }.joined(separator: "\n")
            text += """

                store: "postgres://\(database.user)@\(database.host):\(database.port)/\(database.database)"
                postgres: {passwordEnv: \(TestStores.passwordVariable), poolSize: 6}
                alerts: \(rules)

                """
            try text.write(toFile: config, atomically: true, encoding: .utf8)
            setup.hubs.append((config, port, http, nil))
        }
        return setup
    }

    /// Starts hub `index` (0-based) and waits until `/readyz` says ready.
    func start(_ index: Int) async throws {
        let hub = self.hubs[index]
        let log = URL(fileURLWithPath: hub.config).deletingLastPathComponent().appendingPathComponent("hub.log").path
        self.hubs[index].process = try launch(CrashTests.binary, ["serve", "--config", hub.config, "--log-level", "info"], log: log)
        let ready = await eventually(seconds: 60) { await self.isReady(index) }
        #expect(ready, "hub \(index + 1) became ready: \(self.log(index).suffix(2000))")
    }

    func isReady(_ index: Int) async -> Bool {
        guard let url = URL(string: "http://127.0.0.1:\(self.hubs[index].http)/readyz"),
            let (_, response) = try? await URLSession.shared.data(from: url)
        else { return false }
        return (response as? HTTPURLResponse)?.statusCode == 200
    }

    func log(_ index: Int) -> String {
        let path = URL(fileURLWithPath: self.hubs[index].config).deletingLastPathComponent().appendingPathComponent("hub.log").path
        return (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    }

    /// The value of one series on hub `index`'s `/metrics` (the full series text before the
    /// value), as a whole number; nil when the hub does not answer or has no such series.
    func metric(_ index: Int, _ series: String) async -> Int? {
        guard let url = URL(string: "http://127.0.0.1:\(self.hubs[index].http)/metrics"),
            let (data, _) = try? await URLSession.shared.data(from: url)
        else { return nil }
        let line = String(decoding: data, as: UTF8.self).split(separator: "\n").first { $0.hasPrefix(series + " ") }
        return line.flatMap { Double($0.dropFirst(series.count + 1)) }.map { Int($0) }
    }

    func kill(_ index: Int, _ signal: Int32 = SIGKILL) async {
        guard let process = self.hubs[index].process, process.isRunning else { return }
        Foundation.kill(process.processIdentifier, signal)
        await waitForExit(process)
    }

    /// Registers `identity` through hub 1's command line (the registry is the database's).
    func register(_ identity: AgentIdentity) async throws {
        _ = try await CrashTests.runHub([
            "agents", "add", "--config", self.hubs[0].config, "--node-id", identity.nodeID.uuidString, "--public-key",
            identity.publicKeyBase64, "--any-site",
        ])
    }

    func connect(_ index: Int, _ identity: AgentIdentity) async throws -> HubConnection {
        try await HubConnection.connect(
            host: "127.0.0.1", port: self.hubs[index].port, tls: try HubConnection.tlsContext(trusting: self.caPath), identity: identity
        )
    }

    /// Rows of a query on the shared database.
    func sql(_ query: String) throws -> [PostgresRow] {
        try TestStores.sql(self.database, query)
    }

    func count(_ query: String) throws -> Int {
        try self.sql(query).first?.decode(Int.self) ?? -1
    }

    /// Runs `path` with its output to /dev/null and waits for its exit with `waitpid`: the
    /// restarted PostgreSQL server inherits what the test process holds open, so neither the
    /// end of a pipe nor Foundation's process monitor can tell when the script is done.
    static func runToExit(_ path: String, _ arguments: [String]) throws -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, path, &actions, nil, argv, environ)
        guard spawned == 0 else { throw StoreError("cannot run \(path): error \(spawned)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0, errno == EINTR {}
        return (status & 0x7F) == 0 ? (status >> 8) & 0xFF : -1
    }

    func stop() async throws {
        for index in self.hubs.indices { await self.kill(index, SIGTERM) }
        try await self.receiver.stop()
        try? TestStores.dropDatabase(self.database)
        try? FileManager.default.removeItem(at: self.folder)
    }
}

@Suite(.serialized)
struct ScaleOutTests {
    /// An agent process listing both hubs; hub 1 is killed for real while it sends.
    @Test func aHubKilledUnderLoadLosesAndDuplicatesNothingAndEveryDetractorAlertsOnce() async throws {
        let setup = try await ScaleOut.make()
        defer { Task { try? await setup.stop() } }
        try await setup.start(0)
        try await setup.start(1)
        let folder = setup.folder.appendingPathComponent("agent").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let identity = AgentIdentity.generate()
        try identity.save(to: folder + "/agent.json")
        try await setup.register(identity)
        let httpPort = try CrashTests.freePort()
        try """
            identity: agent.json
            hubs: ["127.0.0.1:\(setup.hubs[0].port)", "127.0.0.1:\(setup.hubs[1].port)"]
            ca: \(setup.caPath)
            spool: {directory: spool, fsync: "5"}
            batch: {maxRecords: 50, maxAgeMs: 20}
            http: {listen: "127.0.0.1:\(httpPort)"}
            """.write(toFile: folder + "/agent.yaml", atomically: true, encoding: .utf8)
        let agent = try launch(AgentProcessTests.binary, ["run", "--config", folder + "/agent.yaml", "--log-level", "info"], log: folder + "/agent.log")
        defer { Foundation.kill(agent.processIdentifier, SIGKILL) }
        let intake = URL(string: "http://127.0.0.1:\(httpPort)/v1/feedback")!
        #expect(await eventually { (try? await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(httpPort)/healthz")!)) != nil })

        // Ratings in requests of 10, every third a detractor; hub 1 dies once 300 are stored.
        var accepted: [String] = []
        var negatives = 0
        for round in 0..<80 {
            let scores = (0..<10).map { ($0 + round) % 3 == 0 ? 2 : 9 }
            let body = "[" + scores.map { #"{"source":"api","scale":"nps","score":\#($0),"site":"branch-1"}"# }.joined(separator: ",") + "]"
            guard let ids = await AgentProcessTests.post(intake, Data(body.utf8), timeout: 10) else { continue }
            accepted += ids
            negatives += scores.filter { $0 == 2 }.count
            if round == 30 {
                #expect(await eventually(seconds: 30) { (try? setup.count("SELECT COUNT(*) FROM records")) ?? 0 >= 300 })
                await setup.kill(0)
            }
        }
        #expect(accepted.count == 800)
        let everyOne = await eventually(seconds: 60) { (try? setup.count("SELECT COUNT(*) FROM records")) == accepted.count }
        #expect(everyOne, "every accepted rating reached the database: \((try? setup.count("SELECT COUNT(*) FROM records")) ?? -1) of \(accepted.count)")
        let stored = Set(try setup.sql("SELECT id::text FROM records").map { try $0.decode(String.self) })
        #expect(Set(accepted.map { $0.lowercased() }) == stored)
        // Every detractor alerted once, and every alert reached the receiver (a delivery hub 1
        // had claimed goes out from hub 2 when its lease ends, with the same webhook id).
        #expect(try setup.count("SELECT COUNT(*) FROM alerts") == negatives)
        let delivered = await eventually(seconds: 60) { Set(setup.receiver.received("manager").compactMap { $0.headers["webhook-id"] }).count == negatives }
        #expect(delivered, "every alert delivered: \(Set(setup.receiver.received("manager").compactMap { $0.headers["webhook-id"] }).count) of \(negatives)")
        print("scale-out kill: \(accepted.count) accepted, \(negatives) detractors, \(setup.receiver.received("manager").count) webhooks")
    }

    /// The same sealed batch at both hubs at the same moment: the database decides.
    @Test func theSameBatchAtBothHubsAtOnceIsStoredOnceAndAlertsOnce() async throws {
        // A long timeout, so retries are rare; a delivery that timed out after the receiver took
        // it goes again with its id (at-least-once), which the counts below allow for.
        let setup = try await ScaleOut.make(deliveryTimeout: "10s")
        defer { Task { try? await setup.stop() } }
        try await setup.start(0)
        try await setup.start(1)
        let identity = AgentIdentity.generate()
        try await setup.register(identity)
        let sealer = BatchSealer(origin: identity.nodeID, signingKey: identity.signingKey)
        var factory = RecordFactory(origin: identity.nodeID)
        var outcomes: [String] = []
        for sequence in 1...20 {
            var records = factory.records(50)
            records[0].scale = .nps
            records[0].score = 1
            let batch = try sealer.seal(records, sequence: UInt64(sequence))
            let first = try await setup.connect(0, identity)
            let second = try await setup.connect(1, identity)
            async let a = first.send(batch).get()
            async let b = second.send(batch).get()
            let (one, two) = try await (a, b)
            outcomes.append("\(one)|\(two)")
            for result in [one, two] {
                guard case .acknowledged = result else {
                    Issue.record("batch \(sequence) refused: \(result)")
                    continue
                }
            }
            await first.close()
            await second.close()
        }
        // Each batch stored once: 20 batches, 1000 records, 20 alerts, 20 webhooks.
        #expect(try setup.count("SELECT COUNT(*) FROM batches") == 20)
        #expect(try setup.count("SELECT COUNT(*) FROM records") == 1000)
        #expect(try setup.count("SELECT COUNT(*) FROM alerts") == 20)
        // At-least-once over HTTP: an attempt the hub gave up on (a receiver stalled past the
        // timeout on a loaded machine) goes again with its id, so ids are counted, not requests.
        func ids() -> [String] { setup.receiver.received("manager").compactMap { $0.headers["webhook-id"] } }
        #expect(await eventually(seconds: 30) { Set(ids()).count >= 20 })
        try await Task.sleep(for: .seconds(1))
        #expect(Set(ids()).count == 20, "one webhook id per alert, from one of the two hubs")
        #expect(try setup.count("SELECT COUNT(*) FROM alert_deliveries WHERE state = 'delivered'") == 20)
        var delivered = 0
        for index in 0..<2 { delivered += await setup.metric(index, #"feedback_hub_alert_deliveries_total{outcome="delivered"}"#) ?? 0 }
        #expect(delivered == 20, "each delivery marked delivered once, by one hub (\(ids().count) requests)")
    }

    /// Both hubs commit alerts and both deliver from the one outbox, against one receiver that
    /// fails its first requests: each alert reaches it once (no hub died, so the crash window
    /// of at-least-once delivery never opens), none is lost, and both hubs took part.
    @Test func twoHubsDeliveringToOneReceiverDeliverEachAlertOnce() async throws {
        let setup = try await ScaleOut.make(deliveryTimeout: "10s")  // a long timeout: the counts are exact
        defer { Task { try? await setup.stop() } }
        try await setup.start(0)
        try await setup.start(1)
        let identity = AgentIdentity.generate()
        try await setup.register(identity)
        setup.receiver.fail("manager", times: 40)
        let sealer = BatchSealer(origin: identity.nodeID, signingKey: identity.signingKey)
        var factory = RecordFactory(origin: identity.nodeID)
        for sequence in 1...40 {
            // Every fifth of 25 records a detractor: 5 alerts per batch, batches alternating hubs.
            var records = factory.records(25)
            for index in stride(from: 0, to: records.count, by: 5) {
                records[index].scale = .nps
                records[index].score = 2
            }
            let connection = try await setup.connect(sequence % 2, identity)
            let result = try await connection.send(try sealer.seal(records, sequence: UInt64(sequence))).get()
            await connection.close()
            guard case .acknowledged = result else {
                Issue.record("batch \(sequence) refused: \(result)")
                continue
            }
        }
        #expect(try setup.count("SELECT COUNT(*) FROM alerts") == 200)
        func delivered() -> [String] {
            setup.receiver.received("manager").filter { $0.status == 204 }.compactMap { $0.headers["webhook-id"] }
        }
        #expect(await eventually(seconds: 60) { Set(delivered()).count == 200 }, "every alert delivered: \(Set(delivered()).count) of 200")
        try await Task.sleep(for: .seconds(1))
        #expect(try setup.count("SELECT COUNT(*) FROM alert_deliveries WHERE state = 'delivered'") == 200)
        #expect(try setup.count("SELECT COUNT(*) FROM alert_deliveries WHERE claimed_by IS NOT NULL") == 0, "no claim left behind")
        var perHub: [Int] = []
        var failed = 0
        for index in 0..<2 {
            perHub.append(await setup.metric(index, #"feedback_hub_alert_deliveries_total{outcome="delivered"}"#) ?? 0)
            failed += await setup.metric(index, #"feedback_hub_alert_deliveries_total{outcome="failed"}"#) ?? 0
        }
        // Each alert once, not once per hub. Delivery is at least once (Standard Webhooks: the
        // receiver dedupes by webhook-id): an attempt the receiver answered after the hub had
        // timed out is sent again, and the hub counted that attempt failed. So every 204 beyond
        // one per alert is one such failure beyond the 40 the receiver answered 500.
        #expect(failed >= 40, "the receiver's 40 refusals were counted: \(failed)")
        #expect(delivered().count - 200 <= failed - 40, "each alert delivered once, not once per hub: \(delivered().count) for 200, \(failed) failed")
        #expect(perHub.reduce(0, +) == 200, "deliveries counted by the hubs: \(perHub)")
        #expect(perHub.allSatisfy { $0 > 0 }, "both hubs delivered: \(perHub)")
        print("two hubs, one receiver: 200 alerts, \(setup.receiver.received("manager").count) requests, delivered per hub \(perHub)")
    }

    /// A key revoked through hub 1 is refused by hub 2 within about a second.
    @Test func aRevocationOnOneHubIsRefusedByTheOther() async throws {
        let setup = try await ScaleOut.make()
        defer { Task { try? await setup.stop() } }
        try await setup.start(0)
        try await setup.start(1)
        let identity = AgentIdentity.generate()
        try await setup.register(identity)
        #expect(await eventually { (try? await setup.connect(1, identity)) != nil })
        _ = try await CrashTests.runHub(["agents", "revoke", "--config", setup.hubs[0].config, identity.nodeID.uuidString])
        let revokedAt = ContinuousClock.now
        let refused = await eventually(seconds: 10) { (try? await setup.connect(1, identity)) == nil }
        let took = ContinuousClock.now - revokedAt
        #expect(refused, "hub 2 refused the revoked key")
        #expect(took < .seconds(5), "hub 2 refused it within seconds, took \(took)")
        print("revocation on hub 1 refused by hub 2 after \(took)")
    }

    /// PostgreSQL restarted for real while an agent sends: nothing it accepted is lost, and
    /// the hubs come back by themselves.
    @Test func aDatabaseRestartLosesNothingAndTheHubsRecover() async throws {
        guard let dataDir = ProcessInfo.processInfo.environment["FEEDBACK_TEST_POSTGRES_DIR"] else {
            Issue.record("FEEDBACK_TEST_POSTGRES_DIR is not set: this test restarts the server scripts/test.sh started")
            return
        }
        let setup = try await ScaleOut.make()
        defer { Task { try? await setup.stop() } }
        try await setup.start(0)
        let identity = AgentIdentity.generate()
        try await setup.register(identity)
        let sealer = BatchSealer(origin: identity.nodeID, signingKey: identity.signingKey)
        var factory = RecordFactory(origin: identity.nodeID)
        let batches = try (1...60).map { try sealer.seal(factory.records(100), sequence: UInt64($0)) }
        var acknowledged = Set<UInt64>()
        var restarted = false
        for batch in batches {
            // Each batch is sent until acknowledged, on a new connection after a refusal.
            let deadline = ContinuousClock.now + .seconds(90)
            while ContinuousClock.now < deadline {
                if let connection = try? await setup.connect(0, identity) {
                    if case .acknowledged? = try? await connection.send(batch).get() {
                        acknowledged.insert(batch.header.sequence)
                        await connection.close()
                        break
                    }
                    await connection.close()
                }
                try await Task.sleep(for: .milliseconds(200))
            }
            if batch.header.sequence == 20, !restarted {
                restarted = true
                let status = try await offThePool { try ScaleOut.runToExit("/bin/sh", [dataDir + "/restart.sh"]) }
                #expect(status == 0, "restart.sh exited \(status)")
            }
        }
        #expect(acknowledged.count == 60)
        #expect(try setup.count("SELECT COUNT(*) FROM records") == 6000)
        #expect(try setup.count("SELECT COUNT(*) FROM batches") == 60)
        #expect(await eventually { await setup.isReady(0) }, "the hub is ready again")
        #expect(setup.log(0).contains("the store answers again") || !setup.log(0).contains("the store does not answer"))
    }
}

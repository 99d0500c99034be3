import Agent
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import GRDB
import Hub
import NIOConcurrencyHelpers
import TestSupport
import Testing
import Wire

/// One node of a mesh under test: a real `feedback-agent run` process, as a relay (with a
/// listener) or a kiosk agent (with an HTTP intake to post ratings to).
final class MeshNode: @unchecked Sendable {
    let name: String
    let folder: String
    let identity: AgentIdentity
    /// The relay's listener port (relays), or 0.
    let relayPort: Int
    /// The HTTP intake port.
    let httpPort: Int
    var process: Process?
    var log: String { self.folder + "/agent.log" }
    var address: String { "127.0.0.1:\(self.relayPort)" }
    var intake: URL { URL(string: "http://127.0.0.1:\(self.httpPort)/v1/feedback")! }

    private init(name: String, folder: String, identity: AgentIdentity, relayPort: Int, httpPort: Int) {
        self.name = name
        self.folder = folder
        self.identity = identity
        self.relayPort = relayPort
        self.httpPort = httpPort
    }

    /// A relay registered at `hub`, listening on a free port, forwarding to `upstreams` (in
    /// order), with a server certificate from the hub's CA made by `feedback-hub certs relay`.
    static func relay(_ name: String, hub: HubHarness, upstreams: [String], spool: String = "", port: Int? = nil) async throws -> MeshNode {
        let folder = hub.folder.appendingPathComponent(name).path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let identity = AgentIdentity.generate()
        try identity.save(to: folder + "/agent.json")
        try hub.register(identity, role: .relay)
        let certs = try await CLIRun.run(
            CLIRun.hub,
            ["certs", "relay", "--hostname", "127.0.0.1", "--ca-certificate", hub.caPath,
             "--ca-key", hub.folder.appendingPathComponent("ca-key.pem").path, "--out", folder]
        )
        #expect(certs.status == 0, "certs relay: \(certs.output)")
        let node = MeshNode(name: name, folder: folder, identity: identity, relayPort: try port ?? CrashTests.freePort(), httpPort: try CrashTests.freePort())
        try node.write(upstreams: upstreams, ca: hub.caPath, spool: spool, relay: true)
        return node
    }

    /// A kiosk agent registered at `hub`, sending to `upstreams`.
    static func agent(_ name: String, hub: HubHarness, upstreams: [String]) throws -> MeshNode {
        let (folder, identity) = try hub.agentFolder(name)
        let node = MeshNode(name: name, folder: folder, identity: identity, relayPort: 0, httpPort: try CrashTests.freePort())
        try node.write(upstreams: upstreams, ca: hub.caPath, spool: "", relay: false)
        return node
    }

    func write(upstreams: [String], ca: String, spool: String, relay: Bool) throws {
        var config = """
            identity: agent.json
            hubs: [\(upstreams.map { "\"\($0)\"" }.joined(separator: ", "))]
            ca: \(ca)
            spool: {directory: spool, fsync: "5"\(spool)}
            batch: {maxRecords: 50, maxAgeMs: 20}
            http: {listen: "127.0.0.1:\(self.httpPort)"}
            drainTimeoutMs: 2000

            """
        if relay {
            config += """
                relay:
                  listen: "\(self.address)"
                  certificate: relay.pem
                  privateKey: relay-key.pem
                  limits: {handshakeTimeoutMs: 5000, idleTimeoutMs: 30000, drainTimeoutMs: 2000}

                """
        }
        try config.write(toFile: self.folder + "/agent.yaml", atomically: true, encoding: .utf8)
    }

    /// Starts the process and waits until its intake answers.
    func start() async throws {
        self.process = try launch(AgentProcessTests.binary, ["run", "--config", self.folder + "/agent.yaml", "--log-level", "info"], log: self.log)
        let health = URL(string: "http://127.0.0.1:\(self.httpPort)/healthz")!
        let up = await eventually { (try? await URLSession.shared.data(from: health)) != nil }
        #expect(up, "\(self.name) came up (log: \(self.logText.suffix(2000)))")
    }

    func kill(_ signal: Int32 = SIGKILL) async {
        guard let process = self.process, process.isRunning else { return }
        Foundation.kill(process.processIdentifier, signal)
        await waitForExit(process)
    }

    var logText: String { (try? String(contentsOfFile: self.log, encoding: .utf8)) ?? "" }

    /// Posts `count` NPS ratings (every third one negative) in requests of 10; returns the
    /// ids the intake accepted.
    func post(_ count: Int, site: String = "branch-1") async -> [String] {
        var ids: [String] = []
        for start in stride(from: 0, to: count, by: 10) {
            let body = "[" + (start..<min(start + 10, count)).map { #"{"source":"api","scale":"nps","score":\#($0 % 3 == 0 ? 2 : 9),"site":"\#(site)"}"# }
                .joined(separator: ",") + "]"
            if let accepted = await AgentProcessTests.post(self.intake, Data(body.utf8), timeout: 10) { ids += accepted }
        }
        return ids
    }
}

extension HubHarness {
    /// Stored record ids (lower-case hex, no dashes) with how many times each is stored, and
    /// the origin each is stored under.
    func storedRecords() throws -> [String: (count: Int, origin: String)] {
        let rows = try self.hub.sqlite.read { db in
            try Row.fetchAll(db, sql: "SELECT lower(hex(id)) AS id, lower(hex(origin)) AS origin FROM records")
        }
        var stored: [String: (count: Int, origin: String)] = [:]
        for row in rows {
            let id: String = row["id"]
            stored[id] = ((stored[id]?.count ?? 0) + 1, row["origin"])
        }
        return stored
    }

    /// Waits (bounded) until every id in `ids` is stored; then checks each is stored once
    /// and under `origin`.
    func expectStoredOnce(_ ids: [String], origin: AgentIdentity, seconds: Double = 60, _ what: String) async throws {
        let wanted = ids.map { $0.replacingOccurrences(of: "-", with: "").lowercased() }
        let arrived = try await eventually(seconds: seconds) {
            let stored = try self.storedRecords()
            return wanted.allSatisfy { stored[$0] != nil }
        }
        let stored = try self.storedRecords()
        #expect(arrived, "\(what): \(wanted.filter { stored[$0] == nil }.count) of \(wanted.count) ratings never reached the hub")
        let originHex = origin.nodeID.uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        #expect(wanted.allSatisfy { stored[$0].map { $0.count == 1 && $0.origin == originHex } ?? true }, "\(what): stored once, under the kiosk's origin")
        // No batch re-sealed or stored twice: every committed batch stored all its records.
        let partial = try self.hub.sqlite.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM batches WHERE stored_records != record_count") ?? -1 }
        #expect(partial == 0, "\(what): no batch's records arrived in another batch")
    }
}

/// Relays as real processes between real agents and a real hub (docs/MESH.md).
@Suite(.serialized) struct RelayTests {
    @Test func threeKiosksThroughABranchRelayAreStoredOnceUnderTheirOwnOrigins() async throws {
        let hub = try await HubHarness.start()
        let relay = try await MeshNode.relay("branch", hub: hub, upstreams: ["127.0.0.1:\(hub.port)"])
        try await relay.start()
        let kiosks = try (1...3).map { try MeshNode.agent("kiosk-\($0)", hub: hub, upstreams: [relay.address]) }
        for kiosk in kiosks { try await kiosk.start() }
        defer { for node in [relay] + kiosks { if let process = node.process, process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) } } }

        var posted: [(MeshNode, [String])] = []
        for kiosk in kiosks { posted.append((kiosk, await kiosk.post(200))) }
        for (kiosk, ids) in posted {
            #expect(ids.count == 200, "\(kiosk.name) accepted every rating")
            try await hub.expectStoredOnce(ids, origin: kiosk.identity, "\(kiosk.name) through the relay")
        }
        // The kiosks only ever talked to the relay.
        #expect(kiosks.allSatisfy { $0.logText.contains(relay.address) && !$0.logText.contains("127.0.0.1:\(hub.port)") })
        // Their STATUS reports travelled through it too: the hub keeps each, via the relay,
        // and the relay's own.
        let reported = try await eventually {
            let fleet = try hub.hub.store.fleet()
            let viaRelay = kiosks.allSatisfy { kiosk in
                fleet.first { $0.node.nodeID == kiosk.identity.nodeID }?.status?.via == relay.identity.nodeID
            }
            let relayReport = fleet.first { $0.node.nodeID == relay.identity.nodeID }?.status?.status
            return viaRelay && relayReport?.role == "relay"
        }
        #expect(reported, "every kiosk's status reached the hub through the relay")
        for node in kiosks + [relay] { await node.kill(SIGTERM) }
        try await hub.stopAndRemove()
    }

    @Test func aRelayChainOfTwoHopsDeliversOnceAndTheHubChecksTheOriginsSignature() async throws {
        let hub = try await HubHarness.start()
        let region = try await MeshNode.relay("region", hub: hub, upstreams: ["127.0.0.1:\(hub.port)"])
        try await region.start()
        let branch = try await MeshNode.relay("branch", hub: hub, upstreams: [region.address])
        try await branch.start()
        let kiosk = try MeshNode.agent("kiosk", hub: hub, upstreams: [branch.address])
        try await kiosk.start()
        defer { for node in [region, branch, kiosk] { if let process = node.process, process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) } } }

        let ids = await kiosk.post(300)
        #expect(ids.count == 300)
        try await hub.expectStoredOnce(ids, origin: kiosk.identity, "kiosk → branch → region → hub")
        for node in [kiosk, branch, region] { await node.kill(SIGTERM) }
        try await hub.stopAndRemove()
    }

    @Test func aRelayKilledMidStreamLosesNothingAndDuplicatesNothing() async throws {
        let hub = try await HubHarness.start()
        let relay = try await MeshNode.relay("branch", hub: hub, upstreams: ["127.0.0.1:\(hub.port)"])
        try await relay.start()
        let kiosk = try MeshNode.agent("kiosk", hub: hub, upstreams: [relay.address])
        try await kiosk.start()
        defer { for node in [relay, kiosk] { if let process = node.process, process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) } } }

        let accepted = NIOLockedValueBox<[String]>([])
        let posting = Task {
            for _ in 0..<30 {
                let ids = await kiosk.post(20)
                accepted.withLockedValue { $0 += ids }
            }
        }
        _ = await eventually { accepted.withLockedValue { $0.count } >= 150 }
        await relay.kill(SIGKILL)
        try await Task.sleep(for: .milliseconds(300))
        try await relay.start()
        await posting.value
        let ids = accepted.withLockedValue { $0 }
        #expect(ids.count == 600, "the kiosk kept taking ratings while its relay was down")
        try await hub.expectStoredOnce(ids, origin: kiosk.identity, "through a relay killed with SIGKILL and restarted")
        for node in [kiosk, relay] { await node.kill(SIGTERM) }
        try await hub.stopAndRemove()
    }

    @Test func aForgedBatchIsRefusedAtTheRelayAndNeverReachesTheHub() async throws {
        let hub = try await HubHarness.start()
        let relay = try await MeshNode.relay("branch", hub: hub, upstreams: ["127.0.0.1:\(hub.port)"])
        try await relay.start()
        defer { if let process = relay.process, process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) } }
        let (_, agent) = try hub.agentFolder("kiosk")
        // The relay learns the agent's key from the hub's REGISTRY.
        let tls = try HubConnection.tlsContext(trusting: hub.caPath)
        let connection = try await eventuallyConnected { try await HubConnection.connect(host: "127.0.0.1", port: relay.relayPort, tls: tls, identity: agent) }
        // A batch of the agent's origin sealed with another key, and one whose signature was
        // made up: both refused at the edge.
        let otherKey = try BatchSealer(origin: agent.nodeID, signingKey: AgentIdentity.generate().signingKey)
            .seal([Samples.kioskRecord(origin: agent.nodeID)], sequence: 1)
        var bytes = try BatchSealer(origin: agent.nodeID, signingKey: agent.signingKey).seal([Samples.kioskRecord(origin: agent.nodeID)], sequence: 1).bytes
        bytes.setInteger(bytes.getInteger(at: bytes.writerIndex - 1, as: UInt8.self)! ^ 1, at: bytes.writerIndex - 1)
        let forged = try SealedBatch(parsing: bytes)
        // A key the relay does not know is refused for now (the hub's registry may be ahead of
        // the relay's); a signature that does not verify under the known key, for good.
        for (batch, code, disposition) in [(otherKey, RejectCode.unknownKey, Reject.Disposition.retryable), (forged, .badSignature, .permanent)] {
            guard case .rejected(let reject) = try await connection.send(batch).get() else {
                Issue.record("the relay took a forged batch")
                return
            }
            #expect(reject.code == code && reject.disposition == disposition)
        }
        // A good one goes through, so the forged one was refused for its signature alone.
        let good = try BatchSealer(origin: agent.nodeID, signingKey: agent.signingKey).seal([Samples.kioskRecord(1, origin: agent.nodeID)], sequence: 2)
        guard case .acknowledged = try await connection.send(good).get() else {
            Issue.record("the relay refused a good batch")
            return
        }
        let arrived = try await eventually { try hub.hub.store.isCommitted(BatchKey(origin: agent.nodeID, sequence: 2)) }
        #expect(arrived)
        #expect(try !hub.hub.store.isCommitted(BatchKey(origin: agent.nodeID, sequence: 1)), "the forged batch never reached the hub")
        await connection.close()
        await relay.kill(SIGTERM)
        try await hub.stopAndRemove()
    }

    @Test func aRelayThatAltersABatchIsCaughtByTheHub() async throws {
        let hub = try await HubHarness.start()
        let relay = AgentIdentity.generate()
        try hub.register(relay, role: .relay)
        let (_, agent) = try hub.agentFolder("kiosk")
        let connection = try await hub.connect(relay, role: .relay)
        let sealed = try BatchSealer(origin: agent.nodeID, signingKey: agent.signingKey).seal([Samples.kioskRecord(origin: agent.nodeID)], sequence: 1)
        var bytes = sealed.bytes
        // One byte of the compressed payload changed on the way.
        let at = bytes.readerIndex + BatchHeader.length + 3
        bytes.setInteger(bytes.getInteger(at: at, as: UInt8.self)! ^ 0x40, at: at)
        let altered = try SealedBatch(parsing: bytes)
        guard case .rejected(let reject) = try await connection.send(altered, path: []).get() else {
            Issue.record("the hub stored an altered batch")
            return
        }
        #expect(reject.code == .badSignature)
        #expect(try hub.recordCount == 0)
        await connection.close()
        try await hub.stopAndRemove()
    }

    @Test func aRingOfRelaysIsRefusedWithTheLoopNamedAndNoBatchCirculates() async throws {
        let hub = try await HubHarness.start()
        let hubAddress = "127.0.0.1:\(hub.port)"
        let a = try await MeshNode.relay("relay-a", hub: hub, upstreams: [hubAddress])
        let b = try await MeshNode.relay("relay-b", hub: hub, upstreams: [hubAddress])
        let kiosk = try MeshNode.agent("kiosk", hub: hub, upstreams: [a.address])
        defer { for node in [a, b, kiosk] { if let process = node.process, process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) } } }
        // Each relay first gets the registry from the hub (kept on disk), then the two are
        // misconfigured into a ring: A forwards to B and B to A.
        for relay in [a, b] {
            try await relay.start()
            #expect(await eventually { FileManager.default.fileExists(atPath: relay.folder + "/spool/registry") })
            await relay.kill(SIGTERM)
        }
        try a.write(upstreams: [b.address], ca: hub.caPath, spool: "", relay: true)
        try b.write(upstreams: [a.address], ca: hub.caPath, spool: "", relay: true)
        try await a.start()
        try await b.start()
        try await kiosk.start()
        let ids = await kiosk.post(20)
        #expect(ids.count == 20)
        // The batch goes A → B and is refused when B passes it back: A names the ring.
        let named = await eventually(seconds: 30) { b.logText.contains("loopDetected") }
        #expect(named, "relay B logs that its upstream refused the loop")
        let path = "\(a.identity.nodeID) → \(b.identity.nodeID) → \(a.identity.nodeID)"
        #expect(b.logText.contains(path) || a.logText.contains(path), "the log names the ring: \(path)")
        // Refused, not run: after a few seconds it is still held once at B and never reached a hub.
        try await Task.sleep(for: .seconds(2))
        let refusals = a.logText.components(separatedBy: "loopDetected").count - 1
        // B says so once per batch it holds: the kiosk's detractors are sealed at once, so its
        // two posts may make two batches.
        let batches = max(1, b.logText.components(separatedBy: "upstream refused the mesh path").count - 1)
        #expect(refusals >= 1 && refusals <= 10 * batches, "each try of each of \(batches) batches is refused once at A, with backoff (\(refusals))")
        #expect(try hub.recordCount == 0)
        for node in [kiosk, a, b] { await node.kill(SIGTERM) }
        try await hub.stopAndRemove()
    }

    @Test func agentsFailOverFromADeadRelayToTheHubAndRelaysPickUpRevocations() async throws {
        let hub = try await HubHarness.start()
        let relay = try await MeshNode.relay("branch", hub: hub, upstreams: ["127.0.0.1:\(hub.port)"])
        try await relay.start()
        // The kiosk prefers the relay and falls back to the hub directly.
        let kiosk = try MeshNode.agent("kiosk", hub: hub, upstreams: [relay.address, "127.0.0.1:\(hub.port)"])
        try await kiosk.start()
        defer { for node in [relay, kiosk] { if let process = node.process, process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) } } }
        let first = await kiosk.post(50)
        try await hub.expectStoredOnce(first, origin: kiosk.identity, "through the relay")
        await relay.kill(SIGKILL)
        let second = await kiosk.post(50)
        try await hub.expectStoredOnce(second, origin: kiosk.identity, "straight to the hub while the relay is down")
        #expect(kiosk.logText.contains("127.0.0.1:\(hub.port)"), "the kiosk went to its fallback")

        // A revocation at the hub reaches the relay in its REGISTRY within seconds: the
        // revoked kiosk is refused there too.
        try await relay.start()
        let connected = await eventually { relay.logText.contains("relay registry") }
        #expect(connected)
        await kiosk.kill(SIGTERM)
        _ = try hub.hub.store.revokeNode(kiosk.identity.nodeID, at: 0)
        let tls = try HubConnection.tlsContext(trusting: hub.caPath)
        let refused = await eventually(seconds: 15) {
            do {
                let connection = try await HubConnection.connect(host: "127.0.0.1", port: relay.relayPort, tls: tls, identity: kiosk.identity)
                await connection.close()
                return false
            } catch let error as ConnectionError {
                return error.reject?.code == .revokedKey
            } catch {
                return false
            }
        }
        #expect(refused, "the relay refuses a node the hub revoked")
        await relay.kill(SIGTERM)
        try await hub.stopAndRemove()
    }

    @Test func aKioskThatReachesOnlyARelayEnrollsThroughItWithItsToken() async throws {
        let hub = try await HubHarness.start()
        let region = try await MeshNode.relay("region", hub: hub, upstreams: ["127.0.0.1:\(hub.port)"])
        try await region.start()
        let branch = try await MeshNode.relay("branch", hub: hub, upstreams: [region.address])
        try await branch.start()
        defer { for node in [region, branch] { if let process = node.process, process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) } } }
        let token = "fmt_relayenroll\(UInt32.random(in: 0...UInt32.max))"
        try hub.hub.store.addEnrollmentToken(
            hash: NodeRegistry.tokenHash(token), sites: try SiteScope(["branch-042"]), role: .agent, createdAt: 0, expiresAt: .max
        )
        let kiosk = AgentIdentity.generate()
        let tls = try HubConnection.tlsContext(trusting: hub.caPath)
        // Two hops from the hub: the branch relay carries the token to the region, which
        // carries it to the hub; the kiosk is welcomed once the hub redeemed it.
        let connection = try await eventuallyConnected {
            try await HubConnection.connect(host: "127.0.0.1", port: branch.relayPort, tls: tls, identity: kiosk, enrollmentToken: token)
        }
        let registered = try #require(hub.hub.registry.node(kiosk.nodeID), "the hub registered the kiosk")
        #expect(registered.sites == (try SiteScope(["branch-042"])) && registered.role == .agent)
        let batch = try BatchSealer(origin: kiosk.nodeID, signingKey: kiosk.signingKey).seal([Samples.kioskRecord(origin: kiosk.nodeID)], sequence: 1)
        guard case .acknowledged = try await connection.send(batch).get() else {
            Issue.record("the relay refused the newly enrolled kiosk's batch")
            return
        }
        #expect(try await eventually { try hub.hub.store.isCommitted(batch.key) })
        await connection.close()
        // The token is spent: a second node with it is refused, for good, with the hub's reason.
        do {
            _ = try await HubConnection.connect(host: "127.0.0.1", port: branch.relayPort, tls: tls, identity: AgentIdentity.generate(), enrollmentToken: token)
            Issue.record("a used token enrolled a second node")
        } catch let error as ConnectionError {
            #expect(error.reject?.code == .enrollmentRefused && error.reject?.disposition == .permanent)
        }
        for node in [branch, region] { await node.kill(SIGTERM) }
        try await hub.stopAndRemove()
    }

    /// Connects, retrying while the relay has not received the registry yet (a retryable
    /// refusal right after it starts).
    private func eventuallyConnected(_ connect: @escaping @Sendable () async throws -> HubConnection) async throws -> HubConnection {
        var lastError: (any Error)?
        for _ in 0..<100 {
            do { return try await connect() } catch {
                lastError = error
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        throw lastError!
    }
}

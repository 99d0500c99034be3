import Agent
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Hub
import TestSupport
import Testing
import Wire

/// A real `feedback-hub` process under connection floods: half-open connections that never
/// start TLS on the ingest port, and slow HTTP clients on the operations port. The attackers
/// use other loopback source addresses than the agents, as they would on a real network.
@Suite(.serialized) struct ConnectionFloodTests {
    struct RunningHub {
        var process: Process
        var folder: URL
        var config: String
        var ca: String
        var port: Int
        var httpPort: Int

        func stop() {
            kill(self.process.processIdentifier, SIGKILL)
            self.process.waitUntilExit()
            try? FileManager.default.removeItem(at: self.folder)
        }
    }

    private func hubCommand(_ arguments: [String]) async throws -> String {
        try await CrashTests.runHub(arguments)
    }

    /// `init`, then `serve` with a handshake timeout of `handshakeMs` and the operations
    /// port's header timeout of `headerMs`; with `fileLimit`, under that open-file limit.
    private func startHub(handshakeMs: Int, headerMs: Int, fileLimit: Int? = nil) async throws -> RunningHub {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("flood-\(UUID())")
        let port = try CrashTests.freePort()
        let httpPort = try CrashTests.freePort()
        _ = try await self.hubCommand(["init", folder.path, "--listen", "127.0.0.1:\(port)", "--http", "127.0.0.1:\(httpPort)"])
        let config = folder.appendingPathComponent("hub.yaml").path
        var yaml = try String(contentsOfFile: config, encoding: .utf8)
        yaml = yaml.replacingOccurrences(of: "handshakeTimeoutMs: 10000", with: "handshakeTimeoutMs: \(handshakeMs)")
        yaml = yaml.replacingOccurrences(of: "headerTimeoutMs: 10000", with: "headerTimeoutMs: \(headerMs)")
        try yaml.write(toFile: config, atomically: true, encoding: .utf8)
        let log = folder.appendingPathComponent("hub.log").path
        let serve = "exec '\(CrashTests.binary)' serve --config '\(config)' --log-level warning"
        let process = try launch("/bin/sh", ["-c", fileLimit.map { "ulimit -n \($0) && \(serve)" } ?? serve], log: log)
        let hub = RunningHub(
            process: process, folder: folder, config: config, ca: folder.appendingPathComponent("ca.pem").path, port: port,
            httpPort: httpPort
        )
        guard await eventually({ (try? await self.readiness(hub)) == 200 }) else {
            hub.stop()
            throw StoreError("the hub did not become ready")
        }
        return hub
    }

    private func readiness(_ hub: RunningHub) async throws -> Int? {
        let port = hub.httpPort
        return try await offThePool { Self.probe(port) }
    }

    private static func probe(_ httpPort: Int) -> Int? {
        // A plain blocking request with a short timeout: what a load balancer's probe does.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(httpPort).bigEndian)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Foundation.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return nil }
        let request = Array("GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
        guard send(fd, request, request.count, Int32(MSG_NOSIGNAL)) == request.count else { return nil }
        var response = [UInt8](repeating: 0, count: 512)
        let read = recv(fd, &response, response.count, 0)
        guard read > 12 else { return nil }
        return Int(String(decoding: response[9..<12], as: UTF8.self))
    }

    private func token(_ hub: RunningHub) async throws -> String {
        try await self.hubCommand(["agents", "token", "--config", hub.config, "--site", "branch-*"])
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Connects (enrolling with `token` if given), retrying refusals until `deadline`.
    private func connect(
        _ hub: RunningHub, _ identity: AgentIdentity, token: String = "", until deadline: ContinuousClock.Instant
    ) async throws -> HubConnection {
        var lastError: (any Error)?
        while ContinuousClock.now < deadline {
            do {
                return try await HubConnection.connect(
                    host: "127.0.0.1", port: hub.port, tls: try HubConnection.tlsContext(trusting: hub.ca), identity: identity,
                    enrollmentToken: token, handshakeTimeout: .seconds(2)
                )
            } catch {
                lastError = error
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        throw lastError ?? StoreError("no connection before the deadline")
    }

    private func sendOne(_ connection: HubConnection, _ identity: AgentIdentity, sequence: UInt64) async throws -> BatchResult {
        var factory = RecordFactory(origin: identity.nodeID)
        let batch = try BatchSealer(origin: identity.nodeID, signingKey: identity.signingKey).seal(factory.records(10), sequence: sequence)
        return try await connection.send(batch).get()
    }

    @Test func twoThousandIdleConnectionsLockNoAgentOutAndTheirMemoryReturns() async throws {
        let hub = try await self.startHub(handshakeMs: 4_000, headerMs: 10_000)
        defer { hub.stop() }
        let veteran = AgentIdentity.generate()
        _ = try await self.hubCommand([
            "agents", "add", "--config", hub.config, "--node-id", veteran.nodeID.uuidString, "--public-key", veteran.publicKeyBase64,
            "--site", "branch-*",
        ])
        let established = try await self.connect(hub, veteran, until: .now + .seconds(10))
        #expect(try await self.sendOne(established, veteran, sequence: 1) == .acknowledged(
            Ack(origin: veteran.nodeID, sequence: 1, status: .stored, storedRecords: 10)
        ))
        try await Task.sleep(for: .milliseconds(500))
        let baseline = try #require(residentMiB(of: hub.process.processIdentifier))

        // 2,000 TCP connections that never start TLS: half from one address, half spread
        // over 125 addresses (more than the handshake slots, fewer than the per-address cap each).
        // Three times: whether a flood leaves memory behind shows in what the next ones add.
        var after: [Double] = []
        let rounds = max(3, Int(ProcessInfo.processInfo.environment["FLOOD_ROUNDS"] ?? "") ?? 3)
        for round in 1...rounds {
            let flood = RawSockets()
            let port = hub.port
            try await offThePool {
                flood.open(1_000, from: ["127.0.0.2"], to: port)
                flood.open(1_000, from: (1...125).map { "127.0.3.\($0)" }, to: port)
            }
            #expect(flood.descriptors.count >= 1_900, "the kernel accepted the flood's connections")

            // A fresh agent enrolls and sends while the flood holds its connections open: the
            // flood's handshakes are evicted. (The bound is generous so that a busy machine does
            // not fail it; without eviction the agent would never get in.)
            let fresh = AgentIdentity.generate()
            let started = ContinuousClock.now
            let enrolled = try await self.connect(hub, fresh, token: try await self.token(hub), until: started + .seconds(30))
            #expect(try await self.sendOne(enrolled, fresh, sequence: 1) == .acknowledged(
                Ack(origin: fresh.nodeID, sequence: 1, status: .stored, storedRecords: 10)
            ))
            #expect(ContinuousClock.now - started < .seconds(30), "enrolled and acknowledged while the flood holds on")
            // The agent that was connected before keeps sending.
            let sequence = UInt64(round + 1)
            #expect(try await self.sendOne(established, veteran, sequence: sequence) == .acknowledged(
                Ack(origin: veteran.nodeID, sequence: sequence, status: .stored, storedRecords: 10)
            ))
            await enrolled.close()

            // Every flood connection is closed by the hub: at once (no slot), evicted, or at
            // its handshake deadline, whether or not TLS ever started.
            let allClosed = await eventually(seconds: 15) { flood.closedByPeer() == flood.descriptors.count }
            #expect(allClosed, "\(flood.closedByPeer()) of \(flood.descriptors.count) flood connections closed by the hub")
            flood.closeAll()
            try await Task.sleep(for: .seconds(1))
            after.append(try #require(residentMiB(of: hub.process.processIdentifier)))
        }
        // Freed memory is not all returned to the kernel: the allocator keeps what the first
        // floods fragmented, and that converges (measured over 8 floods: +9, +5, +2, +1.5, +1,
        // +0.8, +0.3, +0.3 MiB; a clean-clone CI run saw +6.0 for the third). A flood that
        // left its connections behind would add ~30 MiB each time (the issue measured 58 MiB
        // for 1,100 connections kept open): the bound is half of that.
        let rss = after.map { String(format: "%.1f", $0) }.joined(separator: ", ")
        print("flood: hub RSS \(String(format: "%.1f", baseline)) MiB before, after each flood \(rss) MiB")
        #expect(after[0] <= baseline + 32, "hub RSS \(baseline) MiB before, after each flood \(rss) MiB")
        #expect(after[2] - after[1] <= 15, "hub RSS \(baseline) MiB before, after each flood \(rss) MiB")
        let metrics = try await self.metrics(hub)
        #expect(metrics.contains(#"feedback_hub_connections_refused_total{reason="address_full"}"#))
        await established.close()
    }

    @Test func slowHTTPClientsStarveNeitherReadinessNorIngest() async throws {
        // An open-file limit near the flood's size: without caps, HTTP connections alone
        // would exhaust the hub's descriptors and starve both listeners.
        let hub = try await self.startHub(handshakeMs: 10_000, headerMs: 2_000, fileLimit: 1_100)
        defer { hub.stop() }
        let slow = RawSockets()
        let httpPort = hub.httpPort
        try await offThePool {
            slow.open(800, from: ["127.0.0.4"], to: httpPort)
            slow.open(300, from: (1...30).map { "127.0.4.\($0)" }, to: httpPort)
            // And more than its share from the probe's own address.
            slow.open(40, from: ["127.0.0.1"], to: httpPort)
        }
        #expect(slow.descriptors.count >= 1_000)
        slow.send(Array("GET /readyz HTTP/1.1\r\n".utf8))

        // While they trickle a header byte every half second, the probe and an agent get through.
        let trickle = Task {
            while !Task.isCancelled {
                slow.send(Array("X".utf8))
                try? await Task.sleep(for: .milliseconds(500))
            }
        }
        defer { trickle.cancel() }
        // With every slot held by a slow client, a probe takes the slot of the one that has
        // waited longest for its request head; a probe retries as load balancers do.
        #expect(await eventually(seconds: 3) { (try? await self.readiness(hub)) == 200 }, "/readyz answers during the flood")
        let identity = AgentIdentity.generate()
        let token = try await self.token(hub)
        let connection = try await self.connect(hub, identity, token: token, until: .now + .seconds(10))
        #expect(try await self.sendOne(connection, identity, sequence: 1) == .acknowledged(
            Ack(origin: identity.nodeID, sequence: 1, status: .stored, storedRecords: 10)
        ))
        // Trickling bytes does not keep a connection past the header timeout.
        let allClosed = await eventually(seconds: 10) { slow.closedByPeer() == slow.descriptors.count }
        #expect(allClosed, "\(slow.closedByPeer()) of \(slow.descriptors.count) slow HTTP clients closed by the hub")
        #expect(try await self.readiness(hub) == 200)
        let metrics = try await self.metrics(hub)
        for reason in ["address_full", "header_timeout"] {
            #expect(metrics.contains(#"feedback_hub_http_connections_closed_total{reason="\#(reason)"}"#), "\(reason)")
        }
        await connection.close()
    }

    private func metrics(_ hub: RunningHub) async throws -> String {
        let (data, _) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(hub.httpPort)/metrics")!)
        return String(decoding: data, as: UTF8.self)
    }
}

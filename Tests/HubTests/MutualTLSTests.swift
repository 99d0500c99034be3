import Agent
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Hub
import TestSupport
import Testing
import Wire

/// Mutual TLS end to end, with the real binaries: a hub that requires client certificates
/// (`tls.clientCA`), certificates issued by `feedback-hub certs client`, and stock agents
/// (`feedback-agent enroll` and `run`) presenting them.
@Suite(.serialized) struct MutualTLSTests {
    static let hubBinary = CrashTests.root.appendingPathComponent(".build/debug/feedback-hub").path
    static let agentBinary = CrashTests.root.appendingPathComponent(".build/debug/feedback-agent").path

    /// A hub whose client CA is its own CA (what OPERATIONS.md tells operators to set).
    private func mutualHub() async throws -> HubHarness {
        try await HubHarness.start(adjust: { configuration in
            let folder = URL(fileURLWithPath: configuration.tls.certificate).deletingLastPathComponent()
            configuration.tls.clientCA = folder.appendingPathComponent("ca.pem").path
        })
    }

    /// Issues client certificates with the real command, from the CA in `caFolder`.
    private func issue(_ nodeIDs: [UUID], caFolder: URL, out: String, extra: [String] = []) async throws -> (status: Int32, output: String) {
        try await runToEnd(
            Self.hubBinary,
            ["certs", "client", "--ca-certificate", caFolder.appendingPathComponent("ca.pem").path,
             "--ca-key", caFolder.appendingPathComponent("ca-key.pem").path, "--out", out]
                + nodeIDs.flatMap { ["--node-id", $0.uuidString] } + extra
        )
    }

    /// A mutual-TLS hub, and a kiosk folder with a new identity (`agent.json`) and a token.
    private func mutualHubAndKiosk() async throws -> (HubHarness, String, AgentIdentity, String) {
        let hub = try await self.mutualHub()
        let folder = hub.folder.appendingPathComponent("kiosk").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let identity = AgentIdentity.generate()
        try identity.save(to: folder + "/agent.json")
        return (hub, folder, identity, try self.token(hub))
    }

    private func token(_ hub: HubHarness) throws -> String {
        let token = EnrollmentToken.generate()
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        try hub.hub.store.addEnrollmentToken(
            hash: NodeRegistry.tokenHash(token), sites: .any, role: .agent, createdAt: now, expiresAt: now + 3_600_000
        )
        return token
    }

    private func enroll(_ hub: HubHarness, identity: String, token: String, certificate: (String, String)?) async throws -> (status: Int32, output: String) {
        var arguments = ["enroll", "--identity", identity, "--hub", "127.0.0.1:\(hub.port)", "--ca", hub.caPath, "--token", token]
        if let (certificate, key) = certificate {
            arguments += ["--client-certificate", certificate, "--client-key", key]
        }
        return try await runToEnd(Self.agentBinary, arguments)
    }

    private func isRegistered(_ hub: HubHarness, _ nodeID: UUID) throws -> Bool {
        try hub.hub.store.nodes().contains { $0.nodeID == nodeID }
    }

    @Test func anAgentWithAClientCertificateFromTheHubsCAEnrollsAndItsRatingsAreStored() async throws {
        #expect(FileManager.default.fileExists(atPath: Self.agentBinary), "build first: swift build --build-tests")
        let (hub, folder, identity, token) = try await self.mutualHubAndKiosk()

        // A stock agent with no client certificate, and one whose certificate comes from
        // another CA, are refused at the TLS handshake: nothing registered, token unspent.
        let noCertificate = try await self.enroll(hub, identity: folder + "/agent.json", token: token, certificate: nil)
        #expect(noCertificate.status != 0, "\(noCertificate.output)")
        let otherCA = hub.folder.appendingPathComponent("other-ca")
        try FileManager.default.createDirectory(at: otherCA, withIntermediateDirectories: true)
        let other = try HubCertificates.make(hostnames: ["localhost"])
        try other.caCertificate.write(to: otherCA.appendingPathComponent("ca.pem"), atomically: true, encoding: .utf8)
        try other.caPrivateKey.write(to: otherCA.appendingPathComponent("ca-key.pem"), atomically: true, encoding: .utf8)
        let foreign = try await self.issue([identity.nodeID], caFolder: otherCA, out: otherCA.appendingPathComponent("issued").path)
        #expect(foreign.status == 0, "\(foreign.output)")
        let foreignFiles = (otherCA.path + "/issued/\(identity.nodeID).pem", otherCA.path + "/issued/\(identity.nodeID)-key.pem")
        let withForeign = try await self.enroll(hub, identity: folder + "/agent.json", token: token, certificate: foreignFiles)
        #expect(withForeign.status != 0, "\(withForeign.output)")
        #expect(try !self.isRegistered(hub, identity.nodeID))

        // The hub's own CA issues this node's certificate; the key file is 0600.
        let issued = try await self.issue([identity.nodeID], caFolder: hub.folder, out: folder + "/certs")
        #expect(issued.status == 0, "\(issued.output)")
        let certificate = folder + "/certs/\(identity.nodeID).pem"
        let key = folder + "/certs/\(identity.nodeID)-key.pem"
        let mode = try FileManager.default.attributesOfItem(atPath: key)[.posixPermissions] as? Int
        #expect(mode == 0o600)

        // A key that is not the certificate's is named before anything connects.
        let mismatched = try await self.enroll(hub, identity: folder + "/agent.json", token: token, certificate: (certificate, foreignFiles.1))
        #expect(mismatched.status != 0)
        #expect(mismatched.output.contains(foreignFiles.1) && mismatched.output.contains("is not the key of"), "\(mismatched.output)")

        let enrolled = try await self.enroll(hub, identity: folder + "/agent.json", token: token, certificate: (certificate, key))
        #expect(enrolled.status == 0, "\(enrolled.output)")
        #expect(try self.isRegistered(hub, identity.nodeID))

        // `run` with the certificate in agent.yaml forwards what its HTTP intake takes.
        let httpPort = try CrashTests.freePort()
        try """
            identity: agent.json
            hubs: ["127.0.0.1:\(hub.port)"]
            ca: \(hub.caPath)
            clientCertificate: certs/\(identity.nodeID).pem
            clientKey: certs/\(identity.nodeID)-key.pem
            spool: {directory: spool, fsync: "5"}
            batch: {maxRecords: 50, maxAgeMs: 20}
            http: {listen: "127.0.0.1:\(httpPort)"}
            """.write(toFile: folder + "/agent.yaml", atomically: true, encoding: .utf8)
        let agent = try launch(Self.agentBinary, ["run", "--config", folder + "/agent.yaml"], log: folder + "/agent.log")
        defer { if agent.isRunning { kill(agent.processIdentifier, SIGKILL) } }
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(httpPort)/v1/feedback")!)
        request.httpMethod = "POST"
        request.httpBody = Data(#"[{"source":"kiosk","scale":"smiley","score":1,"site":"branch-1"},{"source":"kiosk","scale":"smiley","score":4,"site":"branch-1"}]"#.utf8)
        var accepted = false
        for _ in 0..<200 where !accepted {
            if let (_, response) = try? await URLSession.shared.data(for: request), (response as? HTTPURLResponse)?.statusCode == 202 {
                accepted = true
            } else {
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        #expect(accepted, "the agent's intake took the ratings")
        let stored = try await eventually { try hub.recordCount == 2 }
        let log = (try? String(contentsOfFile: folder + "/agent.log", encoding: .utf8)) ?? ""
        #expect(stored, "the ratings reached the hub over mutual TLS; agent log:\n\(log)")
        kill(agent.processIdentifier, SIGTERM)
        await waitForExit(agent)
        try await hub.stopAndRemove()
    }

    @Test func aClientCertificateIssuedForAnotherNodeIsRefusedBeforeTheTokenIsSpent() async throws {
        let (hub, folder, identity, token) = try await self.mutualHubAndKiosk()
        let neighbour = UUID()
        let issued = try await self.issue([neighbour, identity.nodeID], caFolder: hub.folder, out: folder + "/certs")
        #expect(issued.status == 0, "\(issued.output)")

        let borrowed = try await self.enroll(
            hub, identity: folder + "/agent.json", token: token,
            certificate: (folder + "/certs/\(neighbour).pem", folder + "/certs/\(neighbour)-key.pem")
        )
        #expect(borrowed.status != 0, "\(borrowed.output)")
        #expect(borrowed.output.contains("unknownKey"), "\(borrowed.output)")
        #expect(borrowed.output.contains(neighbour.uuidString), "the refusal names the node the certificate is for: \(borrowed.output)")
        #expect(try !self.isRegistered(hub, identity.nodeID))

        let own = try await self.enroll(
            hub, identity: folder + "/agent.json", token: token,
            certificate: (folder + "/certs/\(identity.nodeID).pem", folder + "/certs/\(identity.nodeID)-key.pem")
        )
        #expect(own.status == 0, "the token was not spent by the refused attempt: \(own.output)")
        try await hub.stopAndRemove()
    }

    @Test func certsClientRefusesBadInputWithOneLineAndNeverOverwritesAKey() async throws {
        let hub = try await HubHarness.start()
        let out = hub.folder.appendingPathComponent("issued").path
        let node = UUID()

        let badID = try await runToEnd(
            Self.hubBinary,
            ["certs", "client", "--ca-certificate", hub.caPath, "--ca-key", hub.folder.appendingPathComponent("ca-key.pem").path,
             "--node-id", "kiosk-7", "--out", out]
        )
        #expect(badID.status != 0)
        #expect(badID.output.contains("kiosk-7"), "\(badID.output)")

        let tooLong = try await self.issue([node], caFolder: hub.folder, out: out, extra: ["--days", "100000"])
        #expect(tooLong.status != 0)
        #expect(tooLong.output.contains("--days"), "\(tooLong.output)")

        let wrongKey = hub.folder.appendingPathComponent("wrong-key")
        try FileManager.default.createDirectory(at: wrongKey, withIntermediateDirectories: true)
        let other = try HubCertificates.make(hostnames: ["localhost"])
        try FileManager.default.copyItem(atPath: hub.caPath, toPath: wrongKey.appendingPathComponent("ca.pem").path)
        try other.caPrivateKey.write(to: wrongKey.appendingPathComponent("ca-key.pem"), atomically: true, encoding: .utf8)
        let mismatch = try await self.issue([node], caFolder: wrongKey, out: out)
        #expect(mismatch.status != 0)
        #expect(mismatch.output.contains("does not match"), "\(mismatch.output)")

        let first = try await self.issue([node], caFolder: hub.folder, out: out)
        #expect(first.status == 0, "\(first.output)")
        let key = try String(contentsOfFile: out + "/\(node)-key.pem", encoding: .utf8)
        let again = try await self.issue([node], caFolder: hub.folder, out: out)
        #expect(again.status != 0)
        #expect(again.output.contains("--force"), "\(again.output)")
        #expect(try String(contentsOfFile: out + "/\(node)-key.pem", encoding: .utf8) == key)
        for result in [badID, tooLong, mismatch, again] {
            #expect(result.output.split(separator: "\n").count == 1, "one line: \(result.output)")
        }
        try await hub.stopAndRemove()
    }
}

import Agent
import Foundation
import Hub
import TestSupport
import Testing

/// Issue 12 item 5: hub.yaml, alerts.yaml and agent.yaml written to hurt (alias bombs,
/// millions of keys, huge values, duplicate keys beside a secret) fail fast, with one short
/// line that quotes no secret — through each loader and through the real commands.
@Suite struct HostileConfigTests {
    /// One kind of configuration file: a valid beginning and its loader.
    struct Kind: Sendable, CustomStringConvertible {
        var name: String
        var prefix: String
        /// A setting whose bad value the loader's error would quote.
        var echoedKey: String
        /// A duplicate key beside a secret.
        var duplicate: String
        var load: @Sendable (String) throws -> Void

        var description: String { self.name }
    }

    static let kinds: [Kind] = [
        Kind(
            name: "hub.yaml",
            prefix: "hubId: \(UUID())\ntls: {certificate: a.pem, privateKey: b.pem}\n",
            echoedKey: "listen",
            duplicate: "hubId: \(UUID())\ntls:\n  certificate: a.pem\n  privateKey: \(HostileYAML.secret)\n  certificate: b.pem\n",
            load: { _ = try HubConfiguration.load(from: $0) }
        ),
        Kind(
            name: "alerts.yaml",
            prefix: "targets:\n  boss: {url: \"http://127.0.0.1:9/boss\"}\n",
            echoedKey: "delivery:\n  firstRetry",
            duplicate: "targets:\n  boss:\n    url: \"http://127.0.0.1:9/boss\"\n    secret: \"\(HostileYAML.secret)\"\n    url: \"http://127.0.0.1:9/other\"\n",
            load: { _ = try AlertRules.load(from: $0) }
        ),
        Kind(
            name: "agent.yaml",
            prefix: "identity: agent.json\nhubs: [\"127.0.0.1:7443\"]\nca: ca.pem\n",
            echoedKey: "spool:\n  fsync",
            duplicate: "identity: agent.json\nenrollmentToken: \"\(HostileYAML.secret)\"\nhubs: [\"127.0.0.1:7443\"]\nca: ca.pem\nhubs: []\n",
            load: { _ = try AgentConfigurationFile.load(from: $0) }
        ),
    ]

    static func folder() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("hostile-\(UUID())").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// The loader's error as the user sees it, and how long it took.
    private func failure(_ kind: Kind, _ path: String) -> (message: String, seconds: Double) {
        let start = ContinuousClock.now
        var message = "accepted"
        do { try kind.load(path) } catch { message = "\(error)" }
        let elapsed = ContinuousClock.now - start
        return (message, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }

    @Test(arguments: kinds)
    func anAliasBombIsRefusedAtOnce(kind: Kind) throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        for asKey in [false, true] {
            let path = folder + "/bomb.yaml"
            try HostileYAML.aliasBomb(prefix: kind.prefix, asKey: asKey).write(toFile: path, atomically: true, encoding: .utf8)
            let (message, seconds) = self.failure(kind, path)
            #expect(message.contains("anchors and aliases"), "\(message)")
            #expect(message.contains("(line 3)") || message.contains("(line 4)"), "\(message)")
            // A guard against a hang (expanding the bomb, reading the whole file), not a speed
            // measure: the refusal itself is what the message asserts.
            #expect(seconds < 30, "\(kind): \(seconds) s")
        }
    }

    @Test(arguments: kinds)
    func fourMillionKeysAndAFiftyMegabyteValueAreRefusedByTheSizeCap(kind: Kind) throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let keys = folder + "/keys.yaml"
        try HostileYAML.writeManyKeys(to: keys, prefix: kind.prefix)
        let value = folder + "/value.yaml"
        try HostileYAML.hugeValue(prefix: kind.prefix, key: "comment", bytes: 50 << 20).write(toFile: value, atomically: false, encoding: .utf8)
        for path in [keys, value] {
            let (message, seconds) = self.failure(kind, path)
            #expect(message.contains("larger than 1 MiB"), "\(message.prefix(200))")
            #expect(message.count < 200, "\(message.prefix(300))")
            // A guard against a hang (expanding the bomb, reading the whole file), not a speed
            // measure: the refusal itself is what the message asserts.
            #expect(seconds < 30, "\(kind): \(seconds) s")
        }
    }

    @Test(arguments: kinds)
    func aBadValueIsQuotedAsAShortExcerpt(kind: Kind) throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/value.yaml"
        try HostileYAML.hugeValue(prefix: kind.prefix, key: kind.echoedKey, bytes: 500_000).write(toFile: path, atomically: true, encoding: .utf8)
        let (message, _) = self.failure(kind, path)
        #expect(message != "accepted")
        #expect(message.count < 300, "\(message.prefix(400))")
    }

    @Test(arguments: kinds)
    func aDuplicateKeyNamesTheKeyAndLineButNeverTheSecret(kind: Kind) throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/duplicate.yaml"
        try kind.duplicate.write(toFile: path, atomically: true, encoding: .utf8)
        let (message, _) = self.failure(kind, path)
        #expect(message.contains("twice"), "\(message)")
        #expect(message.contains("(line "), "\(message)")
        #expect(!message.contains(HostileYAML.secret), "\(message)")
        #expect(!message.contains("\n"), "one line: \(message)")
    }
}

/// The same files through the real commands, each with a time bound.
@Suite(.serialized) struct HostileConfigProcessTests {
    private func expectRefusal(_ run: CLIRun, _ expected: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(!run.timedOut, "killed after \(run.seconds) s", sourceLocation: sourceLocation)
        #expect(run.seconds < 60, sourceLocation: sourceLocation)  // a hang guard, not a speed measure
        #expect(run.status != 0, sourceLocation: sourceLocation)
        #expect(run.output.contains(expected), "\(run.output.prefix(300))", sourceLocation: sourceLocation)
        #expect(run.output.count < 400, "\(run.output.prefix(400))", sourceLocation: sourceLocation)
        #expect(!run.output.contains(HostileYAML.secret), sourceLocation: sourceLocation)
    }

    @Test func alertsCheckServeAndRunRefuseHostileFilesQuickly() async throws {
        let folder = try HostileConfigTests.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        func file(_ name: String, _ text: String) throws -> String {
            let path = folder + "/" + name
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        let kinds = HostileConfigTests.kinds
        let alertsBomb = try file("alerts-bomb.yaml", HostileYAML.aliasBomb(prefix: kinds[1].prefix))
        self.expectRefusal(try await CLIRun.run(CLIRun.hub, ["alerts", "check", alertsBomb], timeout: 20), "anchors and aliases")
        let alertsDuplicate = try file("alerts-duplicate.yaml", kinds[1].duplicate)
        self.expectRefusal(try await CLIRun.run(CLIRun.hub, ["alerts", "check", alertsDuplicate], timeout: 20), "\"url\" twice")
        let alertsKeys = folder + "/alerts-keys.yaml"
        try HostileYAML.writeManyKeys(to: alertsKeys, prefix: kinds[1].prefix)
        self.expectRefusal(try await CLIRun.run(CLIRun.hub, ["alerts", "check", alertsKeys], timeout: 20), "larger than 1 MiB")

        let hubBomb = try file("hub.yaml", HostileYAML.aliasBomb(prefix: kinds[0].prefix))
        self.expectRefusal(try await CLIRun.run(CLIRun.hub, ["serve", "--config", hubBomb], timeout: 20), "anchors and aliases")
        let hubDuplicate = try file("hub-duplicate.yaml", kinds[0].duplicate)
        self.expectRefusal(try await CLIRun.run(CLIRun.hub, ["serve", "--config", hubDuplicate], timeout: 20), "\"certificate\" twice")

        let agentBomb = try file("agent.yaml", HostileYAML.aliasBomb(prefix: kinds[2].prefix, asKey: true))
        self.expectRefusal(try await CLIRun.run(CLIRun.agent, ["run", "--config", agentBomb], timeout: 20), "anchors and aliases")
        let agentDuplicate = try file("agent-duplicate.yaml", kinds[2].duplicate)
        self.expectRefusal(try await CLIRun.run(CLIRun.agent, ["run", "--config", agentDuplicate], timeout: 20), "\"hubs\" twice")
    }
}

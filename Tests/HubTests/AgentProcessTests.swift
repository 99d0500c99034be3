import Agent
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Hub
import NIOConcurrencyHelpers
import TestSupport
import Testing
import Wire

/// `feedback-agent run` as a real process, killed for real with SIGKILL while it sends.
@Suite(.serialized) struct AgentProcessTests {
    static let binary = CrashTests.root.appendingPathComponent(".build/debug/feedback-agent").path

    private func start(_ config: String, log: String) throws -> Process {
        try launch(Self.binary, ["run", "--config", config, "--log-level", "info"], log: log)
    }

    /// Waits up to 10 s for `url` to answer.
    private func answers(_ url: URL) async -> Bool {
        for _ in 0..<200 {
            if (try? await URLSession.shared.data(from: url)) != nil { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    private func post(_ url: URL, _ body: String) async -> [String]? {
        await Self.post(url, Data(body.utf8), timeout: 5)
    }

    /// POSTs ratings to an agent's intake; the ids it gave them when it answered 202, else nil.
    static func post(_ url: URL, _ body: Data, timeout: TimeInterval) async -> [String]? {
        var request = URLRequest(url: url)
        request.httpMethod = "POST"
        request.httpBody = body
        request.timeoutInterval = timeout
        guard let (data, response) = try? await URLSession.shared.data(for: request),
            (response as? HTTPURLResponse)?.statusCode == 202,
            let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return nil }
        return json["ids"] as? [String]
    }

    @Test func anAgentKilledWhileSendingLosesNoAcceptedRatingAndDuplicatesNone() async throws {
        #expect(FileManager.default.fileExists(atPath: Self.binary), "build first: swift build --build-tests")
        let hub = try await HubHarness.start()
        let (folder, _) = try hub.agentFolder("agent")
        let httpPort = try CrashTests.freePort()
        let config = folder + "/agent.yaml"
        try """
            \(hub.agentYAMLHead)
            http: {listen: "127.0.0.1:\(httpPort)"}
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let log = folder + "/agent.log"
        let url = URL(string: "http://127.0.0.1:\(httpPort)/v1/feedback")!

        var agent = try self.start(config, log: log)
        let health = URL(string: "http://127.0.0.1:\(httpPort)/healthz")!
        #expect(await eventually { FileManager.default.fileExists(atPath: folder + "/spool/segments") })
        #expect(await self.answers(health), "the agent's HTTP intake came up")

        // Four callers post ratings; once 200 are accepted the agent is killed, with more
        // requests and batches on their way.
        let accepted = NIOLockedValueBox<[String]>([])
        let body = "[" + (0..<20).map { #"{"source":"popup","scale":"nps","score":\#($0 % 11),"customer":"c-\#($0)"}"# }.joined(separator: ",") + "]"
        let victim = agent
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    for _ in 0..<15 {
                        guard let ids = await self.post(url, body) else { return }
                        let total = accepted.withLockedValue { all -> Int in
                            all += ids
                            return all.count
                        }
                        if total >= 200, victim.isRunning { kill(victim.processIdentifier, SIGKILL) }
                    }
                }
            }
        }
        agent.waitUntilExit()
        #expect(agent.terminationReason == .uncaughtSignal, "the agent was killed, not stopped")
        let acceptedIDs = Set(accepted.withLockedValue { $0 })
        #expect(acceptedIDs.count >= 200, "ratings were accepted before the kill")
        let storedBeforeRestart = try hub.recordCount

        // Restarted on the same spool: everything accepted reaches the hub, once.
        agent = try self.start(config, log: log)
        // Up (its signal handlers too) before anything else: the SIGTERM below must drain it.
        #expect(await self.answers(health), "the agent came back up on its spool")
        defer { if agent.isRunning { kill(agent.processIdentifier, SIGKILL) } }
        let reachedHub = try await eventually(seconds: 30) {
            let stored = try hub.hub.sqlite.read { db in
                try String.fetchAll(db, sql: "SELECT lower(hex(id)) FROM records")
            }
            let storedIDs = Set(stored)
            return acceptedIDs.allSatisfy { storedIDs.contains($0.replacingOccurrences(of: "-", with: "")) }
        }
        #expect(reachedHub, "every rating the agent accepted is in the hub")
        print("agent kill test: \(acceptedIDs.count) accepted, \(storedBeforeRestart) in the hub at the kill, \(try hub.recordCount) after the restart")
        // No rating travelled in two batches (a re-seal after the crash would show as a
        // batch whose records were already stored), and none beyond what was posted.
        let resealed = try hub.hub.sqlite.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM batches WHERE stored_records != record_count") ?? -1
        }
        #expect(resealed == 0)
        #expect(try hub.recordCount <= 60 * 20)
        kill(agent.processIdentifier, SIGTERM)
        await waitForExit(agent)
        #expect(agent.terminationStatus == 0, "SIGTERM drains and exits cleanly")
        try await hub.stopAndRemove()
    }
}

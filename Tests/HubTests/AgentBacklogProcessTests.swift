import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Hub
import NIOConcurrencyHelpers
import TestSupport
import Testing

/// `feedback-agent run` as a real process while its hub is down: the backlog grows to many
/// times the agent's memory, the agent's memory does not, and when the hub comes back every
/// rating arrives exactly once.
@Suite(.serialized) struct AgentBacklogProcessTests {
    /// Spool bytes to build up: eight times the agent's memory target of 32 MiB.
    static let backlogBytes = 256 << 20
    /// How much the agent's own memory (`RssAnon`) may grow over its idle figure while the
    /// backlog builds and drains. (Whole RSS is the benchmark's, on a release build: here the
    /// debug binary's file pages grow as code runs for the first time, whatever the backlog.)
    static let allowedGrowth = 32 << 20

    private func status(_ url: URL) async -> [String: Any]? {
        guard let (data, _) = try? await URLSession.shared.data(from: url) else { return nil }
        return try? JSONSerialization.jsonObject(with: data) as? [String: Any]
    }

    /// Resident memory of `pid` in bytes: `VmRSS` (the whole of it, file pages included) or
    /// `RssAnon` (the process's own).
    static func residentBytes(_ pid: Int32, _ field: String = "VmRSS") -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix(field + ":") }),
            let kilobytes = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        else { return nil }
        return kilobytes << 10
    }

    /// 100 ratings with 1,200-byte comments that compress poorly, so the backlog is bytes
    /// on disk, not a few repeated strings.
    private static func body(_ seed: Int) -> Data {
        var state = UInt64(truncatingIfNeeded: seed) &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        let letters = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ".utf8)
        let ratings = (0..<100).map { index -> String in
            var comment = [UInt8]()
            comment.reserveCapacity(1_200)
            for _ in 0..<1_200 {
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                comment.append(letters[Int(state >> 33) % letters.count])
            }
            return #"{"source":"popup","scale":"nps","score":\#(index % 11),"site":"web-eu","customer":"c-\#(seed)-\#(index)","comment":"\#(String(decoding: comment, as: UTF8.self))"}"#
        }
        return Data(("[" + ratings.joined(separator: ",") + "]").utf8)
    }

    @Test func aBacklogManyTimesTheAgentsMemoryArrivesOnceAndMemoryStaysFlat() async throws {
        #expect(FileManager.default.fileExists(atPath: AgentProcessTests.binary), "build first: swift build --build-tests")
        // The hub knows the agent, then goes down: the agent has nowhere to send.
        var hub = try await HubHarness.start()
        let (folder, _) = try hub.agentFolder("agent")
        let hubPort = hub.port
        try await hub.stop()
        let httpPort = try CrashTests.freePort()
        let config = folder + "/agent.yaml"
        try """
            identity: agent.json
            hubs: ["127.0.0.1:\(hubPort)"]
            ca: \(hub.caPath)
            spool: {directory: spool}
            http: {listen: "127.0.0.1:\(httpPort)", maxBodyBytes: 4194304}
            drainTimeoutMs: 60000
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let agent = try launch(AgentProcessTests.binary, ["run", "--config", config, "--log-level", "warning"], log: folder + "/agent.log")
        defer { if agent.isRunning { kill(agent.processIdentifier, SIGKILL) } }
        let intake = URL(string: "http://127.0.0.1:\(httpPort)/v1/feedback")!
        let statusURL = URL(string: "http://127.0.0.1:\(httpPort)/status")!
        #expect(await eventually { await self.status(statusURL) != nil }, "the agent's HTTP intake came up")
        // Idle: one request's worth of work done, so the figure includes the intake's first use.
        let warmup = await AgentProcessTests.post(intake, Self.body(-1), timeout: 30) ?? []
        try await Task.sleep(for: .seconds(1))
        let idle = try #require(Self.residentBytes(agent.processIdentifier))
        let idleOwn = try #require(Self.residentBytes(agent.processIdentifier, "RssAnon"))

        // Memory sampled throughout, on a thread of its own (the test's tasks are busy posting).
        let peak = NIOLockedValueBox((idle, idleOwn))
        let sampling = NIOLockedValueBox(true)
        let pid = agent.processIdentifier
        let sampler = Thread {
            while sampling.withLockedValue({ $0 }) {
                if let rss = Self.residentBytes(pid), let own = Self.residentBytes(pid, "RssAnon") {
                    peak.withLockedValue { $0 = (max($0.0, rss), max($0.1, own)) }
                }
                usleep(100_000)
            }
        }
        sampler.start()
        defer { sampling.withLockedValue { $0 = false } }

        // Four callers post until the spool holds the backlog (bounded in count and time).
        let accepted = NIOLockedValueBox<[String]>(warmup)
        let started = ContinuousClock.now
        await withTaskGroup(of: Void.self) { group in
            for caller in 0..<4 {
                group.addTask {
                    for round in 0..<5_000 {
                        guard ContinuousClock.now - started < .seconds(240) else { return }
                        if round % 10 == 0, let bytes = await self.status(statusURL)?["spoolBytes"] as? Int, bytes >= Self.backlogBytes { return }
                        guard let ids = await AgentProcessTests.post(intake, Self.body(caller * 100_000 + round), timeout: 30) else { return }
                        accepted.withLockedValue { $0 += ids }
                    }
                }
            }
        }
        let backlog = await self.status(statusURL)?["spoolBytes"] as? Int ?? 0
        let peakWhileDown = peak.withLockedValue { $0 }
        let acceptedIDs = accepted.withLockedValue { $0 }
        #expect(backlog >= Self.backlogBytes, "the backlog grew to \(backlog) bytes in the time allowed")
        #expect(Set(acceptedIDs).count == acceptedIDs.count)

        // The hub comes back on the same port and store; the agent drains to it.
        hub = try await HubHarness.start(folder: hub.folder) { $0.listen = "127.0.0.1:\(hubPort)" }
        let drainStart = ContinuousClock.now
        let drained = await eventually(seconds: 240) {
            guard let status = await self.status(statusURL) else { return false }
            return status["unsealedRecords"] as? Int == 0 && status["unacknowledgedBatches"] as? Int == 0
        }
        let drainTime = ContinuousClock.now - drainStart
        sampling.withLockedValue { $0 = false }
        let peakOverall = peak.withLockedValue { $0 }
        #expect(drained, "the backlog reached the hub")

        let stored = try hub.hub.sqlite.read { db in
            try String.fetchAll(db, sql: "SELECT lower(hex(id)) FROM records")
        }
        let expected = Set(acceptedIDs.map { $0.replacingOccurrences(of: "-", with: "").lowercased() })
        #expect(stored.count == expected.count, "every accepted rating stored, none twice")
        #expect(Set(stored) == expected)
        let resealed = try hub.hub.sqlite.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM batches WHERE stored_records != record_count") ?? -1
        }
        #expect(resealed == 0, "no rating travelled in two batches")

        let mib = { (bytes: Int) in String(format: "%.1f MiB", Double(bytes) / 1_048_576) }
        print(
            "agent backlog test: \(acceptedIDs.count) ratings, backlog \(mib(backlog)); RSS / RssAnon: idle \(mib(idle)) / \(mib(idleOwn)), "
                + "peak while the hub was down \(mib(peakWhileDown.0)) / \(mib(peakWhileDown.1)), "
                + "peak overall \(mib(peakOverall.0)) / \(mib(peakOverall.1)); drained in \(drainTime)"
        )
        #expect(
            peakOverall.1 - idleOwn <= Self.allowedGrowth,
            "the agent's own memory grew from \(mib(idleOwn)) to \(mib(peakOverall.1)) with a \(mib(backlog)) backlog"
        )

        kill(agent.processIdentifier, SIGTERM)
        await waitForExit(agent)
        #expect(agent.terminationStatus == 0)
        try await hub.stopAndRemove()
    }
}

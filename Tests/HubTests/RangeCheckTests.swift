import Agent
import Foundation
import Hub
import Testing

/// Issue 12 item 6: every numeric flag and setting is range-checked with one line naming
/// it and the allowed range; nothing overflows.
@Suite struct RangeCheckTests {
    /// A flag out of range and the line the real command answers with.
    static let flags: [(binary: String, arguments: [String], expected: String)] = [
        (CLIRun.hub, ["agents", "token", "--site", "s", "--ttl-hours", "9223372036854775807"], "--ttl-hours must be 1–8760, got 9223372036854775807"),
        (CLIRun.hub, ["agents", "token", "--site", "s", "--ttl-hours", "0"], "--ttl-hours must be 1–8760, got 0"),
        (CLIRun.hub, ["agents", "token", "--site", "s", "--count", "10001"], "--count must be 1–10000, got 10001"),
        (CLIRun.hub, ["alerts", "list", "--limit", "0"], "--limit must be 1–10000, got 0"),
        (CLIRun.hub, ["alerts", "list", "--limit", "9223372036854775807"], "--limit must be 1–10000"),
        (CLIRun.hub, ["alerts", "list", "--stuck-for", "0"], "--stuck-for must be 1–8760, got 0"),
        (CLIRun.agent, ["seal", "--identity", "a", "--records", "r", "--out", "o", "--sequence", "0"], "--sequence must be 1–18446744073709551615, got 0"),
        (CLIRun.agent, ["seal", "--identity", "a", "--records", "r", "--out", "o", "--sequence", "1", "--level", "20"], "--level must be 1–19, got 20"),
        (CLIRun.agent, ["import", "f.jsonl", "--wait=-1"], "--wait must be 0–86400, got -1"),
        (CLIRun.agent, ["import", "f.jsonl", "--wait", "9223372036854775807"], "--wait must be 0–86400"),
        (CLIRun.bench, ["load", "--hub", "h:1", "--ca", "c", "--tokens", "t", "--records", "9223372036854775807"], "--records must be 1–100000000"),
        (CLIRun.bench, ["load", "--hub", "h:1", "--ca", "c", "--tokens", "t", "--connections", "0"], "--connections must be 1–10000, got 0"),
        (CLIRun.bench, ["load", "--hub", "h:1", "--ca", "c", "--tokens", "t", "--rate=-5"], "--rate must be 0–10000000, got -5"),
        (CLIRun.bench, ["load", "--hub", "h:1", "--ca", "c", "--tokens", "t", "--max-seconds", "0"], "--max-seconds must be 1–86400, got 0"),
        (CLIRun.bench, ["spool", "--records", "9223372036854775807"], "--records must be 1–100000000"),
        (CLIRun.bench, ["spool", "--writers", "0"], "--writers must be 1–100000, got 0"),
        (CLIRun.bench, ["spool", "--per-append", "10001"], "--per-append must be 1–10000, got 10001"),
        (CLIRun.bench, ["raw-insert", "--store", "s", "--transaction-batches", "0"], "--transaction-batches must be 1–10000, got 0"),
        (CLIRun.bench, ["raw-insert", "--store", "s", "--records", "0"], "--records must be 1–100000000, got 0"),
    ]

    @Test func everyNumericFlagOutOfRangeIsOneLineNamingItsRange() async throws {
        for (binary, arguments, expected) in Self.flags {
            let run = try await CLIRun.run(binary, arguments, timeout: 20)
            let command = "\(URL(fileURLWithPath: binary).lastPathComponent) \(arguments.joined(separator: " "))"
            #expect(!run.signalled, "\(command) crashed: \(run.output)")
            #expect(run.status == 1, "\(command): \(run.output)")
            #expect(run.output == "Error: \(expected)\n" || run.output.hasPrefix("Error: \(expected)") && !run.output.dropLast().contains("\n"),
                    "\(command): \(run.output)")
        }
    }

    /// Settings that overflowed arithmetic when read: through the real `feedback-agent run`.
    @Test func agentSettingsThatOverflowedAreRefusedByTheRealProcess() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("ranges-\(UUID())").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let base = "identity: agent.json\nhubs: [\"127.0.0.1:7443\"]\nca: ca.pem\n"
        let cases = [
            (
                "sources: [{name: k, kind: kiosk, device: /dev/null, site: s, kiosk: k, keys: {KEY_1: 1}, misuse: {presses: 3, seconds: 9223372036854775807}}]",
                "misuse.seconds must be 1–86400, got 9223372036854775807"
            ),
            (
                "sources: [{name: c, kind: asterisk, path: cdr.csv, site: s, newColumns: true, surveyLog: {path: s.log, wait: 9223372036854775807m}}]",
                "surveyLog.wait must be seconds or minutes from 0s to 86400s"
            ),
        ]
        for (setting, expected) in cases {
            let path = folder + "/agent.yaml"
            try (base + setting + "\n").write(toFile: path, atomically: true, encoding: .utf8)
            let run = try await CLIRun.run(CLIRun.agent, ["run", "--config", path], timeout: 20)
            #expect(!run.signalled, "crashed: \(run.output)")
            #expect(run.status == 1)
            #expect(run.output.contains(expected), "\(run.output)")
        }
    }

    private func write(_ text: String) throws -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("ranges-\(UUID())").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let path = folder + "/file.yaml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    private func message(_ load: () throws -> Void) -> String {
        do {
            try load()
            return "accepted"
        } catch {
            return "\(error)"
        }
    }

    @Test(arguments: [
        ("limits: {maxConnections: 0}", "limits.maxConnections must be 1–65536, got 0"),
        ("limits: {maxConnections: 10000000}", "limits.maxConnections must be 1–65536, got 10000000"),
        ("limits: {maxBatchRecords: 10001}", "limits.maxBatchRecords must be 1–10000, got 10001"),
        ("limits: {maxCompressedBytes: 100}", "limits.maxCompressedBytes must be 1024–67108864, got 100"),
        ("limits: {maxUncompressedBytes: 9223372036854775807}", "limits.maxUncompressedBytes must be 1024–268435456"),
        ("limits: {maxCompressionRatio: 0}", "limits.maxCompressionRatio must be 200–1000, got 0"),
        ("limits: {credit: 1025}", "limits.credit must be 1–1024, got 1025"),
        ("limits: {maxHandshakes: 0}", "limits.maxHandshakes must be 1–65536, got 0"),
        ("limits: {maxHandshakesPerAddress: 70000}", "limits.maxHandshakesPerAddress must be 1–65536, got 70000"),
        ("limits: {maxConnectionsPerNode: 0}", "limits.maxConnectionsPerNode must be 1–1024, got 0"),
        ("httpLimits: {headerTimeoutMs: 5}", "httpLimits.headerTimeoutMs must be 100–600000, got 5"),
        ("limits: {handshakeTimeoutMs: 9223372036854775807}", "limits.handshakeTimeoutMs must be 100–600000"),
        ("limits: {idleTimeoutMs: 50}", "limits.idleTimeoutMs must be 100–3600000, got 50"),
        ("limits: {drainTimeoutMs: 0}", "limits.drainTimeoutMs must be 1–600000, got 0"),
        ("commit: {maxBatches: 0}", "commit.maxBatches must be 1–100000, got 0"),
        ("commit: {maxRecords: 9223372036854775807}", "commit.maxRecords must be 1–10000000"),
    ])
    func hubSettingsOutOfRange(setting: String, expected: String) throws {
        let path = try self.write("hubId: \(UUID())\ntls: {certificate: a.pem, privateKey: b.pem}\n\(setting)\n")
        let message = self.message { _ = try HubConfiguration.load(from: path) }
        #expect(message.contains(expected), "\(message)")
    }

    @Test(arguments: [
        ("spool: {segmentBytes: 1}", "spool.segmentBytes must be 4096–1073741824, got 1"),
        ("spool: {quotaBytes: 9223372036854775807}", "spool.quotaBytes must be 4096–1125899906842624"),
        ("spool: {reserveBytes: -1}", "spool.reserveBytes must be 0–1073741824, got -1"),
        ("spool: {fsync: \"0\"}", "spool.fsync must be always, never or 1–10000 (ms), got \"0\""),
        ("batch: {maxRecords: 0}", "batch.maxRecords must be 1–10000, got 0"),
        ("batch: {maxBytes: 9223372036854775807}", "batch.maxBytes must be 1024–8388608"),
        ("batch: {maxAgeMs: 0}", "batch.maxAgeMs must be 1–3600000, got 0"),
        ("drainTimeoutMs: 9223372036854775807", "drainTimeoutMs must be 1–600000"),
        ("http: {listen: \"127.0.0.1:1\", maxBodyBytes: 0}", "http.maxBodyBytes must be 1024–8388608, got 0"),
        ("http: {listen: \"127.0.0.1:1\", onePerCustomerDays: 3651}", "http.onePerCustomerDays must be 0–3650, got 3651"),
        ("sources: [{name: k, kind: kiosk, device: d, site: s, kiosk: k, keys: {KEY_1: 1}, debounceMs: -1}]", "debounceMs must be 0–10000, got -1"),
        ("sources: [{name: k, kind: kiosk, device: d, site: s, kiosk: k, keys: {KEY_1: 1}, misuse: {presses: 0, seconds: 5}}]", "misuse.presses must be 1–10000, got 0"),
    ])
    func agentSettingsOutOfRange(setting: String, expected: String) throws {
        let path = try self.write("identity: agent.json\nhubs: [\"127.0.0.1:7443\"]\nca: ca.pem\n\(setting)\n")
        let message = self.message { _ = try AgentConfigurationFile.load(from: path) }
        #expect(message.contains(expected), "\(message)")
    }

    @Test(arguments: [
        ("rules:\n  - {name: w, scale: smiley, window: {share: 0, minResponses: 5, minutes: 15}}", "window.share\": must be 1–100, got 0"),
        ("rules:\n  - {name: w, scale: smiley, window: {share: 40, minResponses: 5, minutes: 10081}}", "window.minutes\": must be 1–10080, got 10081"),
        ("rules:\n  - {name: r, scale: nps, acknowledgeWithin: 31d}", "acknowledgeWithin\": must be a duration from 1s to 30d, got \"31d\""),
        ("delivery: {maxAttempts: 9223372036854775807}", "maxAttempts\": must be 1–1000, got 9223372036854775807"),
        ("delivery: {timeout: 1d}", "timeout\": must be a duration from 100ms to 10m, got \"1d\""),
        ("delivery: {firstRetry: 5ms}", "firstRetry\": must be a duration from 10ms to 1h, got \"5ms\""),
        ("delivery: {maxRetry: 9223372036854775807d}", "maxRetry\": must be a duration from 10ms to 1d"),
    ])
    func alertSettingsOutOfRange(setting: String, expected: String) throws {
        let message = self.message { _ = try AlertRules.parse(yaml: "targets:\n  t: {url: \"http://x\"}\n" + setting + "\n", path: "alerts.yaml") }
        #expect(message.contains(expected), "\(message)")
    }

    @Test func connectionLimitsInHubYamlAreRead() throws {
        let path = try self.write(
            "hubId: \(UUID())\ntls: {certificate: a.pem, privateKey: b.pem}\n"
                + "limits: {maxHandshakes: 7, maxHandshakesPerAddress: 3, maxConnectionsPerNode: 2}\nhttpLimits: {maxConnections: 9}\n"
        )
        let configuration = try HubConfiguration.load(from: path)
        #expect(configuration.limits.maxHandshakes == 7)
        #expect(configuration.limits.maxHandshakesPerAddress == 3)
        #expect(configuration.limits.maxConnectionsPerNode == 2)
        #expect(configuration.httpLimits.maxConnections == 9)
    }

    /// The Debian package's hub.yaml says `hubId: machine`: each machine gets its own stable id,
    /// derived as systemd derives application ids (the expected value computed independently,
    /// with Python's hmac, for this machine id).
    @Test func hubIdMachineIsDerivedFromTheMachineID() throws {
        let machineFile = try self.write("5c4e3b2a19087f6e5d4c3b2a19087f6e\n")
        let id = try HubConfiguration.machineHubID(machineIDFile: machineFile)
        #expect(id == UUID(uuidString: "a4e5462a-217e-4c99-827d-b95ab80b6b53"))
        let other = try self.write("5c4e3b2a19087f6e5d4c3b2a19087f6f\n")
        #expect(try HubConfiguration.machineHubID(machineIDFile: other) != id)
        let short = try self.write("5c4e3b2a\n")
        #expect(self.message { _ = try HubConfiguration.machineHubID(machineIDFile: short) }.contains("does not hold 32 hex digits"))
        #expect(self.message { _ = try HubConfiguration.machineHubID(machineIDFile: "/nonexistent/machine-id") }.contains("cannot read"))
        // This machine's own id, where it has one (a container may have none, or an empty file).
        if let machine = try? HubConfiguration.machineHubID() {
            let path = try self.write("hubId: machine\ntls: {certificate: a.pem, privateKey: b.pem}\n")
            let first = try HubConfiguration.load(from: path).hubID
            #expect(try HubConfiguration.load(from: path).hubID == first)
            #expect(first == machine)
        }
        let wrong = try self.write("hubId: mine\ntls: {certificate: a.pem, privateKey: b.pem}\n")
        #expect(self.message { _ = try HubConfiguration.load(from: wrong) }.contains("has an invalid value at hubId (line 1)"))
    }
}

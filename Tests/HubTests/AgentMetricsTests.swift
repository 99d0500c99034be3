import Agent
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import TestSupport
import Testing

/// The agent's `/metrics` over real HTTP: every metric name that dashboards and scripts
/// know keeps its name and meaning, label values are escaped, and the whole page passes
/// `promtool check metrics`.
@Suite(.serialized) struct AgentMetricsTests {
    /// Names the agent has always served; docs/AGENT.md and docs/SOURCES.md list them.
    static let existingNames = [
        "feedback_agent_submitted_total", "feedback_agent_spool_records", "feedback_agent_spool_batches",
        "feedback_agent_spool_bytes", "feedback_agent_oldest_pending_seconds", "feedback_agent_batches_sent_total",
        "feedback_agent_batches_acknowledged_total", "feedback_agent_batches_dead_lettered_total",
        "feedback_agent_batches_retried_total", "feedback_agent_connections_total", "feedback_agent_connect_failures_total",
        "feedback_agent_connected", "feedback_agent_source_lines_total", "feedback_agent_source_opens_total",
    ]

    /// What a kiosk fleet's operator needs besides them.
    static let addedNames = [
        "feedback_agent_spool_unsealed_records", "feedback_agent_spool_quota_bytes",
        "feedback_agent_intake_responses_total", "feedback_agent_source_buffered_events",
    ]

    @Test func metricsKeepTheirNamesEscapeLabelValuesAndPassPromtool() async throws {
        let hub = try await HubHarness.start()
        let feed = FileManager.default.temporaryDirectory.appendingPathComponent("metrics-feed-\(UUID()).jsonl").path
        defer { try? FileManager.default.removeItem(atPath: feed) }
        // A quote, a backslash and a line break: each must be escaped in a label value.
        let name = "front \"desk\" \\ 2\nb"
        let intake = try await HTTPIntakeTests.Intake.start(hub: hub, sources: [SourceConfiguration(name: name, kind: .jsonLines(path: feed))])
        try appendText(#"{"source":"api","scale":"nps","score":9}"# + "\nnot json\n", to: feed)
        #expect(try await intake.request("POST", "/v1/feedback", body: #"{"source":"popup","scale":"nps","score":3}"#).status == 202)
        #expect(try await intake.request("POST", "/v1/feedback", body: "{score: 3").status == 400)
        #expect(await eventually { intake.agent.status.sources[name]?.badLines == 1 })
        #expect(await intake.agent.flush(timeout: .seconds(20)))

        let first = try await self.metrics(intake)
        let text = try await self.metrics(intake)
        for metric in Self.existingNames + Self.addedNames {
            #expect(text.contains("\n# TYPE \(metric) "), "\(metric) is served")
            #expect(text.contains("\n# HELP \(metric) "), "\(metric) says what it means")
        }
        let label = #"source="front \"desk\" \\ 2\nb""#
        #expect(Self.value(text, "feedback_agent_source_lines_total{\(label),outcome=\"rating\"}") == 1)
        #expect(Self.value(text, "feedback_agent_source_lines_total{\(label),outcome=\"bad\"}") == 1)
        #expect(Self.value(text, "feedback_agent_source_lines_total{\(label),outcome=\"dropped\"}") == 0)
        #expect(Self.value(text, "feedback_agent_source_opens_total{\(label)}") == 0)
        // Counts, not sums of every scrape.
        for series in ["feedback_agent_submitted_total", "feedback_agent_batches_acknowledged_total"] {
            #expect(Self.value(first, series) == Self.value(text, series), "\(series) is the same on a second scrape")
        }
        #expect(Self.value(text, "feedback_agent_submitted_total") == 1)
        #expect((Self.value(text, "feedback_agent_batches_acknowledged_total") ?? 0) >= 1)
        #expect(Self.value(text, "feedback_agent_spool_records") == 0)
        #expect(Self.value(text, "feedback_agent_spool_quota_bytes") == Double(1 << 30))
        #expect(Self.value(text, "feedback_agent_connected") == 1)
        #expect(Self.value(text, #"feedback_agent_intake_responses_total{code="202",reason="accepted"}"#) == 1)
        #expect(Self.value(text, #"feedback_agent_intake_responses_total{code="400",reason="invalidJSON"}"#) == 1)

        let check = try #require(try await promtoolCheck(text), "promtool is not installed: `apt-get install prometheus` provides it (.ci/run installs it)")
        #expect(check.status == 0, "promtool check metrics: \(check.output)\n\(text)")
        try await intake.stop()
        try await hub.stopAndRemove()
    }

    private func metrics(_ intake: HTTPIntakeTests.Intake) async throws -> String {
        let (data, response) = try await URLSession.shared.data(from: URL(string: intake.base + "/metrics")!)
        #expect((response as? HTTPURLResponse)?.statusCode == 200)
        #expect((response as? HTTPURLResponse)?.value(forHTTPHeaderField: "Content-Type")?.hasPrefix("text/plain; version=0.0.4") == true)
        return "\n" + String(decoding: data, as: UTF8.self)
    }

    /// The value of the sample `series` (name and labels as written) in Prometheus text.
    static func value(_ text: String, _ series: String) -> Double? {
        text.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { Double($0.dropFirst(series.count + 1)) }
    }
}

/// `promtool check metrics` over `text` (its lint included); nil when promtool is not installed.
func promtoolCheck(_ text: String) async throws -> CLIRun? {
    let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin")
        .split(separator: ":").map { "\($0)/promtool" }
        .first { FileManager.default.isExecutableFile(atPath: $0) }
    guard let path else { return nil }
    return try await CLIRun.run(path, ["check", "metrics"], input: text)
}

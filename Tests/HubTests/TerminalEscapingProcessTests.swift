import Foundation
import GRDB
import Testing

/// Issue 12 item 8: text stored before control characters were refused (rows written
/// straight into the store, as an old hub kept them) reaches the terminal escaped through
/// the real `feedback-hub report`, `alerts list` and `agents list`, and through
/// `feedback-agent import`'s messages.
@Suite(.serialized) struct TerminalEscapingProcessTests {
    /// Every byte a terminal would act on, other than the line ends of the output itself.
    private func controls(in output: String) -> [UInt8] {
        output.utf8.filter { ($0 < 0x20 && $0 != 0x0A) || $0 == 0x7F }
    }

    @Test func reportAlertsAndAgentsListShowStoredControlCharactersEscaped() async throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("escape-\(UUID())").path
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let initRun = try await CLIRun.run(CLIRun.hub, ["init", work + "/hub", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        #expect(initRun.status == 0, "\(initRun.output)")
        let config = work + "/hub/hub.yaml"

        let clear = "\u{1B}[2J\u{1B}[H"
        let site = "branch-042\u{0}branch-999"
        let comment = "fine\(clear)\r\n2026-01-01 all good, nothing to see\u{7}"
        let queue = try DatabaseQueue(path: work + "/hub/feedback.sqlite")
        try await queue.write { db in
            for index in 0..<3 {
                try db.execute(
                    sql: """
                        INSERT INTO records (id, origin, sequence, source, scale, score, negative, occurred_at, captured_at,
                            stored_at, site, channel, subject, topic, survey, customer, comment, attributes)
                        VALUES (?, ?, 1, 1, 1, 3, 1, 1764000000000, 1764000000000, 1764000000000, CAST(? AS TEXT), '', '', '', '', '',
                            CAST(? AS TEXT), '{}')
                        """,
                    // Bound as bytes: a Swift string is bound as a C string, which ends at the NUL.
                    arguments: [UUID(), UUID(), Data(site.utf8), Data((comment + "\(index)").utf8)]
                )
            }
            try db.execute(
                sql: """
                    INSERT INTO alerts (id, rule, kind, status, level, max_level, site, subject, summary, details, created_at, captured_at)
                    VALUES (?, 'detractor', 'record', 'open', 0, 0, CAST(? AS TEXT), '', CAST(? AS TEXT), '{}', ?, 1764000000000)
                    """,
                arguments: [UUID(), Data(site.utf8), Data("detractor: nps 3 at \(site): \"\(comment)\"".utf8), Int64(Date().timeIntervalSince1970 * 1000)]
            )
        }
        // A site scope with a control character is refused where it is typed.
        let add = try await CLIRun.run(
            CLIRun.hub,
            ["agents", "add", "--config", config, "--node-id", UUID().uuidString, "--public-key", Data(repeating: 7, count: 32).base64EncodedString(),
             "--site", "kiosk\(clear)-1"]
        )
        #expect(add.status != 0)
        #expect(add.output.contains("--site: a site pattern holds a control character"), "\(add.output)")
        #expect(self.controls(in: add.output).isEmpty, "\(add.output.debugDescription)")
        // One kept by an earlier release reads as no site at all (it can match no record).
        let oldNode = UUID()
        try await queue.write { db in
            try db.execute(
                sql: "INSERT INTO nodes (node_id, public_key, key_id, role, sites, created_at) VALUES (?, ?, 1, 1, CAST(? AS TEXT), 0)",
                arguments: [oldNode, Data(repeating: 7, count: 32), Data("kiosk\(clear)-1".utf8)]
            )
        }

        // Those records were kept by a release before the rollups: the next open counts them.
        try await queue.write { db in
            try db.execute(
                sql: """
                    DROP TABLE rollups; DROP TABLE daily_rollups; DROP TABLE report_settings; DROP INDEX records_negative_by_site;
                    DROP TABLE site_hours;
                    DELETE FROM grdb_migrations WHERE identifier IN ('v7-rollups', 'v10-daily-score-columns', 'v11-site-hours')
                    """
            )
        }
        let report = try await CLIRun.run(CLIRun.hub, ["report", "--config", config])
        #expect(report.status == 0, "\(report.output)")
        #expect(self.controls(in: report.output).isEmpty, "\(report.output.debugDescription)")
        #expect(report.output.contains("branch-042\\u{0}branch-999  3 "), "\(report.output)")
        #expect(report.output.split(separator: "\n").count == 3, "one site, one line: \(report.output)")

        let alerts = try await CLIRun.run(CLIRun.hub, ["alerts", "list", "--config", config])
        #expect(alerts.status == 0, "\(alerts.output)")
        #expect(self.controls(in: alerts.output).isEmpty, "\(alerts.output.debugDescription)")
        #expect(alerts.output.contains(#"fine\u{1B}[2J\u{1B}[H\r\n2026-01-01 all good, nothing to see\u{7}"#), "\(alerts.output)")
        #expect(alerts.output.split(separator: "\n").count == 1, "one alert, one line: \(alerts.output)")

        let agents = try await CLIRun.run(CLIRun.hub, ["agents", "list", "--config", config])
        #expect(self.controls(in: agents.output).isEmpty, "\(agents.output.debugDescription)")
        #expect(agents.output.contains("\(oldNode)") && agents.output.contains("(none)"), "\(agents.output)")
    }

    @Test func importShowsTheTextOfABadLineEscaped() async throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("escape-\(UUID())").path
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        #expect(try await CLIRun.run(CLIRun.hub, ["init", work + "/hub"]).status == 0)
        #expect(try await CLIRun.run(CLIRun.agent, ["keygen", "--out", work + "/agent.json"]).status == 0)
        try "identity: agent.json\nhubs: [\"127.0.0.1:9\"]\nca: hub/ca.pem\n".write(toFile: work + "/agent.yaml", atomically: true, encoding: .utf8)
        let csv = work + "/ratings.csv"
        try "source,scale,score,site\nimport,nps,9,web\nimport,nps,\"3\u{1B}[2J\",web\nimport,csat,2,\"web\u{1B}]0;owned\u{7}\"\n"
            .write(toFile: csv, atomically: true, encoding: .utf8)
        let run = try await CLIRun.run(CLIRun.agent, ["import", csv, "--config", work + "/agent.yaml", "--wait", "0"], timeout: 30)
        #expect(run.status == 0, "\(run.output)")
        #expect(self.controls(in: run.output).isEmpty, "\(run.output.debugDescription)")
        #expect(run.output.contains(#"score "3\u{1B}[2J" is not a whole number"#), "\(run.output)")
        #expect(run.output.contains("site holds the control character U+001B"), "\(run.output)")
        #expect(run.output.contains("imported 1 ratings"), "\(run.output)")
    }
}

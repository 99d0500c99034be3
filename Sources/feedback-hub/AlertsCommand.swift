import ArgumentParser
import Foundation
import Hub
import Support

struct Alerts: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Checks alert rules and lists alerts (cases; the hub's HTTP API moves them along).",
        subcommands: [Check.self, List.self]
    )

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Checks an alert rules file as the hub does at start.")

        @Argument(help: "The rules file.")
        var file: String

        func run() throws {
            let rules = try reporting { try AlertRules.load(from: self.file) }
            print("\(self.file): \(rules.rules.count) rules, \(rules.targets.count) targets, \(rules.routes.count) routes: ok")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Lists alerts, newest first.")
        @OptionGroup var config: ConfigOption

        @Option(help: "Only alerts in these states, comma-separated: open, inProgress, waiting, completed, cancelled.")
        var status: String?

        @Option(help: "Only alerts for this site.")
        var site: String?

        @Option(help: "Only cases of this owner (\"\" for cases nobody owns).")
        var owner: String?

        @Flag(help: "Only cases past their first-action deadline (open) or their due time (not closed).")
        var overdue = false

        @Option(help: "Only cases not closed and unchanged for this many hours, 1–8760.")
        var stuckFor: Int?

        @Option(help: "At most this many, 1–10000.")
        var limit = 50

        func validate() throws {
            try RangeError.check(self.limit, 1...10_000, "--limit")
            if let hours = self.stuckFor { try RangeError.check(hours, 1...8_760, "--stuck-for") }
        }

        func run() throws {
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            var query = AlertQuery(scope: .any, limit: self.limit)
            for name in self.status?.split(separator: ",", omittingEmptySubsequences: false) ?? [] {
                guard let status = Alert.Status(rawValue: String(name)) else {
                    throw CLIError("--status must be a comma-separated list of open, inProgress, waiting, completed, cancelled")
                }
                query.statuses.insert(status)
            }
            query.site = self.site
            query.owner = self.owner
            query.overdueAt = self.overdue ? now : nil
            query.unchangedSince = self.stuckFor.map { now - Int64($0) * 3_600_000 }
            let store = try self.config.openStore()
            let alerts = try reporting { try store.alerts(query) }
            if alerts.isEmpty { print("no alerts") }
            for alert in alerts {
                let age = (now - alert.createdAt) / 60_000
                // The summary quotes the rating's comment: stored text, shown escaped.
                let owner = alert.owner.isEmpty ? "" : "  owner \(TerminalText.escape(alert.owner))"
                let overdue = alert.isOverdue(at: now) ? "  OVERDUE" : ""
                print(
                    "\(alert.id.uuidString.lowercased())  \(alert.status.rawValue)  level \(alert.level)  \(age) min ago\(owner)\(overdue)  \(TerminalText.escape(alert.summary))"
                )
            }
        }
    }
}

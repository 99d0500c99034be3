import ArgumentParser
import Foundation
import Hub
import Support

struct Alerts: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Checks alert rules and lists alerts (the hub's HTTP API acknowledges and resolves them).",
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

        @Option(help: "Only alerts in this state: open, acknowledged, resolved, cancelled.")
        var status: String?

        @Option(help: "Only alerts for this site.")
        var site: String?

        @Flag(help: "Only open alerts past their acknowledgement deadline.")
        var overdue = false

        @Option(help: "At most this many, 1–10000.")
        var limit = 50

        func validate() throws {
            try RangeError.check(self.limit, 1...10_000, "--limit")
        }

        func run() throws {
            var status: Alert.Status?
            if let text = self.status {
                guard let parsed = Alert.Status(rawValue: text) else {
                    throw CLIError("--status must be one of open, acknowledged, resolved, cancelled")
                }
                status = parsed
            }
            let store = try self.config.openStore()
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            let alerts = try reporting {
                try store.alerts(status: status, site: self.site, within: .any, overdueAt: self.overdue ? now : nil, limit: self.limit)
            }
            if alerts.isEmpty { print("no alerts") }
            for alert in alerts {
                let age = (now - alert.createdAt) / 60_000
                // The summary quotes the rating's comment: stored text, shown escaped.
                print("\(alert.id.uuidString.lowercased())  \(alert.status.rawValue)  level \(alert.level)  \(age) min ago  \(TerminalText.escape(alert.summary))")
            }
        }
    }
}

// A product backend that embeds the FeedbackMesh agent: the agent runs as one service of
// the backend's ServiceGroup, and the backend's own code calls `submit` when a customer
// answers the in-product 0–10 popup. `submit` returns once the rating is durable in the
// local spool; the agent seals, signs and forwards it on its own.
//
//   embedded-agent-example --identity agent.json --hub 127.0.0.1:7443 --ca hub/ca.pem \
//       --spool /tmp/example-spool [--ratings 20]
//
// The identity must be registered with the hub (`feedback-agent enroll` or
// `feedback-hub agents add`). The example submits the ratings, waits until the hub has
// acknowledged them all, and stops.
import Agent
import Foundation
import Logging
import ServiceLifecycle

/// Stands in for the backend's request handlers: customers answering the popup.
struct PopupAnswers: Service {
    let agent: FeedbackAgent
    let count: Int
    let logger: Logger

    func run() async throws {
        let pages = ["checkout", "search", "billing", "onboarding"]
        for index in 0..<self.count {
            let rating = FeedbackSubmission(
                source: "popup", scale: "nps", score: (index * 7) % 11,
                site: "web-eu", channel: "app", subject: pages[index % pages.count], topic: "general",
                survey: "nps-2026q4", customer: "cust-\(1_000 + index)",
                comment: index % 5 == 0 ? "Checkout asked for my address twice." : nil
            )
            let record = try await self.agent.submit(rating)
            self.logger.info("rating kept", metadata: ["id": "\(record.id)", "score": "\(record.score)"])
        }
        let delivered = await self.agent.flush(timeout: .seconds(30))
        print("embedded agent: \(self.count) ratings submitted, all acknowledged by the hub: \(delivered)")
        // Returning ends the example: the group then shuts the agent down gracefully.
    }
}

func value(_ flag: String, default fallback: String? = nil) -> String? {
    let arguments = CommandLine.arguments
    if let index = arguments.firstIndex(of: flag), index + 1 < arguments.count { return arguments[index + 1] }
    return fallback
}

guard let identityPath = value("--identity"), let hub = value("--hub"), let ca = value("--ca"), let spool = value("--spool"),
    let count = Int(value("--ratings", default: "20") ?? "")
else {
    FileHandle.standardError.write(Data("usage: embedded-agent-example --identity FILE --hub HOST:PORT --ca FILE --spool DIR [--ratings N]\n".utf8))
    exit(2)
}

var logger = Logger(label: "embedded-agent-example")
logger.logLevel = .warning
do {
    let configuration = FeedbackAgent.Configuration(
        identity: try AgentIdentity.load(from: identityPath),
        hubs: [try HubAddress(parsing: hub)],
        tls: try HubConnection.tlsContext(trusting: ca),
        spoolDirectory: spool
    )
    let agent = try FeedbackAgent(configuration: configuration, logger: logger)
    let app = PopupAnswers(agent: agent, count: count, logger: logger)
    let group = ServiceGroup(
        configuration: .init(
            services: [.init(service: agent), .init(service: app, successTerminationBehavior: .gracefullyShutdownGroup)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        )
    )
    try await group.run()
} catch {
    FileHandle.standardError.write(Data("embedded-agent-example: \(error)\n".utf8))
    exit(1)
}

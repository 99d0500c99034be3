import ArgumentParser

/// The benchmark drivers, kept out of `feedback-agent` so the agent a kiosk runs carries
/// no load generator (docs/BENCHMARKS.md).
@main
struct FeedbackBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "feedback-bench",
        abstract: "Benchmarks for FeedbackMesh: hub ingest under load, durable spool appends, report latency.",
        subcommands: [LoadCommand.self, SpoolCommand.self, ReportsCommand.self, RawInsertCommand.self]
    )
}

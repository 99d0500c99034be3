import Agent
import AgentBench
import ArgumentParser
import Foundation
import Support
import Wire

struct LoadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load",
        abstract: "Load-tests a hub: many concurrent signed TLS connections, figures at the end.",
        discussion: """
            Each connection is a fresh node enrolled with one token from --tokens (make them with
            `feedback-hub agents token --any-site --count N`). Records are synthetic kiosk and
            popup ratings. The run stops when --records are acknowledged or after --max-seconds.
            """
    )

    @Option(help: "The hub's protocol listener, HOST:PORT.")
    var hub: String

    @Option(help: "The hub's CA certificate (PEM), as written by `feedback-hub init`.")
    var ca: String

    @Option(help: "File of enrollment tokens, one per line; one connection per token.")
    var tokens: String

    @Option(help: "Concurrent connections, 1–10000 (at most the number of tokens).")
    var connections = 50

    @Option(help: "Records to send in all, 1–100000000.")
    var records = 2_000_000

    @Option(help: "Records per batch, 1–10000.")
    var batchRecords = 1_000

    @Option(help: "Stop after this many seconds (1–86400) even if not every record was sent.")
    var maxSeconds = 120

    @Option(help: "Records per second across all connections, 0–10000000 (0: as fast as the hub takes them).")
    var rate = 0

    @Flag(help: "Seal batches while sending (steady load with bounded memory) instead of sealing all of them first.")
    var live = false

    func validate() throws {
        try RangeError.check(self.connections, 1...10_000, "--connections")
        // Batches are sealed before the clock starts: the record count bounds memory.
        try RangeError.check(self.records, 1...100_000_000, "--records")
        try RangeError.check(self.batchRecords, 1...10_000, "--batch-records")
        try RangeError.check(self.maxSeconds, 1...86_400, "--max-seconds")
        try RangeError.check(self.rate, 0...10_000_000, "--rate")
        _ = try self.hubAddress()
    }

    private func hubAddress() throws -> (host: String, port: Int) {
        guard let colon = self.hub.lastIndex(of: ":"), let port = Int(self.hub[self.hub.index(after: colon)...]),
            (1...65535).contains(port), colon > self.hub.startIndex
        else {
            throw ValidationError("--hub must be HOST:PORT, got '\(self.hub)'")
        }
        return (String(self.hub[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]")), port)
    }

    func run() async throws {
        guard let data = FileManager.default.contents(atPath: self.tokens) else {
            throw CLIError("cannot read the tokens file \(self.tokens)")
        }
        let tokens = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard tokens.count >= self.connections else {
            throw CLIError("\(self.tokens) holds \(tokens.count) tokens; --connections \(self.connections) needs one each")
        }
        let (host, port) = try self.hubAddress()
        var configuration = LoadGenerator.Configuration(
            host: host,
            port: port,
            tls: try HubConnection.tlsContext(trusting: self.ca),
            nodes: tokens.prefix(self.connections).map { (identity: AgentIdentity.generate(), token: $0) },
            records: self.records
        )
        configuration.batchRecords = self.batchRecords
        configuration.maxDuration = .seconds(self.maxSeconds)
        configuration.presealed = !self.live
        configuration.recordsPerSecond = self.rate > 0 ? self.rate : nil
        print("load: \(self.connections) connections to \(self.hub), \(self.records) records in batches of \(self.batchRecords)"
            + (self.live ? ", sealed while sending" : ", sealed before the clock starts")
            + (self.rate > 0 ? ", paced at \(self.rate) records/s" : ""))
        let report: LoadGenerator.Report
        do {
            report = try await LoadGenerator(configuration).run()
        } catch let error as ConnectionError {
            throw CLIError(error.description)
        }
        print(report)
        if report.batchesFailed > 0 { throw ExitCode(1) }
    }
}

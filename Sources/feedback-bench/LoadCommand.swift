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

    @Option(help: "Ratings captured this many seconds before they are sent, 0–31536000 (an agent's backlog after an outage).")
    var capturedAgo = 0

    @Option(help: "Enroll the nodes at this hub, HOST:PORT, then load --hub (a relay, which takes no tokens).")
    var enrollAt: String?

    func validate() throws {
        try RangeError.check(self.connections, 1...10_000, "--connections")
        // Batches are sealed before the clock starts: the record count bounds memory.
        try RangeError.check(self.records, 1...100_000_000, "--records")
        try RangeError.check(self.batchRecords, 1...10_000, "--batch-records")
        try RangeError.check(self.maxSeconds, 1...86_400, "--max-seconds")
        try RangeError.check(self.rate, 0...10_000_000, "--rate")
        try RangeError.check(self.capturedAgo, 0...31_536_000, "--captured-ago")
        _ = try Self.address(self.hub, "--hub")
        if let enrollAt = self.enrollAt { _ = try Self.address(enrollAt, "--enroll-at") }
    }

    private static func address(_ text: String, _ flag: String) throws -> (host: String, port: Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (1...65535).contains(port), colon > text.startIndex
        else {
            throw ValidationError("\(flag) must be HOST:PORT, got '\(text)'")
        }
        return (String(text[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]")), port)
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
        let (host, port) = try Self.address(self.hub, "--hub")
        let tls = try HubConnection.tlsContext(trusting: self.ca)
        var nodes = tokens.prefix(self.connections).map { (identity: AgentIdentity.generate(), token: $0) }
        if let enrollAt = self.enrollAt {
            let (enrollHost, enrollPort) = try Self.address(enrollAt, "--enroll-at")
            for node in nodes {
                do {
                    let connection = try await HubConnection.connect(
                        host: enrollHost, port: enrollPort, tls: tls, identity: node.identity, enrollmentToken: node.token
                    )
                    await connection.close()
                } catch let error as ConnectionError {
                    throw CLIError("enrolling at \(enrollAt): \(error.description)")
                }
            }
            nodes = nodes.map { (identity: $0.identity, token: "") }
            // The relay learns of the new nodes with the hub's next REGISTRY (within a second or two).
            try await Task.sleep(for: .seconds(3))
        }
        var configuration = LoadGenerator.Configuration(
            host: host,
            port: port,
            tls: tls,
            nodes: nodes,
            records: self.records
        )
        configuration.batchRecords = self.batchRecords
        configuration.maxDuration = .seconds(self.maxSeconds)
        configuration.presealed = !self.live
        configuration.recordsPerSecond = self.rate > 0 ? self.rate : nil
        configuration.capturedAgo = .seconds(self.capturedAgo)
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

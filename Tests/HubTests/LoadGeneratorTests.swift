import Agent
import AgentBench
import Foundation
import Hub
import Testing
import Wire

/// The load generator behind `feedback-bench load`, against a real hub: every batch it
/// reports as stored is in the store, and a second run with the same nodes continues after
/// the hub's committed sequence instead of colliding with it.
@Suite struct LoadGeneratorTests {
    /// The raw-insert benchmark stores what it says, in the hub's schema, and never writes
    /// over a store that is there.
    @Test func rawInsertsLandInTheHubsSchemaAndAStoreIsNeverOverwritten() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("raw-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let arguments = ["raw-insert", "--store", folder, "--records", "2500", "--batch-records", "1000", "--transaction-batches", "2"]
        let run = try await CLIRun.run(CLIRun.bench, arguments, timeout: 60)
        #expect(run.status == 0, "\(run.output)")
        #expect(run.output.hasPrefix("raw insert: 2500 records in 3 batches of 1000, 2 transactions of 2 batches,"), "\(run.output)")
        let store = try SQLiteStore(path: folder + "/feedback.sqlite")
        #expect(try store.recordCount() == 2500)
        #expect(try store.committedSequence(origin: try #require(try store.read { db in
            try UUID.fetchOne(db, sql: "SELECT origin FROM batches LIMIT 1")
        })) == 3)
        let again = try await CLIRun.run(CLIRun.bench, arguments, timeout: 60)
        #expect(again.status != 0 && again.output.contains("exists"), "\(again.output)")
    }

    @Test func concurrentConnectionsStoreEveryRecordOnceAndReRunsContinue() async throws {
        let hub = try await HubHarness.start()
        var nodes: [(identity: AgentIdentity, token: String)] = []
        for _ in 0..<4 {
            let token = EnrollmentToken.generate()
            try hub.hub.store.addEnrollmentToken(
                hash: NodeRegistry.tokenHash(token), sites: .any, role: .agent, createdAt: 0, expiresAt: .max
            )
            nodes.append((AgentIdentity.generate(), token))
        }
        var configuration = LoadGenerator.Configuration(
            host: "127.0.0.1", port: hub.port, tls: try HubConnection.tlsContext(trusting: hub.caPath), nodes: nodes,
            records: 4_200
        )
        configuration.batchRecords = 100

        let first = try await LoadGenerator(configuration).run()
        #expect(first.connections == 4)
        #expect(first.batchesStored == 42)
        #expect(first.recordsStored == 4_200)
        #expect(first.batchesFailed == 0 && first.batchesDuplicate == 0)
        #expect(first.latenciesMs.count == 42)
        #expect(first.bytesPerRecord > 10 && first.bytesPerRecord < 104, "compressed below the 104-byte encoding")
        #expect(try hub.recordCount == 4_200)

        // Enrolled now: the same nodes reconnect without tokens and seal above what is committed.
        configuration.nodes = nodes.map { (identity: $0.identity, token: "") }
        configuration.presealed = false
        let second = try await LoadGenerator(configuration).run()
        #expect(second.recordsStored == 4_200)
        #expect(second.batchesDuplicate == 0 && second.batchesFailed == 0)
        #expect(try hub.recordCount == 8_400)
        #expect(try hub.hub.store.batchCount() == 84)
        try await hub.stopAndRemove()
    }
}

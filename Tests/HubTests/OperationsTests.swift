import Agent
import Foundation
import Hub
import NIOCore
import TestSupport
import Testing
import Wire
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

@Suite(.serialized) struct OperationsTests {
    private func get(_ hub: HubHarness, _ path: String) async throws -> (Int, String) {
        let port = try #require(hub.hub.httpAddress?.port)
        let (data, response) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
    }

    @Test func metricsHealthAndReadinessAreServed() async throws {
        let hub = try await HubHarness.start()
        #expect(await eventually { hub.hub.httpAddress != nil })
        let identity = AgentIdentity.generate()
        try hub.register(identity)
        var factory = RecordFactory(origin: identity.nodeID)
        let connection = try await hub.connect(identity)
        let batch = try BatchSealer(origin: identity.nodeID, signingKey: identity.signingKey).seal(factory.records(42), sequence: 1)
        _ = try await connection.send(batch).get()
        _ = try await connection.send(batch).get()

        #expect(try await self.get(hub, "/healthz").0 == 200)
        #expect(try await self.get(hub, "/readyz").0 == 200)
        let (status, metrics) = try await self.get(hub, "/metrics")
        #expect(status == 200)
        #expect(metrics.contains("feedback_hub_records_stored_total 42"))
        #expect(metrics.contains(#"feedback_hub_batches_total{outcome="stored"} 1"#))
        #expect(metrics.contains(#"feedback_hub_batches_total{outcome="duplicate"} 1"#))
        #expect(metrics.contains("feedback_hub_commit_duration_seconds_bucket"))
        #expect(metrics.contains("feedback_hub_connections 1"))
        #expect(metrics.contains("feedback_hub_bytes_received_total"))
        await connection.close()
        try await hub.stopAndRemove()
    }

    @Test func gracefulShutdownSendsGoAwayAndLosesNothingAcknowledged() async throws {
        let hub = try await HubHarness.start()
        let identity = AgentIdentity.generate()
        try hub.register(identity)
        var factory = RecordFactory(origin: identity.nodeID)
        let connection = try await hub.connect(identity)
        let sealer = BatchSealer(origin: identity.nodeID, signingKey: identity.signingKey)
        let futures = try (1...40).map { connection.send(try sealer.seal(factory.records(500), sequence: UInt64($0))) }
        // Shut down once the hub has committed some, with more queued behind the credit.
        #expect(await eventually { (try? hub.recordCount) ?? 0 > 0 })
        let store = hub.hub.store
        try await hub.stop()
        #expect(connection.reconnectAfter == .seconds(1), "the node got GOAWAY with the hub's reconnect delay")

        var acknowledged = 0
        var refusedForShutdown = 0
        var unanswered = 0
        for future in futures {
            do {
                switch try await future.get() {
                case .acknowledged(let ack):
                    acknowledged += Int(ack.storedRecords)
                case .rejected(let reject) where reject.code == .shuttingDown && reject.disposition == .retryable:
                    refusedForShutdown += 1
                case .rejected(let reject):
                    Issue.record("a batch was refused with \(reject.code), \(reject.disposition) during a graceful shutdown")
                }
            } catch is ConnectionError {
                // Not answered before the connection closed: the node keeps it and sends it again.
                unanswered += 1
            }
        }
        #expect(acknowledged > 0)
        #expect(acknowledged / 500 + refusedForShutdown + unanswered == 40)
        // Every acknowledged record is in the store; nothing unacknowledged was half-written.
        #expect(try store.recordCount() >= acknowledged)
        #expect(try store.recordCount() % 500 == 0)
        try? FileManager.default.removeItem(at: hub.folder)
    }
}

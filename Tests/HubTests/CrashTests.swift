import Agent
import Foundation
import Hub
import NIOConcurrencyHelpers
import NIOCore
import TestSupport
import Testing
import Wire

/// The hub binary as a real process, killed for real with SIGKILL mid-load, then restarted
/// on the same store. Runs in a few seconds; needs `.build/debug/feedback-hub`, which
/// `swift build --build-tests` (scripts/test.sh) builds.
@Suite(.serialized)
struct CrashTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    /// `.build/debug/feedback-hub`, or the binary FEEDBACKMESH_HUB_BINARY names (to run the
    /// process tests against another build, such as an earlier release).
    static let binary =
        ProcessInfo.processInfo.environment["FEEDBACKMESH_HUB_BINARY"] ?? root.appendingPathComponent(".build/debug/feedback-hub").path

    /// Runs a `feedback-hub` command to its end; throws with its output if it fails.
    static func runHub(_ arguments: [String]) async throws -> String {
        let run = try await CLIRun.run(Self.binary, arguments)
        guard run.status == 0 else {
            throw StoreError("feedback-hub \(arguments.joined(separator: " ")) failed: \(run.output)")
        }
        return run.output
    }

    private func run(_ arguments: [String]) async throws -> String {
        try await Self.runHub(arguments)
    }

    private func serve(_ config: String) throws -> Process {
        let log = URL(fileURLWithPath: config).deletingLastPathComponent().appendingPathComponent("hub.log").path
        return try launch(Self.binary, ["serve", "--config", config, "--log-level", "info"], log: log)
    }

    private func connect(port: Int, ca: String, identity: AgentIdentity) async throws -> HubConnection {
        // A debug hub starting beside other suites' load on two cores can take many seconds.
        var lastError: (any Error)?
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            do {
                return try await HubConnection.connect(
                    host: "127.0.0.1", port: port, tls: try HubConnection.tlsContext(trusting: ca), identity: identity
                )
            } catch {
                lastError = error
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        throw lastError ?? StoreError("hub did not come up")
    }

    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    @Test func aHubKilledMidLoadLosesNothingItAcknowledged() async throws {
        #expect(FileManager.default.fileExists(atPath: Self.binary), "build first: swift build --build-tests")
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("crash-\(UUID())")
        defer { try? FileManager.default.removeItem(at: folder) }
        let port = try Self.freePort()
        _ = try await self.run(["init", folder.path, "--listen", "127.0.0.1:\(port)", "--http", "127.0.0.1:0"])
        let config = folder.appendingPathComponent("hub.yaml").path
        let ca = folder.appendingPathComponent("ca.pem").path
        let identity = AgentIdentity.generate()
        _ = try await self.run([
            "agents", "add", "--config", config, "--node-id", identity.nodeID.uuidString, "--public-key", identity.publicKeyBase64,
            "--any-site",
        ])

        // 400 batches of 200 records, sealed up front as an agent's spool would hold them.
        var factory = RecordFactory(origin: identity.nodeID)
        let sealer = BatchSealer(origin: identity.nodeID, signingKey: identity.signingKey)
        let batches = try (1...400).map { try sealer.seal(factory.records(200), sequence: UInt64($0)) }

        var hub = try self.serve(config)
        let connection = try await self.connect(port: port, ca: ca, identity: identity)
        let acknowledged = NIOLockedValueBoxSet()
        // Killed for real at the 20th acknowledgement, with more in flight: from the callback
        // itself, so a test process slow to be scheduled cannot let the hub finish first.
        let pid = hub.processIdentifier
        let futures = batches.map { batch in
            connection.send(batch).map { result -> Void in
                guard case .acknowledged = result else { return }
                acknowledged.insert(batch.header.sequence)
                if acknowledged.count == 20 { kill(pid, SIGKILL) }
            }
        }
        #expect(await eventually { acknowledged.count >= 20 })
        kill(hub.processIdentifier, SIGKILL)
        hub.waitUntilExit()
        for future in futures { _ = try? await future.get() }
        let acked = acknowledged.values
        #expect(acked.count >= 20)
        #expect(acked.count < batches.count, "the kill should land mid-load")

        // Restarted on the same store: every acknowledged batch is there, complete.
        hub = try self.serve(config)
        defer { kill(hub.processIdentifier, SIGKILL); hub.waitUntilExit() }
        let again = try await self.connect(port: port, ca: ca, identity: identity)
        #expect(again.welcome.resume.first?.committedSequence ?? 0 >= acked.max() ?? 0)
        let store = try SQLiteStore(path: folder.appendingPathComponent("feedback.sqlite").path)
        for sequence in acked {
            let count = try store.read { db in
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM records WHERE sequence = ?", arguments: [Int64(sequence)]) ?? 0
            }
            #expect(count == 200, "acknowledged batch \(sequence) has \(count) of 200 records")
        }

        // The agent re-sends everything it never saw acknowledged: exactly once in the end.
        let resent = batches.filter { !acked.contains($0.header.sequence) }.map { again.send($0) }
        for future in resent {
            guard case .acknowledged = try await future.get() else {
                Issue.record("a batch was refused on re-send")
                continue
            }
        }
        await again.close()
        #expect(try store.recordCount() == 400 * 200)
        #expect(try store.batchCount() == 400)
    }
}

import Agent
import Foundation
import Hub
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import TestSupport
import Wire

/// A real hub on loopback for tests: real TLS with a fresh CA, a real SQLite file in a
/// temporary folder, the real ServiceGroup. Ports are chosen by the kernel.
final class HubHarness: Sendable {
    let folder: URL
    let configuration: HubConfiguration
    let hub: Hub
    let caPath: String
    private let group: ServiceGroup
    private let task: Task<Void, any Error>
    let port: Int

    /// Starts a hub. With `folder`, reuses that folder's certificates and store (a restart);
    /// with `certificatesFrom`, copies another hub's CA and certificate (agents that trust
    /// one trust both). `fleetCheckInterval` is how often silent nodes are counted and
    /// silent rules evaluated (the hub's 10 s by default).
    static func start(
        folder existing: URL? = nil,
        certificatesFrom other: URL? = nil,
        adjust: (inout HubConfiguration) -> Void = { _ in },
        clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) },
        fleetCheckInterval: Duration = Hub.fleetCheckInterval
    ) async throws -> HubHarness {
        let manager = FileManager.default
        let folder = existing ?? manager.temporaryDirectory.appendingPathComponent("hub-\(UUID())")
        try manager.createDirectory(at: folder, withIntermediateDirectories: true)
        let caPath = folder.appendingPathComponent("ca.pem").path
        if let other {
            for name in ["ca.pem", "hub.pem", "hub-key.pem"] {
                try? manager.removeItem(at: folder.appendingPathComponent(name))
                try manager.copyItem(at: other.appendingPathComponent(name), to: folder.appendingPathComponent(name))
            }
        } else if !manager.fileExists(atPath: caPath) {
            let files = try HubCertificates.make(hostnames: ["localhost", "127.0.0.1"])
            try files.caCertificate.write(toFile: caPath, atomically: true, encoding: .utf8)
            try files.caPrivateKey.write(to: folder.appendingPathComponent("ca-key.pem"), atomically: true, encoding: .utf8)
            try files.serverCertificate.write(to: folder.appendingPathComponent("hub.pem"), atomically: true, encoding: .utf8)
            try files.serverPrivateKey.write(to: folder.appendingPathComponent("hub-key.pem"), atomically: true, encoding: .utf8)
        }
        var configuration = HubConfiguration(
            hubID: UUID(),
            tls: .init(
                certificate: folder.appendingPathComponent("hub.pem").path,
                privateKey: folder.appendingPathComponent("hub-key.pem").path,
                clientCA: nil
            )
        )
        configuration.listen = "127.0.0.1:0"
        configuration.http = "127.0.0.1:0"
        configuration.store = folder.appendingPathComponent("feedback.sqlite").path
        configuration.limits.drainTimeoutMs = 5_000
        adjust(&configuration)
        var logger = Logger(label: "test-hub")
        logger.logLevel = .warning
        let hub = try Hub(configuration: configuration, logger: logger, clock: clock, fleetCheckInterval: fleetCheckInterval)
        let group = ServiceGroup(configuration: .init(services: [try hub.application()], logger: logger))
        let task = Task { try await group.run() }
        let address = try await hub.server.listeningAddress()
        // The operations port binds beside it; tests call both.
        _ = await eventually { hub.httpAddress != nil }
        return HubHarness(
            folder: folder, configuration: configuration, hub: hub, caPath: caPath, group: group, task: task,
            port: address.port ?? 0
        )
    }

    private init(
        folder: URL, configuration: HubConfiguration, hub: Hub, caPath: String, group: ServiceGroup,
        task: Task<Void, any Error>, port: Int
    ) {
        self.folder = folder
        self.configuration = configuration
        self.hub = hub
        self.caPath = caPath
        self.group = group
        self.task = task
        self.port = port
    }

    /// Graceful shutdown (what SIGTERM does), then waits for the hub to return.
    func stop() async throws {
        await self.group.triggerGracefulShutdown()
        try await self.task.value
    }

    func stopAndRemove() async throws {
        try await self.stop()
        try? FileManager.default.removeItem(at: self.folder)
    }

    /// A folder `name` inside the hub's, holding a new agent identity (`agent.json`) that
    /// the hub knows: where an agent process's configuration and spool go.
    func agentFolder(_ name: String) throws -> (path: String, identity: AgentIdentity) {
        let folder = self.folder.appendingPathComponent(name).path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let identity = AgentIdentity.generate()
        try identity.save(to: folder + "/agent.json")
        try self.register(identity)
        return (folder, identity)
    }

    /// The start of an agent.yaml for a process test of an agent in a folder from
    /// ``agentFolder(_:)``: its key, this hub and its CA, a spool synced every 5 ms, small
    /// batches sealed within 20 ms. The test adds its own settings after it.
    var agentYAMLHead: String {
        """
        identity: agent.json
        hubs: ["127.0.0.1:\(self.port)"]
        ca: \(self.caPath)
        spool: {directory: spool, fsync: "5"}
        batch: {maxRecords: 50, maxAgeMs: 20}
        """
    }

    /// Registers `identity` as an agent (or relay) that may report for `sites`.
    func register(_ identity: AgentIdentity, role: Hello.Role = .agent, sites: SiteScope = .any) throws {
        try self.hub.store.addNode(
            RegisteredNode(
                nodeID: identity.nodeID,
                publicKey: [UInt8](identity.signingKey.publicKey.rawRepresentation),
                keyID: identity.keyID,
                role: role,
                sites: sites,
                revoked: false,
                createdAt: 0
            )
        )
        try self.hub.registry.refresh()
    }

    func connect(_ identity: AgentIdentity, role: Hello.Role = .agent, token: String = "") async throws -> HubConnection {
        try await HubConnection.connect(
            host: "127.0.0.1",
            port: self.port,
            tls: try HubConnection.tlsContext(trusting: self.caPath),
            identity: identity,
            role: role,
            enrollmentToken: token
        )
    }

    var recordCount: Int { get throws { try self.hub.store.recordCount() } }
}

/// Deterministic-enough records for one agent: unique ids, valid values.
struct RecordFactory {
    let origin: UUID
    var ids = UUIDv7()
    var time: Int64 = 1_733_047_200_000

    init(origin: UUID) {
        self.origin = origin
    }

    mutating func records(_ count: Int, negativeEvery: Int = 4) -> [FeedbackRecord] {
        (0..<count).map { index in
            self.time += 1
            return FeedbackRecord(
                id: self.ids.next(milliseconds: self.time),
                origin: self.origin,
                source: .kiosk,
                scale: .smiley,
                score: index % negativeEvery == 0 ? 1 : 4,
                occurredAt: self.time,
                capturedAt: self.time,
                site: "branch-\(index % 7)",
                channel: "kiosk",
                subject: "till-\(index % 3)"
            )
        }
    }
}

/// Collects the frames a hub sends, for tests that write raw bytes.
final class FrameCollector: ChannelInboundHandler, Sendable {
    typealias InboundIn = Frame
    let frames = NIOLockedValueBox<[Frame]>([])

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = Self.unwrapInboundIn(data)
        self.frames.withLockedValue { $0.append(frame) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

extension HubHarness {
    /// A TLS connection with no protocol logic: the test writes bytes, the collector keeps
    /// what comes back.
    func rawConnection() async throws -> (any Channel, FrameCollector) {
        let collector = FrameCollector()
        let tls = try HubConnection.tlsContext(trusting: self.caPath)
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(NIOSSLClientHandler(context: tls, serverHostname: nil))
                    try sync.addHandler(ByteToMessageHandler(FrameDecoder()))
                    try sync.addHandler(collector)
                }
            }
            .connect(host: "127.0.0.1", port: self.port).get()
        return (channel, collector)
    }
}

extension HubHarness {
    /// The CHALLENGE a raw connection received first, waiting for it up to 10 s.
    func challenge(on collector: FrameCollector) async throws -> Challenge {
        _ = await eventually { !collector.frames.withLockedValue { $0 }.isEmpty }
        guard case .challenge(let challenge)? = collector.frames.withLockedValue({ $0.first }) else {
            throw StoreError("the hub sent no CHALLENGE first")
        }
        return challenge
    }

    /// A raw TLS connection that answered the CHALLENGE as `identity` and got WELCOME.
    func authenticatedRawConnection(_ identity: AgentIdentity) async throws -> (any Channel, FrameCollector) {
        let (channel, collector) = try await self.rawConnection()
        let hello = try Hello(
            answering: try await self.challenge(on: collector), version: 1, nodeID: identity.nodeID, role: .agent,
            signingKey: identity.signingKey
        )
        var bytes = ByteBuffer()
        Frame.hello(hello).write(into: &bytes)
        try await channel.writeAndFlush(bytes)
        let welcomed = await eventually {
            collector.frames.withLockedValue { frames in frames.contains { if case .welcome = $0 { true } else { false } } }
        }
        guard welcomed else { throw StoreError("no WELCOME") }
        return (channel, collector)
    }
}

/// Runs blocking work (sockets, waits) on a thread of its own: the concurrency pool has
/// as many threads as cores, and a test blocking one stalls every suite beside it.
func offThePool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

/// Runs blocking `body` on a thread of its own, like ``offThePool(_:)``, but gives up with an
/// error after `limit`: a hang guard for calls that must not block for ever (the thread is
/// left to finish on its own).
func offThePool<T: Sendable>(within limit: Duration, _ body: @escaping @Sendable () throws -> T) async throws -> T {
    let resumed = NIOLockedValueBox(false)
    return try await withCheckedThrowingContinuation { continuation in
        let resume: @Sendable (Result<T, any Error>) -> Void = { result in
            let first = resumed.withLockedValue { done in
                defer { done = true }
                return !done
            }
            if first { continuation.resume(with: result) }
        }
        Thread { resume(Result { try body() }) }.start()
        Thread {
            Thread.sleep(forTimeInterval: Double(limit.components.seconds))
            resume(.failure(StoreError("still running after \(limit): it hangs")))
        }.start()
    }
}

/// Waits for `process` to exit (a graceful stop may take its drain timeout) off the pool.
func waitForExit(_ process: Process) async {
    _ = try? await offThePool { process.waitUntilExit() }
}

/// A thread-safe set of sequences, filled from event-loop callbacks.
final class NIOLockedValueBoxSet: Sendable {
    private let box = NIOLockedValueBox<Set<UInt64>>([])
    func insert(_ value: UInt64) { self.box.withLockedValue { _ = $0.insert(value) } }
    var count: Int { self.box.withLockedValue { $0.count } }
    var values: Set<UInt64> { self.box.withLockedValue { $0 } }
}

/// Runs `binary` to its end (off the concurrency pool: it waits for the process) and
/// returns its exit status and everything it printed.
func runToEnd(_ binary: String, _ arguments: [String]) async throws -> (status: Int32, output: String) {
    let run = try await CLIRun.run(binary, arguments)
    return (run.status, run.output)
}

/// Starts `binary` as a real process, its output appended to `log`.
func launch(_ binary: String, _ arguments: [String], log: String) throws -> Process {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: binary)
    process.arguments = arguments
    if !FileManager.default.fileExists(atPath: log) { _ = FileManager.default.createFile(atPath: log, contents: nil) }
    let handle = FileHandle(forWritingAtPath: log)
    handle?.seekToEndOfFile()
    process.standardOutput = handle
    process.standardError = handle
    try process.run()
    return process
}


extension Hub {
    /// The hub's store as the SQLite store these tests run on, for checks written in SQL.
    var sqlite: SQLiteStore {
        get throws {
            guard let store = self.store as? SQLiteStore else { throw StoreError("the hub's store is not SQLite") }
            return store
        }
    }
}

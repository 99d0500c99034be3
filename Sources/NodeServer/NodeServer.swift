import Foundation
import ListenerLimits
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import Synchronization
import Wire

/// The server side of the protocol, for a hub and for a relay: TLS 1.3 (optionally mutual),
/// frame codec, one ``NodeConnectionHandler`` per connection, and an ``IngestBackend`` that
/// authenticates nodes and keeps what the server takes (the hub's store, a relay's spool).
///
/// Connections hold one of two kinds of slot. From accept until WELCOME a connection holds a
/// handshake slot (`limits.maxHandshakes`, at most `limits.maxHandshakesPerAddress` per source
/// address; when they are full the oldest handshake is evicted once it has run for a second),
/// so a flood of connections that never finish TLS cannot lock agents out; a handshake whose
/// HELLO is being verified is not evicted. An authenticated node moves to a connection slot
/// (`limits.maxConnections`, at most `maxConnectionsPerNode` per node: its newest connection
/// replaces its oldest); with none free it is refused with `tooManyConnections` instead of
/// WELCOME. Every handshake ends at `handshakeTimeoutMs`. A node revoked while connected is
/// disconnected at the next backend refresh (every second).
///
/// As a `Service`, it runs until graceful shutdown; then it stops accepting, sends GOAWAY
/// to every node, lets in-flight batches finish (up to the drain timeout), and returns with
/// every acknowledged batch durable.
public final class NodeServer: Service, Sendable {
    private let configuration: Configuration
    private let backend: any IngestBackend
    private let metrics: NodeServerMetrics
    private let logger: Logger
    private let sslContext: NIOSSLContext
    private let group: MultiThreadedEventLoopGroup
    private let blockingPool: NIOThreadPool
    private let slots: Mutex<Slots>
    private let state = Mutex<Lifecycle>(.idle)
    private let bound = Mutex<Result<SocketAddress, NodeServerError>?>(nil)

    enum Lifecycle: Sendable {
        case idle, running, draining, stopped
    }

    /// Every open connection and the slot it holds.
    struct Slots: Sendable {
        enum Held: Sendable {
            case handshake(ConnectionSlots<any Channel>.Ticket)
            case connection(ConnectionSlots<any Channel>.Ticket)
            case none
        }

        struct Tracked: Sendable {
            var channel: any Channel
            var held: Held
            /// The node, once authenticated.
            var node: UUID?
        }

        var handshakes: ConnectionSlots<any Channel>
        var connections: ConnectionSlots<any Channel>
        var open: [ObjectIdentifier: Tracked] = [:]
    }

    /// Creates the server and its TLS context; nothing listens until ``run()``.
    ///
    /// - Throws: ``NodeServerError`` with code `tlsFiles` when the TLS files cannot be used.
    public init(
        configuration: Configuration,
        backend: any IngestBackend,
        metrics: NodeServerMetrics,
        logger: Logger
    ) throws {
        self.configuration = configuration
        self.backend = backend
        self.metrics = metrics
        self.logger = logger
        self.sslContext = try ServerTLS.serverContext(configuration.tls)
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        self.blockingPool = NIOThreadPool(numberOfThreads: 2)
        self.blockingPool.start()
        self.slots = Mutex(
            Slots(
                handshakes: ConnectionSlots(
                    limits: .init(
                        capacity: configuration.limits.maxHandshakes,
                        perAddress: configuration.limits.maxHandshakesPerAddress,
                        evictAfter: .seconds(1),
                        evictWithinAddressAfter: .seconds(1)
                    )
                ),
                // Keyed by node id: a node's newest connection replaces its oldest at once.
                connections: ConnectionSlots(
                    limits: .init(
                        capacity: configuration.limits.maxConnections, perAddress: configuration.limits.maxConnectionsPerNode,
                        evictWithinAddressAfter: .zero
                    )
                )
            )
        )
    }

    /// The address the listener is bound to: waits (up to 30 s) until ``run()`` has bound it.
    public func listeningAddress() async throws -> SocketAddress {
        for _ in 0..<3000 {
            if let result = self.bound.withLock({ $0 }) { return try result.get() }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw NodeServerError(.notListening, "the \(self.configuration.name) did not start listening within 30 s")
    }

    /// Authenticated connections open now (a relay reports them as its `downstream`).
    public var connectionCount: Int {
        self.slots.withLock { $0.connections.count }
    }

    /// Whether the server accepts batches (bound and not draining): the hub's `/readyz`.
    public var isReady: Bool {
        if case .running = self.state.withLock({ $0 }) { return true }
        return false
    }

    /// Listens until graceful shutdown, then drains.
    public func run() async throws {
        let host = self.configuration.host
        let port = self.configuration.port
        let serverChannel: any Channel
        do {
            serverChannel = try await self.bootstrap().bind(host: host, port: port).get()
        } catch {
            let address = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
            let failure = NodeServerError(.listen, "cannot listen on \(address): \(error)")
            self.bound.withLock { $0 = .failure(failure) }
            throw failure
        }
        self.state.withLock { $0 = .running }
        if let local = serverChannel.localAddress { self.bound.withLock { $0 = .success(local) } }
        self.logger.info("\(self.configuration.name) listening", metadata: ["address": "\(serverChannel.localAddress.map { "\($0)" } ?? "?")"])

        await withTaskGroup(of: Void.self) { tasks in
            tasks.addTask { await self.refreshBackendUntilCancelled() }
            try? await gracefulShutdown()
            tasks.cancelAll()
        }
        await self.drain(serverChannel)
    }

    private func drain(_ serverChannel: any Channel) async {
        self.state.withLock { $0 = .draining }
        self.logger.info("\(self.configuration.name) draining", metadata: ["connections": "\(self.slots.withLock { $0.open.count })"])
        try? await serverChannel.close()
        for channel in self.openChannels {
            channel.pipeline.fireUserInboundEventTriggered(ShutdownRequested())
        }
        let deadline = ContinuousClock.now + .milliseconds(self.configuration.limits.drainTimeoutMs)
        while ContinuousClock.now < deadline, self.slots.withLock({ !$0.open.isEmpty }) {
            try? await Task.sleep(for: .milliseconds(20))
        }
        for channel in self.openChannels {
            try? await channel.close()
        }
        // Whatever the backend already took is durable before we return. It blocks (the hub
        // waits for its last commit): on the blocking pool, not on a concurrency thread.
        let backend = self.backend
        do {
            try await self.blockingPool.runIfActive { backend.stopTaking() }
        } catch {
            backend.stopTaking()
        }
        self.state.withLock { $0 = .stopped }
        try? await self.blockingPool.shutdownGracefully()
        try? await self.group.shutdownGracefully()
        self.logger.info("\(self.configuration.name) stopped")
    }

    /// Closes the connections of nodes revoked since they authenticated: a revocation takes
    /// effect for open connections too, not only at the next HELLO.
    private func disconnectRevokedNodes() {
        let revoked = self.slots.withLock { slots in
            slots.open.values.filter { tracked in tracked.node.map(self.backend.mustDisconnect) ?? false }.map(\.channel)
        }
        for channel in revoked { channel.close(promise: nil) }
    }

    private var openChannels: [any Channel] {
        self.slots.withLock { $0.open.values.map(\.channel) }
    }

    private func refreshBackendUntilCancelled() async {
        var sentRevision = self.backend.registrySnapshot()?.revision
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(1))
            do {
                // May read a database: on the blocking pool, not a concurrency thread.
                let backend = self.backend
                try await self.blockingPool.runIfActive { try backend.refresh() }
                self.disconnectRevokedNodes()
                // A changed registry reaches every connected relay within a second.
                if let snapshot = backend.registrySnapshot(), snapshot.revision != sentRevision {
                    sentRevision = snapshot.revision
                    for channel in self.openChannels {
                        channel.pipeline.fireUserInboundEventTriggered(RegistryChanged(frames: snapshot.frames))
                    }
                }
            } catch is CancellationError {
                return
            } catch {
                self.logger.warning("backend refresh failed", metadata: ["error": "\(error)"])
            }
        }
    }

    private func bootstrap() -> ServerBootstrap {
        let settings = NodeConnectionHandler.Settings(
            name: self.configuration.name,
            welcome: Welcome(
                maxFrameLength: UInt32(clamping: FrameLimits(batch: self.configuration.batchLimits).maxFrameLength),
                maxBatchRecords: UInt32(clamping: self.configuration.limits.maxBatchRecords),
                maxUncompressedBytes: UInt32(clamping: self.configuration.limits.maxUncompressedBytes),
                initialCredit: UInt32(clamping: self.configuration.limits.credit),
                idleTimeoutMilliseconds: UInt32(clamping: self.configuration.limits.idleTimeoutMs),
                resume: []
            ),
            batchLimits: self.configuration.batchLimits,
            handshakeTimeout: .milliseconds(Int64(self.configuration.limits.handshakeTimeoutMs)),
            idleTimeout: .milliseconds(Int64(self.configuration.limits.idleTimeoutMs)),
            maxIncomingHops: self.configuration.maxIncomingHops,
            goAway: self.configuration.goAway
        )
        return ServerBootstrap(group: self.group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try self.setUp(channel, settings)
                }
            }
    }

    private func setUp(_ channel: any Channel, _ settings: NodeConnectionHandler.Settings) throws {
        let id = ObjectIdentifier(channel)
        if case .draining = self.state.withLock({ $0 }) {
            self.metrics.connectionRefused(.shuttingDown)
            channel.close(promise: nil)
            return
        }
        let admission = self.slots.withLock { slots -> ConnectionSlots<any Channel>.Admission in
            let admission = slots.handshakes.admit(channel, from: channel.remoteAddress?.slotKey ?? "", at: .now)
            switch admission {
            case .admitted(let ticket), .admittedEvicting(let ticket, _):
                slots.open[id] = .init(channel: channel, held: .handshake(ticket))
            case .refused:
                break
            }
            return admission
        }
        switch admission {
        case .refused(let refusal):
            // No TLS, no frame: refusing must cost less than the flood that causes it.
            switch refusal {
            case .addressFull: self.metrics.connectionRefused(.addressFull)
            case .full: self.metrics.connectionRefused(.handshakesFull)
            }
            channel.close(promise: nil)
            return
        case .admittedEvicting(_, let evicted):
            self.metrics.handshakesEvicted.increment()
            evicted.close(promise: nil)
        case .admitted:
            break
        }
        self.recordSlotMetrics()
        channel.closeFuture.whenComplete { _ in
            self.slots.withLock { slots in
                switch slots.open.removeValue(forKey: id)?.held {
                case .handshake(let ticket)?: slots.handshakes.release(ticket)
                case .connection(let ticket)?: slots.connections.release(ticket)
                case .none?, nil: break
                }
            }
            self.recordSlotMetrics()
        }
        let sync = channel.pipeline.syncOperations
        let activity = ByteCounter(metrics: self.metrics)
        let frameGuard = HandshakeFrameGuard()
        try sync.addHandler(NIOSSLServerHandler(context: self.sslContext))
        try sync.addHandler(activity)
        try sync.addHandler(frameGuard)
        try sync.addHandler(ByteToMessageHandler(FrameDecoder(limits: FrameLimits(batch: self.configuration.batchLimits))))
        try sync.addHandler(MessageToByteHandler(FrameEncoder()))
        try sync.addHandler(
            NodeConnectionHandler(
                nodeID: self.configuration.nodeID,
                settings: settings,
                backend: self.backend,
                blockingPool: self.blockingPool,
                metrics: self.metrics,
                admission: .init(verifying: { self.verifying(id) }, authenticated: { self.promote(id, node: $0) }),
                frameGuard: frameGuard,
                activity: activity,
                logger: self.logger
            )
        )
    }

    /// A HELLO is being verified (perhaps a token redeemed): its handshake is not evicted.
    private func verifying(_ id: ObjectIdentifier) {
        self.slots.withLock { slots in
            if case .handshake(let ticket)? = slots.open[id]?.held { slots.handshakes.markBusy(ticket) }
        }
    }

    /// Moves an authenticated connection from its handshake slot to a connection slot;
    /// false when none is free (or its handshake slot was taken from it meanwhile).
    private func promote(_ id: ObjectIdentifier, node: UUID) -> Bool {
        let (promoted, replaced) = self.slots.withLock { slots -> (Bool, (any Channel)?) in
            guard var tracked = slots.open[id], case .handshake(let ticket) = tracked.held, slots.handshakes.holds(ticket) else {
                return (false, nil)
            }
            slots.handshakes.release(ticket)
            var replaced: (any Channel)?
            switch slots.connections.admit(tracked.channel, from: node.uuidString, at: .now) {
            case .admitted(let slot):
                tracked.held = .connection(slot)
            case .admittedEvicting(let slot, let oldest):
                tracked.held = .connection(slot)
                replaced = oldest
            case .refused:
                tracked.held = .none
            }
            tracked.node = node
            slots.open[id] = tracked
            if case .connection = tracked.held { return (true, replaced) }
            return (false, nil)
        }
        replaced?.close(promise: nil)
        if !promoted { self.metrics.connectionRefused(.connectionsFull) }
        self.recordSlotMetrics()
        return promoted
    }

    private func recordSlotMetrics() {
        let (handshakes, connections) = self.slots.withLock { ($0.handshakes.count, $0.connections.count) }
        self.metrics.handshakes.record(handshakes)
        self.metrics.connections.record(connections)
    }
}

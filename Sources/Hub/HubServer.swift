import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import Synchronization
import Wire

/// The protocol listener: TLS 1.3 (optionally mutual), frame codec, one
/// ``HubConnectionHandler`` per connection, the group committer behind them.
///
/// As a `Service`, it runs until graceful shutdown; then it stops accepting, sends GOAWAY
/// to every node, lets in-flight batches commit (up to the drain timeout), and returns with
/// every acknowledged batch durable.
public final class HubServer: Service, Sendable {
    private let configuration: HubConfiguration
    private let store: any FeedbackStore
    private let registry: NodeRegistry
    private let metrics: HubMetrics
    private let logger: Logger
    private let sslContext: NIOSSLContext
    private let group: MultiThreadedEventLoopGroup
    private let blockingPool: NIOThreadPool
    private let committer: GroupCommitter
    private let connections = Mutex<[ObjectIdentifier: any Channel]>([:])
    private let state = Mutex<Lifecycle>(.idle)
    private let bound = Mutex<Result<SocketAddress, StoreError>?>(nil)

    enum Lifecycle: Sendable {
        case idle, running, draining, stopped
    }

    /// Creates the server; nothing listens until ``run()``.
    public init(
        configuration: HubConfiguration,
        store: any FeedbackStore,
        registry: NodeRegistry,
        metrics: HubMetrics,
        logger: Logger
    ) throws {
        self.configuration = configuration
        self.store = store
        self.registry = registry
        self.metrics = metrics
        self.logger = logger
        self.sslContext = try HubTLS.serverContext(configuration.tls)
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        self.blockingPool = NIOThreadPool(numberOfThreads: 2)
        self.blockingPool.start()
        var limits = GroupCommitter.Limits()
        limits.maxBatches = configuration.commit.maxBatches
        limits.maxRecords = configuration.commit.maxRecords
        self.committer = GroupCommitter(store: store, limits: limits, metrics: metrics, logger: logger)
    }

    /// The address the listener is bound to: waits (up to 30 s) until ``run()`` has bound it.
    public func listeningAddress() async throws -> SocketAddress {
        for _ in 0..<3000 {
            if let result = self.bound.withLock({ $0 }) { return try result.get() }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw StoreError("the hub did not start listening within 30 s")
    }

    /// Whether the hub accepts batches (bound and not draining): `/readyz`.
    public var isReady: Bool {
        if case .running = self.state.withLock({ $0 }) { return true }
        return false
    }

    /// Listens until graceful shutdown, then drains.
    public func run() async throws {
        let address = try HostPort(self.configuration.listen, key: "listen")
        let serverChannel: any Channel
        do {
            serverChannel = try await self.bootstrap().bind(host: address.host, port: address.port).get()
        } catch {
            let failure = StoreError("cannot listen on \(address): \(error)")
            self.bound.withLock { $0 = .failure(failure) }
            throw failure
        }
        self.state.withLock { $0 = .running }
        if let local = serverChannel.localAddress { self.bound.withLock { $0 = .success(local) } }
        self.logger.info("hub listening", metadata: ["address": "\(serverChannel.localAddress.map { "\($0)" } ?? "?")"])

        await withTaskGroup(of: Void.self) { tasks in
            tasks.addTask { await self.refreshRegistryUntilCancelled() }
            try? await gracefulShutdown()
            tasks.cancelAll()
        }
        await self.drain(serverChannel)
    }

    private func drain(_ serverChannel: any Channel) async {
        self.state.withLock { $0 = .draining }
        self.logger.info("hub draining", metadata: ["connections": "\(self.connections.withLock { $0.count })"])
        try? await serverChannel.close()
        for channel in self.connections.withLock({ Array($0.values) }) {
            channel.pipeline.fireUserInboundEventTriggered(ShutdownRequested())
        }
        let deadline = ContinuousClock.now + .milliseconds(self.configuration.limits.drainTimeoutMs)
        while ContinuousClock.now < deadline, self.connections.withLock({ !$0.isEmpty }) {
            try? await Task.sleep(for: .milliseconds(20))
        }
        for channel in self.connections.withLock({ Array($0.values) }) {
            try? await channel.close()
        }
        // Whatever was already handed to the committer is committed before we return.
        self.committer.stop()
        self.state.withLock { $0 = .stopped }
        try? await self.blockingPool.shutdownGracefully()
        try? await self.group.shutdownGracefully()
        self.logger.info("hub stopped")
    }

    private func refreshRegistryUntilCancelled() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(1))
            do {
                try self.registry.refresh()
            } catch {
                self.logger.warning("registry refresh failed", metadata: ["error": "\(error)"])
            }
        }
    }

    private func bootstrap() -> ServerBootstrap {
        let settings = HubConnectionHandler.Settings(
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
            goAway: GoAway(code: .shuttingDown, reconnectAfterMilliseconds: 1_000, message: "hub shutting down")
        )
        return ServerBootstrap(group: self.group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try self.setUp(channel, settings)
                }
            }
    }

    private func setUp(_ channel: any Channel, _ settings: HubConnectionHandler.Settings) throws {
        let id = ObjectIdentifier(channel)
        let admitted = self.connections.withLock { connections -> Bool in
            guard connections.count < self.configuration.limits.maxConnections else { return false }
            connections[id] = channel
            return true
        }
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(NIOSSLServerHandler(context: self.sslContext))
        guard admitted else {
            self.metrics.rejected(.tooManyConnections)
            try sync.addHandler(MessageToByteHandler(FrameEncoder()))
            try sync.addHandler(RefuseConnectionHandler(
                reject: .connection(.tooManyConnections, .retryable, "the hub has its maximum of \(self.configuration.limits.maxConnections) connections")
            ))
            return
        }
        self.metrics.connections.record(self.connections.withLock { $0.count })
        channel.closeFuture.whenComplete { _ in
            let count = self.connections.withLock { connections in
                connections[id] = nil
                return connections.count
            }
            self.metrics.connections.record(count)
        }
        if case .draining = self.state.withLock({ $0 }) {
            try sync.addHandler(MessageToByteHandler(FrameEncoder()))
            try sync.addHandler(RefuseConnectionHandler(reject: .connection(.shuttingDown, .retryable, "the hub is shutting down")))
            return
        }
        try sync.addHandler(ByteCounter(counter: self.metrics))
        try sync.addHandler(ByteToMessageHandler(FrameDecoder(limits: FrameLimits(batch: self.configuration.batchLimits))))
        try sync.addHandler(MessageToByteHandler(FrameEncoder()))
        try sync.addHandler(IdleStateHandler(readTimeout: .milliseconds(Int64(self.configuration.limits.idleTimeoutMs))))
        try sync.addHandler(
            HubConnectionHandler(
                hubID: self.configuration.hubID,
                settings: settings,
                registry: self.registry,
                store: self.store,
                committer: self.committer,
                blockingPool: self.blockingPool,
                metrics: self.metrics,
                logger: self.logger
            )
        )
    }
}

/// Answers a connection the hub cannot take with one REJECT, then closes it.
final class RefuseConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = Any
    typealias OutboundOut = Frame
    private let reject: Reject

    init(reject: Reject) {
        self.reject = reject
    }

    func channelActive(context: ChannelHandlerContext) {
        let channel = context.channel
        context.writeAndFlush(Self.wrapOutboundOut(.reject(self.reject))).whenComplete { _ in channel.close(promise: nil) }
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { self.channelActive(context: context) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
}

/// Counts bytes received, before TLS-decrypted bytes are decoded into frames.
final class ByteCounter: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    private let metrics: HubMetrics

    init(counter: HubMetrics) {
        self.metrics = counter
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.metrics.bytesReceived.increment(by: Int64(Self.unwrapInboundIn(data).readableBytes))
        context.fireChannelRead(data)
    }
}

import Crypto
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Support
import Synchronization
import Wire

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What a hub answered for one batch.
public enum BatchResult: Sendable, Hashable {
    /// Committed (stored or duplicate): the batch may leave the spool.
    case acknowledged(Ack)
    /// Refused: retry later (retryable) or dead-letter (permanent).
    case rejected(Reject)
}

/// Why a connection ended or could not be made.
public struct ConnectionError: Error, Sendable, CustomStringConvertible {
    /// The hub's connection-level REJECT, when it sent one.
    public var reject: Reject?
    /// What happened, in words.
    public var reason: String
    /// The certificate check that refused the TLS handshake, when one did.
    public var tls: TLSFailure? = nil

    /// "REASON" (and the reject code, if any).
    public var description: String {
        if let reject { return "\(self.reason) (\(reject.code), \(reject.disposition))" }
        return self.reason
    }
}

/// One TLS connection from a node to a hub: handshake, credit-limited pipelining of sealed
/// batches, keepalive. Batches whose answer has not arrived when the connection ends fail
/// with ``ConnectionError``; their sender keeps them and sends them again.
public final class HubConnection: Sendable {
    /// The hub's WELCOME: limits, credit and resume points.
    public let welcome: Welcome
    private let channel: any Channel
    private let goAwayDelay: ReconnectDelay

    private init(welcome: Welcome, channel: any Channel, goAwayDelay: ReconnectDelay) {
        self.welcome = welcome
        self.channel = channel
        self.goAwayDelay = goAwayDelay
    }

    /// How long the hub asked the node to wait before reconnecting, once it sent GOAWAY.
    public var reconnectAfter: Duration? { self.goAwayDelay.value.withLock { $0 } }

    /// The connection-level REJECT that ended the connection, if one did.
    public var refusal: Reject? { self.goAwayDelay.refusal.withLock { $0 } }

    /// The certificate a node presents to hubs that require mutual TLS, and its key (PEM
    /// files, as `feedback-hub certs client` writes them).
    public struct ClientCertificate: Sendable, Hashable {
        /// The certificate, issued for this node by the hub's client CA.
        public var certificate: String
        /// Its private key.
        public var privateKey: String

        /// Names the two files.
        public init(certificate: String, privateKey: String) {
            self.certificate = certificate
            self.privateKey = privateKey
        }
    }

    /// A TLS 1.3 client context trusting the CA in `caFile` (PEM) and, for hubs that require
    /// mutual TLS, presenting `clientCertificate`.
    ///
    /// - Throws: ``FileError`` naming the file that cannot be used.
    public static func tlsContext(trusting caFile: String, clientCertificate: ClientCertificate? = nil) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv13
        do {
            configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
        } catch {
            throw FileError(path: caFile, "cannot be loaded as the hubs' CA certificate (PEM): \(error)")
        }
        if let clientCertificate {
            do {
                configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(clientCertificate.certificate).map { .certificate($0) }
            } catch {
                throw FileError(path: clientCertificate.certificate, "cannot be loaded as a client certificate (PEM): \(error)")
            }
            guard !configuration.certificateChain.isEmpty else {
                throw FileError(path: clientCertificate.certificate, "holds no certificate")
            }
            do {
                configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: clientCertificate.privateKey, format: .pem))
            } catch {
                throw FileError(path: clientCertificate.privateKey, "cannot be loaded as a private key (PEM): \(error)")
            }
        }
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            // The CA and both files loaded: what is left to refuse is a key of another certificate.
            throw FileError(
                path: clientCertificate?.privateKey ?? caFile,
                clientCertificate.map { "is not the key of the client certificate \($0.certificate): \(error)" } ?? "cannot be used: \(error)"
            )
        }
    }

    /// Connects, completes the handshake and returns once the hub has sent WELCOME.
    ///
    /// The TLS and protocol handshake must finish within `handshakeTimeout`; after WELCOME,
    /// a hub from which nothing (not even a PONG) arrives for its idle timeout is dropped.
    /// Cancelling the calling task closes the connection.
    ///
    /// - Throws: ``ConnectionError`` with the hub's REJECT when it refused the node, or
    ///   when the hub did not answer in time.
    public static func connect(
        host: String,
        port: Int,
        tls: NIOSSLContext,
        identity: AgentIdentity,
        role: Hello.Role = .agent,
        enrollmentToken: String = "",
        onRegistry: (@Sendable (RegistryUpdate) -> Void)? = nil,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        connectTimeout: TimeAmount = .seconds(10),
        handshakeTimeout: TimeAmount = .seconds(10)
    ) async throws -> HubConnection {
        let established = group.any().makePromise(of: Welcome.self)
        let goAwayDelay = ReconnectDelay()
        let serverHostname = Self.isIPAddress(host) ? nil : host
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(connectTimeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    let diagnostics = TLSDiagnostics(host: host, nodeID: identity.nodeID, context: tls)
                    try sync.addHandler(diagnostics.clientHandler(context: tls, serverHostname: serverHostname))
                    try sync.addHandler(ByteToMessageHandler(FrameDecoder()))
                    try sync.addHandler(MessageToByteHandler(FrameEncoder()))
                    try sync.addHandler(
                        UplinkHandler(
                            identity: identity, role: role, enrollmentToken: enrollmentToken, established: established,
                            handshakeTimeout: handshakeTimeout, goAwayDelay: goAwayDelay, diagnostics: diagnostics,
                            onRegistry: onRegistry
                        )
                    )
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: host, port: port).get()
        } catch {
            established.fail(ConnectionError(reason: "cannot connect to \(host):\(port): \(error)"))
            throw ConnectionError(reason: "cannot connect to \(host):\(port): \(error)")
        }
        do {
            let welcome = try await withTaskCancellationHandler {
                try await established.futureResult.get()
            } onCancel: {
                channel.close(promise: nil)
            }
            return HubConnection(welcome: welcome, channel: channel, goAwayDelay: goAwayDelay)
        } catch {
            try? await channel.close()
            throw error
        }
    }

    /// Sends a sealed batch as soon as credit allows; the future completes with the hub's
    /// answer, or fails with ``ConnectionError`` if the connection ends first.
    ///
    /// A batch of another origin (a relay passing it on) goes as FORWARD with `path` (the
    /// relays it passed before this node) and this node appended, when the upstream speaks
    /// version 2; to a version 1 upstream it goes as a plain BATCH.
    public func send(_ batch: SealedBatch, path: [UUID] = []) -> EventLoopFuture<BatchResult> {
        let promise = self.channel.eventLoop.makePromise(of: BatchResult.self)
        self.channel.pipeline.handler(type: UplinkHandler.self).whenComplete { result in
            switch result {
            case .success(let handler): handler.send(batch, path: path, promise: promise)
            case .failure: promise.fail(ConnectionError(reason: "the connection is closed"))
            }
        }
        return promise.futureResult
    }

    /// Sends a STATUS report (this node's, or one a relay passes on); nothing is answered.
    /// Dropped on a version 1 connection, which has no STATUS.
    public func send(status report: StatusReport) {
        guard self.welcome.version >= ProtocolVersion.v2 else { return }
        self.channel.writeAndFlush(Frame.status(report), promise: nil)
    }

    /// Carries a node's enrollment up (a relay, version 2): the future completes with the
    /// upstream's answer, or fails if the connection ends first or speaks version 1.
    public func enroll(_ request: EnrollRequest) -> EventLoopFuture<EnrollAnswer> {
        let promise = self.channel.eventLoop.makePromise(of: EnrollAnswer.self)
        guard self.welcome.version >= ProtocolVersion.v2 else {
            promise.fail(ConnectionError(reason: "the upstream speaks protocol version \(self.welcome.version), which cannot carry an enrollment"))
            return promise.futureResult
        }
        self.channel.pipeline.handler(type: UplinkHandler.self).whenComplete { result in
            switch result {
            case .success(let handler): handler.enroll(request, promise: promise)
            case .failure: promise.fail(ConnectionError(reason: "the connection is closed"))
            }
        }
        return promise.futureResult
    }

    /// Whether the connection is still usable (open, no GOAWAY received).
    public var isActive: Bool { self.channel.isActive }

    /// Closes the connection; unanswered batches fail.
    public func close() async {
        try? await self.channel.close()
    }

    /// Completes when the connection has closed.
    public var closeFuture: EventLoopFuture<Void> { self.channel.closeFuture }

    static func isIPAddress(_ host: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }
}

/// The delay a hub's GOAWAY asked for, and the REJECT that ended a connection, shared by a
/// connection and its handler.
final class ReconnectDelay: Sendable {
    let value = Mutex<Duration?>(nil)
    /// The connection-level REJECT that ended the connection after WELCOME.
    let refusal = Mutex<Reject?>(nil)
}

/// Performs the actions of the node's ``ClientStateMachine`` on one channel.
final class UplinkHandler: ChannelInboundHandler {
    typealias InboundIn = Frame
    typealias OutboundOut = Frame

    private var machine = ClientStateMachine()
    private let identity: AgentIdentity
    private let role: Hello.Role
    private let enrollmentToken: String
    private var established: EventLoopPromise<Welcome>?
    private var inFlight: [BatchKey: EventLoopPromise<BatchResult>] = [:]
    private var waiting: [(Frame, BatchKey, EventLoopPromise<BatchResult>)] = []
    private let onRegistry: (@Sendable (RegistryUpdate) -> Void)?
    private var enrollments: [UUID: EventLoopPromise<EnrollAnswer>] = [:]
    private var context: ChannelHandlerContext?
    private var keepalive: RepeatedTask?
    private var ended: ConnectionError?
    private var pings: UInt64 = 0
    private let handshakeTimeout: TimeAmount
    private var handshakeDeadline: Scheduled<Void>?
    private var lastRead = NIODeadline.now()
    private let goAwayDelay: ReconnectDelay
    private let diagnostics: TLSDiagnostics

    init(
        identity: AgentIdentity, role: Hello.Role, enrollmentToken: String, established: EventLoopPromise<Welcome>,
        handshakeTimeout: TimeAmount, goAwayDelay: ReconnectDelay, diagnostics: TLSDiagnostics,
        onRegistry: (@Sendable (RegistryUpdate) -> Void)?
    ) {
        self.diagnostics = diagnostics
        self.onRegistry = onRegistry
        self.identity = identity
        self.role = role
        self.enrollmentToken = enrollmentToken
        self.established = established
        self.handshakeTimeout = handshakeTimeout
        self.goAwayDelay = goAwayDelay
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let timeout = self.handshakeTimeout
        self.handshakeDeadline = context.eventLoop.scheduleTask(in: timeout) {
            let handler = loopBound.value
            guard handler.established != nil, let context = handler.context else { return }
            handler.end(ConnectionError(reason: "the hub did not complete the handshake within \(timeout.nanoseconds / 1_000_000) ms"), context)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.handshakeDeadline?.cancel()
        self.context = nil
    }

    func enroll(_ request: EnrollRequest, promise: EventLoopPromise<EnrollAnswer>) {
        guard self.ended == nil, let context = self.context else {
            promise.fail(self.ended ?? ConnectionError(reason: "the connection is closed"))
            return
        }
        // One enrollment per node at a time: a second for the same node replaces the first.
        self.enrollments.removeValue(forKey: request.hello.nodeID)?.fail(ConnectionError(reason: "a newer enrollment of the node replaced this one"))
        self.enrollments[request.hello.nodeID] = promise
        context.writeAndFlush(Self.wrapOutboundOut(.enroll(request)), promise: nil)
    }

    func send(_ batch: SealedBatch, path: [UUID], promise: EventLoopPromise<BatchResult>) {
        if let ended = self.ended {
            promise.fail(ended)
            return
        }
        let frame: Frame =
            batch.header.origin != self.identity.nodeID && self.machine.agreedVersion >= ProtocolVersion.v2
            ? .forward(ForwardedBatch(path: path + [self.identity.nodeID], batch: batch)) : .batch(batch)
        guard self.waiting.isEmpty else {
            self.waiting.append((frame, batch.key, promise))
            return
        }
        self.trySend(frame, batch.key, promise)
    }

    private func trySend(_ frame: Frame, _ key: BatchKey, _ promise: EventLoopPromise<BatchResult>) {
        guard let context = self.context else {
            promise.fail(ConnectionError(reason: "the connection is closed"))
            return
        }
        switch self.machine.sendBatch(key) {
        case .send:
            self.inFlight[key] = promise
            context.writeAndFlush(Self.wrapOutboundOut(frame), promise: nil)
        case .noCredit:
            self.waiting.append((frame, key, promise))
        case .notReady:
            promise.fail(self.ended ?? ConnectionError(reason: "the connection is not ready for batches"))
        }
    }

    private func sendWaiting() {
        // Flush on every exit: running out of credit mid-queue must not strand a written batch.
        defer { self.context?.flush() }
        while !self.waiting.isEmpty {
            let (frame, key, promise) = self.waiting[0]
            guard case .send = self.machine.sendBatch(key), let context = self.context else { return }
            self.waiting.removeFirst()
            self.inFlight[key] = promise
            context.write(Self.wrapOutboundOut(frame), promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.lastRead = .now()
        switch self.machine.frameReceived(Self.unwrapInboundIn(data)) {
        case .none:
            break
        case .sendHello(let version, let challenge):
            do {
                let hello = try Hello(
                    answering: challenge,
                    version: version,
                    nodeID: self.identity.nodeID,
                    role: self.role,
                    signingKey: self.identity.signingKey,
                    enrollmentToken: self.enrollmentToken
                )
                context.writeAndFlush(Self.wrapOutboundOut(.hello(hello)), promise: nil)
            } catch {
                self.end(ConnectionError(reason: "cannot build HELLO: \(error)"), context)
            }
        case .established(let welcome):
            self.handshakeDeadline?.cancel()
            self.established?.succeed(welcome)
            self.established = nil
            self.startKeepalive(welcome, context)
        case .acknowledged(let ack):
            self.inFlight.removeValue(forKey: ack.key)?.succeed(.acknowledged(ack))
        case .batchRejected(let reject):
            self.inFlight.removeValue(forKey: reject.key)?.succeed(.rejected(reject))
        case .creditGranted:
            self.sendWaiting()
        case .sendPong(let value):
            context.writeAndFlush(Self.wrapOutboundOut(.pong(value)), promise: nil)
        case .goAway(let goAway, let closeNow):
            self.goAwayDelay.value.withLock { $0 = .milliseconds(Int64(goAway.reconnectAfterMilliseconds)) }
            self.failWaiting(ConnectionError(reason: "the hub sent GOAWAY: \(goAway.message)"))
            if closeNow { self.end(ConnectionError(reason: "the hub sent GOAWAY: \(goAway.message)"), context) }
        case .closeAfterDrain(let frame):
            switch frame {
            case .ack(let ack): self.inFlight.removeValue(forKey: ack.key)?.succeed(.acknowledged(ack))
            case .reject(let reject): self.inFlight.removeValue(forKey: reject.key)?.succeed(.rejected(reject))
            case .challenge, .hello, .welcome, .batch, .credit, .ping, .pong, .goAway, .forward, .registry, .status, .enroll, .enrolled: break
            }
            self.end(ConnectionError(reason: "the hub closed the connection after GOAWAY"), context)
        case .connectionRejected(let reject):
            self.goAwayDelay.refusal.withLock { $0 = reject }
            self.end(ConnectionError(reject: reject, reason: "the hub refused the connection: \(reject.message)"), context)
        case .protocolError(let error):
            self.end(ConnectionError(reason: "the hub broke the protocol: \(String(reflecting: error))"), context)
        case .registryReceived(let update):
            guard self.role == .relay else {
                self.end(ConnectionError(reason: "the hub sent REGISTRY to a node that is not a relay"), context)
                return
            }
            // A relay-role client with no use for the registry (a test tool) lets it pass.
            self.onRegistry?(update)
        case .enrollAnswered(let answer):
            self.enrollments.removeValue(forKey: answer.nodeID)?.succeed(answer)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let failure = self.diagnostics.failure(for: error) {
            self.end(ConnectionError(reason: failure.description, tls: failure), context)
            return
        }
        self.end(ConnectionError(reason: "connection failed: \(error)"), context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.machine.closed()
        self.keepalive?.cancel()
        self.fail(self.ended ?? ConnectionError(reason: "the connection closed"))
        context.fireChannelInactive()
    }

    private func startKeepalive(_ welcome: Welcome, _ context: ChannelHandlerContext) {
        guard welcome.idleTimeoutMilliseconds > 0 else { return }
        let idle = TimeAmount.milliseconds(Int64(welcome.idleTimeoutMilliseconds))
        let interval = TimeAmount.milliseconds(Int64(max(welcome.idleTimeoutMilliseconds / 3, 100)))
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        self.keepalive = context.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
            let handler = loopBound.value
            // Our PINGs are answered, so a hub silent for its whole idle timeout is gone.
            if NIODeadline.now() - handler.lastRead > idle, let context = handler.context {
                handler.end(ConnectionError(reason: "nothing from the hub for \(welcome.idleTimeoutMilliseconds) ms"), context)
                return
            }
            handler.pings &+= 1
            handler.context?.writeAndFlush(Self.wrapOutboundOut(.ping(handler.pings)), promise: nil)
        }
    }

    private func end(_ error: ConnectionError, _ context: ChannelHandlerContext) {
        if self.ended == nil { self.ended = error }
        self.fail(error)
        context.close(promise: nil)
    }

    private func failWaiting(_ error: ConnectionError) {
        let waiting = self.waiting
        self.waiting = []
        for (_, _, promise) in waiting { promise.fail(error) }
    }

    private func fail(_ error: ConnectionError) {
        let enrollments = self.enrollments
        self.enrollments = [:]
        for promise in enrollments.values { promise.fail(error) }
        self.established?.fail(error)
        self.established = nil
        self.failWaiting(error)
        let inFlight = self.inFlight
        self.inFlight = [:]
        for promise in inFlight.values { promise.fail(error) }
    }
}

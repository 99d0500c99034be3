import Crypto
import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import Wire

/// Performs the actions of one connection's ``ServerStateMachine``: the only protocol
/// logic here is deciding what to run where. Key checks and enrollment run on the blocking
/// pool, signature checks and decompression on the event loop, and the backend makes what
/// it takes durable wherever it does that (the hub's group committer).
final class NodeConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = Frame
    typealias OutboundOut = Frame

    struct Settings: Sendable {
        /// The server's name in REJECT messages: "hub", "relay".
        var name: String
        var welcome: Welcome
        var batchLimits: BatchLimits
        var handshakeTimeout: TimeAmount
        var idleTimeout: TimeAmount
        /// Most relays a FORWARD's path may name (one less at a relay, which adds itself).
        var maxIncomingHops: Int
        var goAway: GoAway
        /// How long a connection being closed may take to flush its last frame (a REJECT)
        /// before it is closed anyway: a peer that does not read cannot hold it open.
        var closeGrace: TimeAmount = .seconds(2)
    }

    /// What the handler needs from its listener: keeping its handshake slot while the HELLO
    /// is verified, and taking a connection slot once the node is authenticated (false: no
    /// slot, refuse with `tooManyConnections`).
    struct Admission: Sendable {
        var verifying: @Sendable () -> Void
        var authenticated: @Sendable (_ node: UUID) -> Bool
    }

    private var machine: ServerStateMachine
    private let settings: Settings
    private let backend: any IngestBackend
    private let blockingPool: NIOThreadPool
    private let metrics: NodeServerMetrics
    private let admission: Admission
    private let frameGuard: HandshakeFrameGuard
    private let activity: ByteCounter
    private var logger: Logger
    private let decompressor = ZstdDecompressor()
    private var handshakeTimer: Scheduled<Void>?
    private var tlsEstablished = false
    private var statusWindowStart = NIODeadline.now()
    private var statusesInWindow = 0
    private var pendingRegistry: [RegistryUpdate]?
    private var context: ChannelHandlerContext?

    init(
        nodeID: UUID,
        settings: Settings,
        backend: any IngestBackend,
        blockingPool: NIOThreadPool,
        metrics: NodeServerMetrics,
        admission: Admission,
        frameGuard: HandshakeFrameGuard,
        activity: ByteCounter,
        logger: Logger
    ) {
        self.machine = ServerStateMachine(challenge: .random(hubID: nodeID), maxIncomingHops: settings.maxIncomingHops)
        self.settings = settings
        self.backend = backend
        self.blockingPool = blockingPool
        self.metrics = metrics
        self.admission = admission
        self.frameGuard = frameGuard
        self.activity = activity
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.logger[metadataKey: "peer"] = "\(context.channel.remoteAddress.map { "\($0)" } ?? "?")"
        if context.channel.isActive { self.start(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        self.start(context)
        context.fireChannelActive()
    }

    /// Arms the handshake deadline from the moment the connection is accepted: TLS, HELLO
    /// and verification must all fit in it, or the connection is closed whatever its state.
    private func start(_ context: ChannelHandlerContext) {
        guard self.handshakeTimer == nil else { return }
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        self.handshakeTimer = context.eventLoop.scheduleTask(in: self.settings.handshakeTimeout) {
            let handler = loopBound.value
            handler.perform(handler.machine.handshakeTimedOut())
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.handshakeTimer?.cancel()
        self.machine.closed()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.perform(self.machine.frameReceived(Self.unwrapInboundIn(data)))
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case let tls as TLSUserEvent:
            if case .handshakeCompleted = tls, !self.tlsEstablished {
                // CHALLENGE is the first frame, sent as soon as TLS is up (PROTOCOL.md §4.4).
                self.tlsEstablished = true
                self.perform(self.machine.start())
            }
        case is IdleStateHandler.IdleStateEvent:
            self.perform(self.machine.idleTimedOut())
        case is ShutdownRequested:
            self.perform(self.machine.shutdown(self.settings.goAway))
        case let changed as RegistryChanged:
            self.sendRegistry(changed.frames)
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? WireError {
            self.logger.info("refusing malformed input", metadata: ["error": "\(String(reflecting: error))"])
            self.perform(self.machine.decodingFailed(error))
        } else {
            self.logger.debug("connection error", metadata: ["error": "\(error)"])
            context.close(promise: nil)
        }
    }

    private func perform(_ action: ServerStateMachine.Action) {
        guard let context = self.context else { return }
        switch action {
        case .none:
            break
        case .write(let frames, let close):
            for frame in frames {
                if case .reject(let reject) = frame {
                    self.metrics.rejected(reject.code)
                    self.logger.info(
                        "rejected",
                        metadata: ["code": "\(reject.code)", "batch": "\(reject.isConnectionLevel ? "-" : reject.key.description)",
                                   "reason": "\(reject.message)"]
                    )
                }
            }
            guard close else {
                for frame in frames { context.write(Self.wrapOutboundOut(frame), promise: nil) }
                context.flush()
                return
            }
            self.close(context, after: frames)
        case .verifyHello(let hello):
            self.admission.verifying()
            self.verify(hello, context)
        case .ingest(let batch, let path, let node):
            self.ingest(batch, path: path, from: node, context)
        case .enroll(let request, let relay):
            let backend = self.backend
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
            self.blockingPool.runIfActive(eventLoop: context.eventLoop) {
                backend.enroll(request, from: relay, now: now)
            }.whenSuccess { answer in
                guard let context = loopBound.value.context else { return }
                context.writeAndFlush(Self.wrapOutboundOut(.enrolled(answer)), promise: nil)
            }
        case .status(let report, let node):
            // A report costs a signature check and a JSON decode: a node (or a relay passing
            // its nodes' reports on) gets a budget per window; reports beyond it are dropped.
            let now = NIODeadline.now()
            if now - self.statusWindowStart > Self.statusWindow {
                self.statusWindowStart = now
                self.statusesInWindow = 0
            }
            self.statusesInWindow += 1
            guard self.statusesInWindow <= Self.maxStatusesPerWindow else {
                if self.statusesInWindow == Self.maxStatusesPerWindow + 1 {
                    self.logger.notice("status reports over their budget on this connection are dropped until the window ends",
                                       metadata: ["budget": "\(Self.maxStatusesPerWindow) per \(Self.statusWindow.nanoseconds / 1_000_000_000) s"])
                }
                return
            }
            self.backend.received(report, from: node)
        }
    }

    /// How many times an agent's credit a relay connection gets.
    static let relayCreditFactor: UInt32 = 8

    /// STATUS reports a connection may bring per ``statusWindow``: a relay passing on the
    /// reports of 1,000 nodes that report every 30 s needs a third of it.
    static let maxStatusesPerWindow = 1_000
    static let statusWindow = TimeAmount.seconds(10)

    /// A relay that does not read its REGISTRY snapshots holds at most one, the newest, here
    /// rather than in the outbound buffer.
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, let pending = self.pendingRegistry {
            self.pendingRegistry = nil
            self.sendRegistry(pending)
        }
        context.fireChannelWritabilityChanged()
    }

    /// Closes the connection once `frames` are on the wire, or at once when they cannot be
    /// written (no TLS yet), or after the close grace when the peer does not read them.
    private func close(_ context: ChannelHandlerContext, after frames: [Frame]) {
        let channel = context.channel
        guard self.tlsEstablished, !frames.isEmpty else {
            channel.close(promise: nil)
            return
        }
        let deadline = context.eventLoop.scheduleTask(in: self.settings.closeGrace) { channel.close(promise: nil) }
        for frame in frames.dropLast() { context.write(Self.wrapOutboundOut(frame), promise: nil) }
        context.writeAndFlush(Self.wrapOutboundOut(frames[frames.count - 1])).whenComplete { _ in
            deadline.cancel()
            channel.close(promise: nil)
        }
    }

    private func verify(_ hello: Hello, _ context: ChannelHandlerContext) {
        // Before the backend: a refused certificate must not redeem a token.
        let certificate = try? context.pipeline.syncOperations.nioSSL_peerCertificate()
        if let refusal = ServerTLS.clientCertificateRefusal(certificate, nodeID: hello.nodeID) {
            self.handshakeTimer?.cancel()
            self.perform(self.machine.helloRefused(refusal))
            return
        }
        let backend = self.backend
        let challenge = self.machine.challenge
        let baseWelcome = self.settings.welcome
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        self.blockingPool.runIfActive(eventLoop: context.eventLoop) { () -> Result<Welcome, Reject> in
            backend.authenticate(hello, challenge: challenge, now: now).map { resume in
                var welcome = baseWelcome
                welcome.version = hello.version
                welcome.resume = resume
                if hello.role == .relay {
                    // One relay carries a whole branch's batches on one connection: it gets the
                    // window of several agents (its own in-flight byte cap still bounds memory).
                    welcome.initialCredit = min(welcome.initialCredit.multipliedReportingOverflow(by: Self.relayCreditFactor).partialValue, 1_024)
                }
                return welcome
            }
        }.whenComplete { result in
            let handler = loopBound.value
            switch result {
            case .success(.success(let welcome)):
                // The connection may have failed or timed out while the HELLO was verified.
                guard handler.machine.isVerifying, handler.context?.channel.isActive == true else { return }
                guard handler.admission.authenticated(hello.nodeID) else {
                    handler.perform(handler.machine.helloRefused(
                        .connection(.tooManyConnections, .retryable, "the \(handler.settings.name) has its maximum of connections")
                    ))
                    return
                }
                handler.handshakeTimer?.cancel()
                handler.logger[metadataKey: "node"] = "\(hello.nodeID)"
                handler.logger.info("node connected", metadata: ["role": "\(hello.role)"])
                handler.openConversation()
                handler.perform(handler.machine.helloVerified(welcome))
                handler.sendRegistry(handler.backend.registrySnapshot()?.frames)
            case .success(.failure(let reject)):
                handler.perform(handler.machine.helloRefused(reject))
            case .failure:
                handler.perform(handler.machine.helloRefused(.connection(.shuttingDown, .retryable, "the \(handler.settings.name) is stopping")))
            }
        }
    }

    /// Sends a registry snapshot to a relay connected with version 2 (PROTOCOL.md §4.14):
    /// right after WELCOME and whenever the registry changes. Nothing for agents.
    private func sendRegistry(_ frames: [RegistryUpdate]?) {
        guard let frames, let context = self.context, let node = self.machine.connectedNode,
            node.role == .relay, node.version >= ProtocolVersion.v2
        else { return }
        guard context.channel.isWritable else {
            self.pendingRegistry = frames
            return
        }
        for frame in frames { context.write(Self.wrapOutboundOut(.registry(frame)), promise: nil) }
        context.flush()
    }

    /// After WELCOME every frame type may come, and the idle timeout the WELCOME announced
    /// starts; it counts any bytes received, so a large BATCH arriving slowly keeps the
    /// connection alive.
    private func openConversation() {
        guard let context = self.context else { return }
        self.frameGuard.open()
        guard self.settings.idleTimeout.nanoseconds > 0 else { return }
        try? context.pipeline.syncOperations.addHandler(
            IdleStateHandler(readTimeout: self.settings.idleTimeout),
            position: .after(self.activity)
        )
    }

    private func ingest(_ batch: SealedBatch, path: [UUID], from node: Hello, _ context: ChannelHandlerContext) {
        let header = batch.header
        let records: [FeedbackRecord]
        switch self.backend.rights(for: batch) {
        case .failure(let reject):
            self.perform(self.machine.batchCompleted(.reject(reject)))
            return
        case .success(let rights):
            let verified: VerifiedBatch
            do {
                // Limits and signature first; only a verified batch is decompressed.
                verified = try batch.verified(by: rights.key, limits: self.settings.batchLimits)
            } catch let error as WireError {
                self.perform(self.machine.batchCompleted(.reject(self.refusal(of: batch, error.rejectCode, error.detail))))
                return
            } catch {
                self.perform(self.machine.batchCompleted(.reject(self.refusal(of: batch, .malformedFrame, "\(error)"))))
                return
            }
            do {
                records = try verified.records(limits: self.settings.batchLimits, decompressor: self.decompressor)
                if let index = records.firstIndex(where: { !rights.sites.allows($0.site) }) {
                    let site = String(reflecting: String(records[index].site.prefix(64)))
                    self.refuseUnlessCommitted(batch, .siteNotAllowed,
                        "record \(index + 1) of \(records.count) names site \(site), outside the origin's sites (\(rights.sites))", context)
                    return
                }
            } catch let error as WireError {
                self.refuseUnlessCommitted(batch, error.rejectCode, error.detail, context)
                return
            } catch {
                self.refuseUnlessCommitted(batch, .invalidRecord, "\(error)", context)
                return
            }
        }
        let accepted = AcceptedBatch(
            sealed: batch, records: records, receivedAt: Int64(Date().timeIntervalSince1970 * 1000), node: node, path: path
        )
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        self.backend.take(accepted, on: context.eventLoop).whenComplete { result in
            let handler = loopBound.value
            switch result {
            case .success(.stored(let newRecords)):
                handler.perform(handler.machine.batchCompleted(
                    .ack(Ack(origin: header.origin, sequence: header.sequence, status: .stored, storedRecords: UInt32(clamping: newRecords)))
                ))
            case .success(.duplicate):
                handler.perform(handler.machine.batchCompleted(
                    .ack(Ack(origin: header.origin, sequence: header.sequence, status: .duplicate, storedRecords: 0))
                ))
            case .success(.refused(let code, let disposition, let message)):
                handler.perform(handler.machine.batchCompleted(.reject(handler.refusal(of: batch, code, message, disposition))))
            case .failure:
                handler.perform(handler.machine.batchCompleted(
                    .reject(handler.refusal(of: batch, .storeUnavailable, "the batch could not be committed", .retryable))
                ))
            }
        }
    }

    /// A verified batch whose payload fails is answered `duplicate` when it is already
    /// committed, whatever the payload holds (PROTOCOL.md §7.2); only a new batch is refused.
    /// The backend is asked on this failure path only, so good batches cost no extra read.
    private func refuseUnlessCommitted(_ batch: SealedBatch, _ code: RejectCode, _ message: String, _ context: ChannelHandlerContext) {
        let backend = self.backend
        let key = batch.key
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        self.blockingPool.runIfActive(eventLoop: context.eventLoop) { try backend.isCommitted(key) }.whenComplete { result in
            let handler = loopBound.value
            switch result {
            case .success(true):
                handler.perform(handler.machine.batchCompleted(
                    .ack(Ack(origin: key.origin, sequence: key.sequence, status: .duplicate, storedRecords: 0))
                ))
            case .success(false):
                handler.perform(handler.machine.batchCompleted(.reject(handler.refusal(of: batch, code, message))))
            case .failure:
                handler.perform(handler.machine.batchCompleted(
                    .reject(handler.refusal(of: batch, .storeUnavailable, "the store cannot be read", .retryable))
                ))
            }
        }
    }

    private func refusal(
        of batch: SealedBatch, _ code: RejectCode, _ message: String, _ disposition: Reject.Disposition = .permanent
    ) -> Reject {
        Reject(origin: batch.header.origin, sequence: batch.header.sequence, code: code, disposition: disposition, message: message)
    }
}

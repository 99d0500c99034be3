import Crypto
import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Wire

/// Asks a connection to finish: GOAWAY, drain in-flight batches, close.
struct ShutdownRequested: Sendable {}

/// Performs the actions of one connection's ``ServerStateMachine``: the only protocol
/// logic here is deciding what to run where. Key checks and enrollment run on the blocking
/// pool, signature checks and decompression on the event loop, commits on the committer.
final class HubConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = Frame
    typealias OutboundOut = Frame

    struct Settings: Sendable {
        var welcome: Welcome
        var batchLimits: BatchLimits
        var handshakeTimeout: TimeAmount
        var goAway: GoAway
    }

    private var machine: ServerStateMachine
    private let settings: Settings
    private let registry: NodeRegistry
    private let store: any FeedbackStore
    private let committer: GroupCommitter
    private let blockingPool: NIOThreadPool
    private let metrics: HubMetrics
    private var logger: Logger
    private let decompressor = ZstdDecompressor()
    private var handshakeTimer: Scheduled<Void>?
    private var context: ChannelHandlerContext?

    init(
        hubID: UUID,
        settings: Settings,
        registry: NodeRegistry,
        store: any FeedbackStore,
        committer: GroupCommitter,
        blockingPool: NIOThreadPool,
        metrics: HubMetrics,
        logger: Logger
    ) {
        self.machine = ServerStateMachine(challenge: .random(hubID: hubID))
        self.settings = settings
        self.registry = registry
        self.store = store
        self.committer = committer
        self.blockingPool = blockingPool
        self.metrics = metrics
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

    private func start(_ context: ChannelHandlerContext) {
        guard self.handshakeTimer == nil else { return }
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        self.handshakeTimer = context.eventLoop.scheduleTask(in: self.settings.handshakeTimeout) {
            let handler = loopBound.value
            handler.perform(handler.machine.handshakeTimedOut())
        }
        self.perform(self.machine.start())
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
        case is IdleStateHandler.IdleStateEvent:
            self.perform(self.machine.idleTimedOut())
        case is ShutdownRequested:
            self.perform(self.machine.shutdown(self.settings.goAway))
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
            for (index, frame) in frames.enumerated() {
                if case .reject(let reject) = frame {
                    self.metrics.rejected(reject.code)
                    self.logger.info(
                        "rejected",
                        metadata: ["code": "\(reject.code)", "batch": "\(reject.isConnectionLevel ? "-" : reject.key.description)",
                                   "reason": "\(reject.message)"]
                    )
                }
                if close, index == frames.count - 1 {
                    // Close only once the last frame (usually the REJECT) is on the wire.
                    let channel = context.channel
                    context.writeAndFlush(Self.wrapOutboundOut(frame)).whenComplete { _ in channel.close(promise: nil) }
                } else {
                    context.write(Self.wrapOutboundOut(frame), promise: nil)
                }
            }
            if !close { context.flush() }
        case .verifyHello(let hello):
            self.verify(hello, context)
        case .ingest(let batch, _):
            self.ingest(batch, context)
        }
    }

    private func verify(_ hello: Hello, _ context: ChannelHandlerContext) {
        // Before the registry: a refused certificate must not redeem a token.
        let certificate = try? context.pipeline.syncOperations.nioSSL_peerCertificate()
        if let refusal = HubTLS.clientCertificateRefusal(certificate, nodeID: hello.nodeID) {
            self.handshakeTimer?.cancel()
            self.perform(self.machine.helloRefused(refusal))
            return
        }
        let registry = self.registry
        let store = self.store
        let challenge = self.machine.challenge
        let baseWelcome = self.settings.welcome
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        self.blockingPool.runIfActive(eventLoop: context.eventLoop) { () -> Result<Welcome, Reject> in
            switch registry.authenticate(hello, challenge: challenge, now: now) {
            case .failure(let reject):
                return .failure(reject)
            case .success(let node):
                var welcome = baseWelcome
                welcome.version = hello.version
                do {
                    welcome.resume = [Welcome.ResumePoint(origin: node.nodeID, committedSequence: try store.committedSequence(origin: node.nodeID))]
                    return .success(welcome)
                } catch {
                    return .failure(.connection(.storeUnavailable, .retryable, "the store cannot be read"))
                }
            }
        }.whenComplete { result in
            let handler = loopBound.value
            handler.handshakeTimer?.cancel()
            switch result {
            case .success(.success(let welcome)):
                handler.logger[metadataKey: "node"] = "\(hello.nodeID)"
                handler.logger.info("node connected", metadata: ["role": "\(hello.role)"])
                handler.perform(handler.machine.helloVerified(welcome))
            case .success(.failure(let reject)):
                handler.perform(handler.machine.helloRefused(reject))
            case .failure:
                handler.perform(handler.machine.helloRefused(.connection(.shuttingDown, .retryable, "the hub is stopping")))
            }
        }
    }

    private func ingest(_ batch: SealedBatch, _ context: ChannelHandlerContext) {
        let header = batch.header
        @Sendable func refuse(_ code: RejectCode, _ disposition: Reject.Disposition, _ message: String) -> Frame {
            .reject(Reject(origin: header.origin, sequence: header.sequence, code: code, disposition: disposition, message: message))
        }
        let records: [FeedbackRecord]
        switch self.registry.signingKey(for: batch) {
        case .failure(let reject):
            self.perform(self.machine.batchCompleted(.reject(reject)))
            return
        case .success(let key):
            do {
                // Limits and signature first; only a verified batch is decompressed.
                let verified = try batch.verified(by: key, limits: self.settings.batchLimits)
                records = try verified.records(limits: self.settings.batchLimits, decompressor: self.decompressor)
            } catch let error as WireError {
                self.perform(self.machine.batchCompleted(refuse(error.rejectCode, .permanent, error.detail)))
                return
            } catch {
                self.perform(self.machine.batchCompleted(refuse(.malformedFrame, .permanent, "\(error)")))
                return
            }
        }
        let incoming = IncomingBatch(key: batch.key, records: records, receivedAt: Int64(Date().timeIntervalSince1970 * 1000))
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        self.committer.submit(incoming, on: context.eventLoop).whenComplete { result in
            let handler = loopBound.value
            switch result {
            case .success(.stored(let newRecords)):
                handler.perform(
                    handler.machine.batchCompleted(
                        .ack(Ack(origin: header.origin, sequence: header.sequence, status: .stored, storedRecords: UInt32(newRecords)))
                    )
                )
            case .success(.duplicate):
                handler.perform(
                    handler.machine.batchCompleted(
                        .ack(Ack(origin: header.origin, sequence: header.sequence, status: .duplicate, storedRecords: 0))
                    )
                )
            case .failure:
                handler.perform(handler.machine.batchCompleted(refuse(.storeUnavailable, .retryable, "the batch could not be committed")))
            }
        }
    }
}

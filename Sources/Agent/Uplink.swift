import Dispatch
import Foundation
import Logging
import NIOCore
import NIOSSL
import Support
import Synchronization
import Wire

/// Forwards the spool's sealed batches to a hub: one TLS connection at a time to the first
/// reachable address of an ordered list, batches pipelined within the hub's credit, each
/// batch dropped from the spool only on the hub's ACK (stored or duplicate). A relay's
/// spool also holds other nodes' batches: they go in the same stream, in the order they
/// arrived, each with its hop path.
///
/// - Reconnects with exponential backoff and full jitter after the whole list failed.
/// - On a fallback hub, returns to the first after ``Configuration/returnToPrimaryAfter``.
/// - A retryable REJECT is retried after ``Configuration/retryRejectedAfter``; a permanent
///   one moves the batch to the dead-letter folder with the reason.
/// - GOAWAY: the connection is used no more; the next one starts after the hub's delay.
public final class Uplink: Sendable {
    /// Settings.
    public struct Configuration: Sendable {
        /// Hubs or relays in order of preference.
        public var hubs: [HubAddress]
        /// Client TLS context (trusting the hubs' CA; with the client certificate for mutual TLS).
        public var tls: NIOSSLContext
        /// The agent's identity.
        public var identity: AgentIdentity
        /// What this node tells the hub it is: a relay also forwards other nodes' batches.
        public var role: Hello.Role = .agent
        /// A one-time enrollment token, sent until the hub knows the key.
        public var enrollmentToken = ""
        /// Reconnect delays.
        public var backoff = Backoff()
        /// How long to stay on a fallback hub before trying the first again.
        public var returnToPrimaryAfter: Duration = .seconds(300)
        /// How long a batch refused as retryable waits before it goes again.
        public var retryRejectedAfter: Duration = .seconds(5)
        /// Most bytes of sealed batches sent and not yet answered (at least one batch is
        /// always sent): with the hub's credit (a count), what a drain holds in memory.
        public var maxBytesInFlight = 4 << 20
        /// Where permanently refused batches go.
        public var deadLetterDirectory: String
        /// A relay's: takes the REGISTRY frames its upstream sends.
        public var onRegistry: (@Sendable (RegistryUpdate) -> Void)?
        /// How often status reports go upstream (see ``Uplink/reportStatus(_:putBack:)``).
        public var statusInterval: Duration = .seconds(30)

        /// Creates settings.
        public init(hubs: [HubAddress], tls: NIOSSLContext, identity: AgentIdentity, deadLetterDirectory: String) {
            self.hubs = hubs
            self.tls = tls
            self.identity = identity
            self.deadLetterDirectory = deadLetterDirectory
        }
    }

    /// Counters since start.
    public struct Stats: Sendable, Hashable {
        /// The hub connected now.
        public var connectedHub: HubAddress?
        /// Connections established.
        public var connections = 0
        /// Connection attempts that failed.
        public var connectFailures = 0
        /// BATCH frames sent (re-sends included).
        public var batchesSent = 0
        /// Batches the hub acknowledged.
        public var batchesAcknowledged = 0
        /// Batches refused for good and moved to the dead-letter folder.
        public var batchesDeadLettered = 0
        /// Retryable REJECTs received.
        public var batchesRetried = 0
        /// Why the last connection attempt failed (for a TLS refusal: which check and what
        /// to do); nil once a connection succeeds.
        public var lastConnectionError: String?
    }

    enum Event: Sendable {
        case wake
        case answered(BatchKey, Result<BatchResult, any Error>)
        case closed
    }

    enum SessionEnd {
        case lost
        case returnToPrimary
        case cancelled
    }

    /// The settings in force.
    public let configuration: Configuration
    private let spool: Spool
    private let logger: Logger
    private let session = Mutex<AsyncStream<Event>.Continuation?>(nil)
    private let counters = Mutex(Stats())
    /// The upstream connection in use, if any.
    private let current = Mutex<HubConnection?>(nil)
    /// Batches whose mesh refusal (loop, hop limit) was logged: once each.
    private let meshRefusalsLogged = Mutex<Set<BatchKey>>([])
    private let statusSource = Mutex<(@Sendable (Bool) -> [StatusReport], @Sendable ([StatusReport]) -> Void)?>(nil)

    /// Creates an uplink for `spool`; nothing connects until ``run()``.
    public init(configuration: Configuration, spool: Spool, logger: Logger) {
        precondition(!configuration.hubs.isEmpty, "at least one hub address (checked by the configuration)")
        self.configuration = configuration
        self.spool = spool
        self.logger = logger
    }

    /// Sends upstream what `reports(ownDue)` gives: this node's own report when `ownDue`
    /// (right after each WELCOME, then every ``Configuration/statusInterval``), and a relay's
    /// reports from below, asked for every second so they are passed on promptly. Reports that
    /// found no connection go to `putBack`.
    public func reportStatus(
        _ reports: @escaping @Sendable (_ ownDue: Bool) -> [StatusReport], putBack: @escaping @Sendable ([StatusReport]) -> Void = { _ in }
    ) {
        self.statusSource.withLock { $0 = (reports, putBack) }
    }

    /// Carries a node's enrollment to the upstream this node is connected to (a relay's
    /// part of enrollment through the mesh) and waits up to `timeout` for the answer. Blocks:
    /// call it off the event loops (the relay's listener runs it on its blocking pool).
    public func carryUp(_ request: EnrollRequest, timeout: TimeAmount = .seconds(6)) -> Result<EnrollAnswer, Reject> {
        guard let connection = self.current.withLock({ $0 }), connection.isActive else {
            return .failure(.connection(.storeUnavailable, .retryable, "this relay is not connected upstream, so it cannot enroll the node now"))
        }
        let answer = Mutex<Result<EnrollAnswer, any Error>?>(nil)
        let answered = DispatchSemaphore(value: 0)
        connection.enroll(request).whenComplete { result in
            answer.withLock { $0 = result }
            answered.signal()
        }
        guard answered.wait(timeout: .now() + .nanoseconds(Int(timeout.nanoseconds))) == .success, let result = answer.withLock({ $0 }) else {
            return .failure(.connection(.storeUnavailable, .retryable, "the upstream did not answer the enrollment in time; try again"))
        }
        return result.mapError { .connection(.storeUnavailable, .retryable, "the enrollment could not be carried upstream now: \($0)") }
    }

    /// New sealed batches are in the spool.
    public func notify() {
        _ = self.session.withLock { $0?.yield(.wake) }
    }

    /// Counters since start.
    public var stats: Stats { self.counters.withLock { $0 } }

    /// Connects and forwards until the task is cancelled.
    public func run() async {
        var backoff = self.configuration.backoff
        var index = 0
        while !Task.isCancelled {
            let hub = self.configuration.hubs[index]
            let connection: HubConnection
            do {
                connection = try await HubConnection.connect(
                    host: hub.host, port: hub.port, tls: self.configuration.tls, identity: self.configuration.identity,
                    role: self.configuration.role, enrollmentToken: self.configuration.enrollmentToken,
                    onRegistry: self.configuration.onRegistry
                )
            } catch {
                self.counters.withLock {
                    $0.connectFailures += 1
                    $0.lastConnectionError = "\(hub): \(error)"
                }
                self.logger.warning("cannot reach hub", metadata: ["hub": "\(hub)", "error": "\(error)"])
                index = (index + 1) % self.configuration.hubs.count
                if index == 0 { try? await Task.sleep(for: backoff.next()) }
                continue
            }
            let connectedAt = ContinuousClock.now
            let acknowledgedBefore = self.stats.batchesAcknowledged
            let origin = self.configuration.identity.nodeID
            if let committed = connection.welcome.resume.first(where: { $0.origin == origin })?.committedSequence,
                (try? self.spool.advanceSequence(beyond: committed)) == true
            {
                self.logger.warning(
                    "the hub has committed batches beyond this spool's sequence; sealing continues after them",
                    metadata: ["hub": "\(hub)", "committed": "\(committed)"]
                )
            }
            self.counters.withLock {
                $0.connectedHub = hub
                $0.connections += 1
                $0.lastConnectionError = nil
            }
            self.current.withLock { $0 = connection }
            self.logger.info("connected to hub", metadata: ["hub": "\(hub)"])
            let returnAt = index > 0 ? ContinuousClock.now + self.configuration.returnToPrimaryAfter : nil
            let end = await self.forward(over: connection, returnAt: returnAt)
            self.counters.withLock { $0.connectedHub = nil }
            self.current.withLock { $0 = nil }
            await connection.close()
            // A hub that accepts the handshake and then fails every time must not be hammered:
            // the delays start over only after it got work done or stayed up a while.
            if self.stats.batchesAcknowledged > acknowledgedBefore || ContinuousClock.now - connectedAt > .seconds(30) {
                backoff.reset()
            }
            switch end {
            case .cancelled:
                return
            case .returnToPrimary:
                self.logger.info("returning to the first hub", metadata: ["from": "\(hub)"])
                index = 0
            case .lost:
                if let refusal = connection.refusal, [.loopDetected, .hopLimitExceeded].contains(refusal.code) {
                    // A misconfigured mesh: this upstream would pass the batches back round a
                    // ring (or past the hop limit). It is not used; the next one is tried.
                    self.logger.error(
                        "upstream refused the mesh path; trying the next upstream (check the relays' hubs lists: docs/MESH.md)",
                        metadata: ["upstream": "\(hub)", "code": "\(refusal.code)", "reason": "\(refusal.message)"]
                    )
                    index = (index + 1) % self.configuration.hubs.count
                    try? await Task.sleep(for: backoff.next())
                    continue
                }
                let delay = connection.reconnectAfter ?? backoff.next()
                self.logger.info("hub connection ended", metadata: ["hub": "\(hub)", "reconnectIn": "\(delay)"])
                try? await Task.sleep(for: delay)
            }
        }
    }

    /// One connection's life: send what the spool holds within credit, handle answers.
    private func forward(over connection: HubConnection, returnAt: ContinuousClock.Instant?) async -> SessionEnd {
        let (events, sink) = AsyncStream.makeStream(of: Event.self)
        self.session.withLock { $0 = sink }
        connection.closeFuture.whenComplete { _ in sink.yield(.closed) }
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(250))
                sink.yield(.wake)
            }
        }
        let reporter = Task {
            var ownSentAt: ContinuousClock.Instant?
            while !Task.isCancelled {
                if let (reports, putBack) = self.statusSource.withLock({ $0 }) {
                    let ownDue = ownSentAt.map { ContinuousClock.now - $0 >= self.configuration.statusInterval } ?? true
                    if ownDue { ownSentAt = .now }
                    let taken = reports(ownDue)
                    if connection.isActive {
                        for report in taken { connection.send(status: report) }
                    } else {
                        putBack(taken)
                    }
                }
                try? await Task.sleep(for: min(self.configuration.statusInterval, .seconds(1)))
            }
        }
        defer {
            ticker.cancel()
            reporter.cancel()
            self.session.withLock { $0 = nil }
            sink.finish()
        }
        let window = max(Int(connection.welcome.initialCredit), 1)
        var inFlight: [BatchKey: SealedBatch] = [:]
        var bytesInFlight = 0
        /// Takes an answered batch out of the window.
        func landed(_ key: BatchKey) -> SealedBatch? {
            let batch = inFlight.removeValue(forKey: key)
            bytesInFlight -= batch?.bytes.readableBytes ?? 0
            return batch
        }
        var retryAt: [BatchKey: ContinuousClock.Instant] = [:]
        var returning = false
        var finished = false

        func pump() {
            guard !returning, !finished, connection.isActive, inFlight.count < window else { return }
            let budget = self.configuration.maxBytesInFlight - bytesInFlight
            guard inFlight.isEmpty || budget > 0 else { return }
            let now = ContinuousClock.now
            let ready = self.spool.unacknowledged(limit: window - inFlight.count, maxBytes: budget, atLeastOne: inFlight.isEmpty) { key in
                inFlight[key] == nil && (retryAt[key].map { $0 <= now } ?? true)
            }
            for held in ready {
                let key = held.key
                guard held.path.count < ForwardedBatch.maxHops else {
                    // Held by a spool of another version that allowed longer paths: it can
                    // never be passed on (and FORWARD could not carry it).
                    let reject = Reject(
                        origin: key.origin, sequence: key.sequence, code: .hopLimitExceeded, disposition: .permanent,
                        message: "the batch came through \(held.path.count) relays; FORWARD carries at most \(ForwardedBatch.maxHops)"
                    )
                    if !self.deadLetter(held.batch, reject) { retryAt[key] = now + self.configuration.retryRejectedAfter }
                    continue
                }
                inFlight[key] = held.batch
                bytesInFlight += held.batch.bytes.readableBytes
                retryAt[key] = nil
                self.counters.withLock { $0.batchesSent += 1 }
                connection.send(held.batch, path: held.path).whenComplete { sink.yield(.answered(key, $0)) }
            }
        }

        pump()
        for await event in events {
            if Task.isCancelled { return .cancelled }
            switch event {
            case .wake:
                if let returnAt, ContinuousClock.now >= returnAt { returning = true }
            case .answered(let key, .success(.acknowledged)):
                _ = landed(key)
                self.counters.withLock { $0.batchesAcknowledged += 1 }
                do {
                    try self.spool.acknowledged(key)
                } catch {
                    // Still in the spool: it goes again later (answered duplicate), not in a tight loop.
                    self.logger.error("cannot record an acknowledgement", metadata: ["error": "\(error)"])
                    retryAt[key] = ContinuousClock.now + self.configuration.retryRejectedAfter
                }
            case .answered(let key, .success(.rejected(let reject))):
                let batch = landed(key)
                if reject.disposition == .permanent, let batch {
                    if !self.deadLetter(batch, reject) {
                        retryAt[key] = ContinuousClock.now + self.configuration.retryRejectedAfter
                    }
                } else {
                    self.counters.withLock { $0.batchesRetried += 1 }
                    if [.loopDetected, .hopLimitExceeded].contains(reject.code) {
                        // A misconfigured mesh: said loudly, once per batch; the batch stays here.
                        let first = self.meshRefusalsLogged.withLock { logged in
                            if logged.count >= 10_000 { logged = [] }
                            return logged.insert(key).inserted
                        }
                        if first {
                            self.logger.error(
                                "upstream refused the mesh path; the batch stays here (check the relays' hubs lists: docs/MESH.md)",
                                metadata: ["origin": "\(key.origin)", "batch": "\(key.sequence)", "code": "\(reject.code)",
                                           "reason": "\(reject.message)"]
                            )
                        }
                    } else {
                        self.logger.info(
                            "batch refused for now", metadata: ["origin": "\(key.origin)", "batch": "\(key.sequence)", "code": "\(reject.code)"]
                        )
                    }
                    retryAt[key] = ContinuousClock.now + self.configuration.retryRejectedAfter
                }
            case .answered(let key, .failure):
                // The connection ended (or the hub sent GOAWAY) before the answer: the batch
                // stays in the spool and goes on the next connection.
                _ = landed(key)
                finished = true
            case .closed:
                return .lost
            }
            if finished, inFlight.isEmpty { return .lost }
            if returning, inFlight.isEmpty { return .returnToPrimary }
            pump()
        }
        return .cancelled
    }

    /// Moves a permanently refused batch to the dead-letter folder, with the reason beside
    /// it, and drops it from the spool. Returns false when it stays in the spool.
    private func deadLetter(_ batch: SealedBatch, _ reject: Reject) -> Bool {
        let name = "\(batch.header.origin)-\(batch.header.sequence)"
        let folder = self.configuration.deadLetterDirectory
        let reason = "code: \(reject.code)\nmessage: \(reject.message)\nrecords: \(batch.header.recordCount)\nat: \(Date())\n"
        do {
            // Dead letters hold customer data: owner-only files in an owner-only folder.
            try SecretFile.createDirectory(folder)
            try SecretFile.restrict(folder)
            try SecretFile.write(batch.bytes.readableBytesView, to: folder + "/" + name + ".batch", replacing: true)
            try SecretFile.write(Data(reason.utf8), to: folder + "/" + name + ".reason", replacing: true)
            try self.spool.acknowledged(batch.key)
            self.counters.withLock { $0.batchesDeadLettered += 1 }
            self.logger.error(
                "batch refused for good; moved to dead letters",
                metadata: [
                    "origin": "\(batch.header.origin)", "batch": "\(batch.header.sequence)", "code": "\(reject.code)", "reason": "\(reject.message)",
                    "folder": "\(folder)",
                ]
            )
            return true
        } catch {
            // Keep it in the spool rather than lose it; it goes again later.
            self.logger.error("cannot write a dead letter; the batch stays in the spool", metadata: ["error": "\(error)"])
            return false
        }
    }
}

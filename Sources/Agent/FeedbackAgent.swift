import Logging
import NIOPosix
import NIOSSL
import NodeServer
import Prometheus
import ServiceLifecycle
import Synchronization
import Wire

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The embeddable agent: ratings submitted here are durable in the local spool when
/// ``submit(_:)`` returns, then sealed, signed and forwarded to a hub, exactly once.
///
/// Run it as a ServiceLifecycle `Service` (``run()``); on graceful shutdown it stops taking
/// ratings, seals what it holds, waits up to ``Configuration/drainTimeout`` for the hub's
/// acknowledgements and leaves whatever is still unacknowledged safely in the spool.
///
/// ```swift
/// let agent = try FeedbackAgent(configuration: configuration, logger: logger)
/// let services = ServiceGroup(configuration: .init(services: [agent], logger: logger))
/// try await agent.submit(FeedbackSubmission(source: "popup", scale: "nps", score: 9))
/// ```
public final class FeedbackAgent: Service, Sendable {
    /// Settings.
    public struct Configuration: Sendable {
        /// The agent's identity.
        public var identity: AgentIdentity
        /// Hubs or relays, in order of preference.
        public var hubs: [HubAddress]
        /// Client TLS context trusting the hubs' CA and, for hubs that require mutual TLS,
        /// presenting this node's client certificate (see
        /// ``HubConnection/tlsContext(trusting:clientCertificate:)``).
        public var tls: NIOSSLContext
        /// The spool folder and its fsync policy and quota.
        public var spool: Spool.Configuration
        /// When batches are cut.
        public var batching = Batcher.Configuration()
        /// A one-time enrollment token, used until the hub knows this agent's key.
        public var enrollmentToken = ""
        /// Reconnect delays.
        public var backoff = Backoff()
        /// How long to stay on a fallback hub before trying the first again.
        public var returnToPrimaryAfter: Duration = .seconds(300)
        /// On shutdown, how long to wait for outstanding acknowledgements.
        public var drainTimeout: Duration = .seconds(10)
        /// Edge sources (kiosk buttons, call logs, files) run beside `submit` and HTTP.
        public var sources: [SourceConfiguration] = []
        /// The sites this agent is enrolled for: a rating for another site is refused at
        /// capture (the hub would refuse its whole batch). `.any` leaves it to the hub.
        public var sites: SiteScope = .any
        /// When set, the agent is also a relay: it listens here and holds and forwards the
        /// batches of the nodes below it (docs/MESH.md).
        public var relay: NodeServer.Configuration?
        /// How often the node reports its status upstream (STATUS, version 2 upstreams).
        public var statusInterval: Duration = .seconds(30)

        /// Creates settings; the spool lives in `spoolDirectory`, dead letters beside it.
        public init(identity: AgentIdentity, hubs: [HubAddress], tls: NIOSSLContext, spoolDirectory: String) {
            self.identity = identity
            self.hubs = hubs
            self.tls = tls
            self.spool = Spool.Configuration(directory: spoolDirectory)
        }
    }

    /// What `feedback-agent status` and `/metrics` show.
    public struct Status: Sendable, Hashable {
        /// The spool's counts.
        public var spool: Spool.Stats
        /// The uplink's counters.
        public var uplink: Uplink.Stats
        /// Ratings taken since start (through ``submit(_:)-([FeedbackSubmission])`` and HTTP).
        public var submitted: Int
        /// Counts per edge source, by name.
        public var sources: [String: SourceStats] = [:]
    }

    /// This software's version, as status reports give it.
    public static let softwareVersion = "0.14.0"

    /// The settings in force.
    public let configuration: Configuration
    /// The durable queue.
    public let spool: Spool
    /// The relay's listener, when the agent relays.
    public let relayServer: NodeServer?
    private let relayRegistry: RelayRegistry?
    private let relayedReports = RelayedReports(logger: Logger(label: "feedback-agent.relay"))
    private let batcher: Batcher
    private let uplink: Uplink
    private let sources: SourceRunner
    private let logger: Logger
    private let ids = Mutex(UUIDv7())
    private let accepting = Mutex(true)
    private let submitted = Atomic<Int>(0)

    /// Opens (and recovers) the spool; nothing connects until ``run()``.
    ///
    /// - Throws: ``SpoolError`` when the spool folder cannot be used.
    public init(configuration: Configuration, logger: Logger) throws {
        precondition(!configuration.hubs.isEmpty, "at least one hub (checked by the configuration)")
        self.configuration = configuration
        self.logger = logger
        self.spool = try Spool(configuration: configuration.spool, logger: logger)
        var uplinkConfiguration = Uplink.Configuration(
            hubs: configuration.hubs, tls: configuration.tls, identity: configuration.identity,
            deadLetterDirectory: configuration.spool.directory + "/dead-letter"
        )
        uplinkConfiguration.enrollmentToken = configuration.enrollmentToken
        uplinkConfiguration.backoff = configuration.backoff
        uplinkConfiguration.returnToPrimaryAfter = configuration.returnToPrimaryAfter
        uplinkConfiguration.statusInterval = configuration.statusInterval
        let registry = configuration.relay.map { _ in RelayRegistry(path: configuration.spool.directory + "/registry", logger: logger) }
        self.relayRegistry = registry
        if let registry {
            uplinkConfiguration.role = .relay
            uplinkConfiguration.onRegistry = { registry.enqueue($0) }
        }
        let reports = self.relayedReports
        let uplink = Uplink(configuration: uplinkConfiguration, spool: self.spool, logger: logger)
        self.uplink = uplink
        if let relay = configuration.relay, let registry {
            let backend = RelayIngest(
                registry: registry, spool: self.spool, reports: reports, logger: logger, held: { uplink.notify() },
                carryUp: { uplink.carryUp($0) }
            )
            let metrics = NodeServerMetrics(factory: PrometheusMetricsFactory(registry: PrometheusCollectorRegistry()), prefix: "feedback_relay")
            self.relayServer = try NodeServer(configuration: relay, backend: backend, metrics: metrics, logger: logger)
        } else {
            self.relayServer = nil
        }
        self.batcher = Batcher(
            spool: self.spool, identity: configuration.identity, configuration: configuration.batching, logger: logger,
            sealsByAge: { uplink.stats.connectedHub != nil },
            onSealed: { uplink.notify() }
        )
        let batcher = self.batcher
        self.sources = SourceRunner(
            sources: configuration.sources, spool: self.spool, origin: configuration.identity.nodeID, sites: configuration.sites,
            logger: logger,
            onCaptured: { batcher.notify() }
        )
        uplink.reportStatus { [weak self] ownDue in
            guard let self else { return [] }
            let own = ownDue ? self.statusReport(upstream: uplink.stats.connectedHub) : nil
            return [own].compactMap { $0 } + reports.take()
        } putBack: { reports.putBack($0) }
        if self.spool.recovery != Spool.Recovery() {
            logger.warning(
                "spool recovered",
                metadata: [
                    "truncatedBytes": "\(self.spool.recovery.truncatedBytes)",
                    "quarantined": "\(self.spool.recovery.quarantinedSegments.joined(separator: ","))",
                ]
            )
        }
    }

    /// Takes ratings; returns their records once they are durable in the spool. A
    /// submission's ``FeedbackSubmission/id``, when set, is its record's id.
    ///
    /// - Throws: ``WireError`` (`invalidRecord`, naming the field) for a bad submission —
    ///   then nothing of this call is kept; ``SpoolError`` `full` when the spool is at its
    ///   quota, `closed` after shutdown began.
    @discardableResult
    public func submit(_ submissions: [FeedbackSubmission]) async throws -> [FeedbackRecord] {
        guard self.accepting.withLock({ $0 }) else { throw SpoolError(.closed, "the agent is shutting down") }
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let origin = self.configuration.identity.nodeID
        let sites = self.configuration.sites
        let records = try self.ids.withLock { ids in
            try submissions.map { try $0.record(id: $0.id ?? ids.next(milliseconds: now), origin: origin, capturedAt: now, sites: sites) }
        }
        try await self.spool.append(records)
        self.submitted.add(records.count, ordering: .relaxed)
        self.batcher.notify()
        return records
    }

    /// Takes ratings read from a source up to `cursor` (see ``SourceCursor``): the records
    /// and the cursor become durable together. Every submission must be valid.
    ///
    /// - Throws: like ``submit(_:)-([FeedbackSubmission])``; then nothing is kept and the
    ///   cursor does not move.
    @discardableResult
    public func capture(_ submissions: [FeedbackSubmission], cursor: SourceCursor) async throws -> [FeedbackRecord] {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let origin = self.configuration.identity.nodeID
        let sites = self.configuration.sites
        let records = try self.ids.withLock { ids in
            try submissions.map { try $0.record(id: $0.id ?? ids.next(milliseconds: now), origin: origin, capturedAt: now, sites: sites) }
        }
        try await self.spool.append(records, cursor: cursor)
        self.submitted.add(records.count, ordering: .relaxed)
        if !records.isEmpty { self.batcher.notify() }
        return records
    }

    /// Takes one rating; see ``submit(_:)-([FeedbackSubmission])``.
    @discardableResult
    public func submit(_ submission: FeedbackSubmission) async throws -> FeedbackRecord {
        try await self.submit([submission])[0]
    }

    /// Seals everything now and waits until the hub has acknowledged all of it, or
    /// `timeout` passes. Returns whether the spool is empty.
    public func flush(timeout: Duration = .seconds(10)) async -> Bool {
        await self.batcher.sealAll()
        self.uplink.notify()
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let stats = self.spool.stats
            if stats.unsealedRecords == 0, stats.unacknowledgedBatches == 0 { return true }
            if stats.unsealedRecords > 0 { await self.batcher.sealAll() }
            do {
                try await Task.sleep(for: .milliseconds(10))
            } catch {
                break  // cancelled: stop waiting, what is left stays in the spool
            }
        }
        let stats = self.spool.stats
        return stats.unsealedRecords == 0 && stats.unacknowledgedBatches == 0
    }

    /// This node's STATUS report for its upstream, signed with its key.
    func statusReport(upstream: HubAddress?) -> StatusReport? {
        let status = self.status
        let sources = status.sources.sorted { $0.key < $1.key }.map { name, stats in
            NodeStatus.Source(name: name, captured: stats.ratings, errors: stats.badLines + stats.dropped, lastError: nil)
        }
        let spool = status.spool
        let report = NodeStatus(
            version: Self.softwareVersion, role: self.relayServer == nil ? "agent" : "relay", sites: self.configuration.sites.patterns,
            backlogRecords: spool.unsealedRecords + spool.unacknowledgedRecords, backlogBatches: spool.unacknowledgedBatches,
            oldestPendingAt: spool.oldestPendingCapturedAt, sources: sources, upstream: upstream.map { "\($0)" },
            downstream: self.relayServer?.connectionCount
        )
        return try? StatusReport(
            nodeID: self.configuration.identity.nodeID, signingKey: self.configuration.identity.signingKey,
            sentAt: Int64(Date().timeIntervalSince1970 * 1000), status: report
        )
    }

    /// Counts for status pages and metrics.
    public var status: Status {
        Status(
            spool: self.spool.stats, uplink: self.uplink.stats, submitted: self.submitted.load(ordering: .relaxed),
            sources: self.sources.stats
        )
    }

    /// Seals and forwards until graceful shutdown; then drains (bounded) and closes the spool.
    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.batcher.run() }
            group.addTask { await self.uplink.run() }
            if let relayServer = self.relayServer {
                // Drains itself on graceful shutdown: GOAWAY below, every held batch durable.
                group.addTask {
                    do {
                        try await relayServer.run()
                    } catch {
                        self.logger.error("the relay listener stopped", metadata: ["error": "\(error)"])
                    }
                }
            }
            let sources = Task { await self.sources.run() }
            try? await gracefulShutdown()
            // Sources stop first: what they read is in the spool with its cursor, the rest is read next time.
            sources.cancel()
            await sources.value
            self.accepting.withLock { $0 = false }
            // Cancelled rather than asked to stop: no drain, the spool keeps everything.
            let drained = Task.isCancelled ? false : await self.flush(timeout: self.configuration.drainTimeout)
            let left = self.spool.stats
            self.logger.info(
                "agent stopping",
                metadata: ["drained": "\(drained)", "unsealed": "\(left.unsealedRecords)", "unacknowledgedBatches": "\(left.unacknowledgedBatches)"]
            )
            group.cancelAll()
        }
        // Closing waits for the spool's last fsync: on NIO's blocking pool, not on a
        // concurrency thread.
        let spool = self.spool
        try? await NIOThreadPool.singleton.runIfActive { spool.close() }
    }
}

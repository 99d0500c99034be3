import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import ListenerLimits
import Logging
import NIOCore
import NIOSSL
import NodeServer
import Prometheus
import ServiceLifecycle
import Synchronization

/// One hub: the store, the registry, the protocol server and the operations HTTP endpoints
/// (`/metrics`, `/healthz`, `/readyz`, and the `/v1` API behind API tokens), assembled from
/// a configuration.
///
/// ``application`` is a `Service`: run it in a `ServiceGroup` (the CLI uses
/// `runService()`, which also turns SIGTERM into a graceful drain).
public final class Hub: Sendable {
    /// The settings in force.
    public let configuration: HubConfiguration
    /// The store: records, registry, alerts, reports and the fleet's status.
    public let store: any FeedbackStore
    /// The node registry.
    public let registry: NodeRegistry
    /// The protocol server, taking batches into the store through ``HubIngest``.
    public let server: NodeServer
    /// The metrics registry behind `/metrics`.
    public let prometheus: PrometheusCollectorRegistry
    /// The alert rules in force (none when the configuration names no rules file).
    public let alertRules: AlertRules
    /// Delivers and escalates alerts; nil when there are no rules.
    public let alertDispatcher: AlertDispatcher?
    /// Counts silent nodes and raises the silent rules' alerts.
    public let fleetMonitor: FleetMonitor
    /// Pings the store (readiness) and runs its upkeep.
    public let storeWatch: StoreWatch
    private let metrics: HubMetrics
    private let clock: @Sendable () -> Int64
    private let httpBound = Mutex<SocketAddress?>(nil)
    /// The operations port's TLS, when `operations.tls` names files.
    private let httpTLS: TLSConfiguration?
    private let logger: Logger

    /// Opens the store, reads the alert rules and prepares the servers; nothing listens
    /// until the application runs.
    ///
    /// - Parameters:
    ///   - clock: ms since the epoch, for alert deadlines, the alert API, STATUS reports and
    ///     silent nodes; tests inject one to make time pass.
    ///   - fleetCheckInterval: how often silent nodes are counted and silent rules evaluated.
    /// - Throws: ``AlertRulesError`` for a bad rules file, naming the rule and field.
    public init(
        configuration: HubConfiguration, logger: Logger,
        clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) },
        fleetCheckInterval: Duration = Hub.fleetCheckInterval
    ) throws {
        self.configuration = configuration
        self.logger = logger
        self.clock = clock
        if let files = configuration.operations.tls {
            do {
                self.httpTLS = try ServerTLS.configuration(.init(certificate: files.certificate, privateKey: files.privateKey), minimumVersion: .tlsv12)
            } catch {
                throw ConfigurationError(path: files.certificate, "(operations.tls) cannot be used for TLS with key \(files.privateKey): \(error)")
            }
        } else {
            self.httpTLS = nil
        }
        self.alertRules = try configuration.alerts.map(AlertRules.load(from:)) ?? .none
        self.store = try Self.openStore(configuration, alerts: self.alertRules, logger: logger, checkpointsInBackground: true)
        self.registry = try NodeRegistry(store: self.store)
        self.prometheus = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: self.prometheus)
        factory.durationHistogramBuckets["feedback_hub_case_first_action_seconds"] = HubMetrics.caseDurationBuckets
        factory.durationHistogramBuckets["feedback_hub_case_close_seconds"] = HubMetrics.caseDurationBuckets
        let metrics = HubMetrics(factory: factory, store: self.store.kind)
        self.storeWatch = StoreWatch(store: self.store, metrics: metrics, logger: logger, now: clock)
        self.metrics = metrics
        self.alertDispatcher =
            self.alertRules.rules.isEmpty
            ? nil : AlertDispatcher(store: self.store, rules: self.alertRules, metrics: metrics, logger: logger, now: clock)
        let limits = configuration.limits
        let needed = limits.maxConnections + limits.maxHandshakes + configuration.httpLimits.maxConnections + Self.filesBesideConnections
        if let available = OpenFileLimit.current, available < needed {
            logger.warning(
                "the open-file limit is below what the connection caps need: lower the caps or raise the limit",
                metadata: ["limit": "\(available)", "needed": "\(needed)"]
            )
        }
        let anySite = (try? self.store.nodes().filter { $0.sites.allowsAnySite && !$0.revoked }.count) ?? 0
        if anySite > 0 {
            logger.notice("nodes that may report for any site (narrow them with `feedback-hub agents sites`)", metadata: ["nodes": "\(anySite)"])
        }
        let serverConfiguration = try configuration.serverConfiguration()
        self.fleetMonitor = FleetMonitor(
            store: self.store, rules: self.alertRules, silentAfterMinutes: configuration.fleet.silentAfterMinutes, interval: fleetCheckInterval,
            metrics: metrics, logger: logger, now: clock
        )
        let ingest = HubIngest(
            store: self.store, registry: self.registry, commit: configuration.commit, metrics: metrics, logger: logger, clock: clock,
            isStoreReachable: { [storeWatch = self.storeWatch] in storeWatch.isReachable }
        )
        do {
            self.server = try NodeServer(configuration: serverConfiguration, backend: ingest, metrics: metrics.server, logger: logger)
        } catch {
            ingest.stopTaking()
            if let error = error as? NodeServerError, error.code == .tlsFiles {
                throw ConfigurationError(path: configuration.tls.certificate, error.reason)
            }
            throw error
        }
        HubTLS.reportExpiry(of: configuration.tls, metrics: metrics, logger: logger)
    }

    /// The operations HTTP application, with the protocol server as one of its services.
    public func application() throws -> some Service {
        let http = try HostPort(self.configuration.http, key: "http")
        let router = Router(context: OperationsContext.self, options: .autoGenerateHeadEndpoints)
        let secureCookie = BrowserSession.isSecure(portTLS: self.httpTLS != nil, origins: self.configuration.operations.origins)
        router.add(
            middleware: AccessGuard(
                store: self.store, access: self.configuration.operations, scheme: self.httpTLS == nil ? "http" : "https",
                secureCookie: secureCookie, metrics: self.metrics, clock: self.clock
            )
        )
        router.add(middleware: MethodGuard())
        let server = self.server
        let storeWatch = self.storeWatch
        let prometheus = self.prometheus
        router.get("healthz") { _, _ in "ok\n" }
        router.get("readyz") { _, _ -> Response in
            let ready = server.isReady && storeWatch.isReachable
            return Response(
                status: ready ? .ok : .serviceUnavailable,
                headers: [.contentType: "text/plain; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: ready ? "ready\n" : "not ready\n"))
            )
        }
        let alerts = AlertAPI(store: self.store, metrics: self.metrics, clock: self.clock)
        alerts.register(on: router)
        alerts.registerReport(on: router)
        AccessAPI(
            store: self.store, sessionMilliseconds: Int64(self.configuration.operations.sessionHours) * 3_600_000, secure: secureCookie,
            clock: self.clock
        ).register(on: router)
        let reports = ReportAPI(store: self.store, clock: self.clock)
        reports.register(on: router)
        reports.registerRatings(on: router)
        let sampler = HealthSampler(text: { String(decoding: prometheus.emitToBuffer(), as: UTF8.self) }, clock: self.clock)
        Dashboard(
            store: self.store, sampler: sampler, library: try DashboardTemplates.library(), secureCookie: secureCookie,
            silentAfterMilliseconds: Int64(self.configuration.fleet.silentAfterMinutes) * 60_000, clock: self.clock
        ).register(on: router)
        router.get("metrics") { _, _ -> Response in
            Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: prometheus.emitToBuffer()))
            )
        }
        let metrics = self.metrics
        let httpSlots = HTTPConnectionSlots(limits: self.configuration.httpLimits) { metrics.httpConnectionClosed($0) }
        let http1 = HTTPServerBuilder.http1(configuration: .init(additionalChannelHandlers: [httpSlots.makeGuard()]))
        return Application(
            router: router,
            server: try self.httpTLS.map { try .tls(http1, tlsConfiguration: $0) } ?? http1,
            configuration: .init(address: .hostname(http.host, port: http.port)),
            services: self.services + [sampler],
            onServerRunning: { channel in self.httpBound.withLock { $0 = channel.localAddress } },
            logger: self.logger
        )
    }

    private var services: [any Service] {
        var services: [any Service] = [self.server, self.fleetMonitor, self.storeWatch]
        if let dispatcher = self.alertDispatcher { services.append(dispatcher) }
        return services
    }

    /// The store the configuration names: the SQLite file, or the PostgreSQL database of a
    /// `postgres://` URL.
    /// The command line opens it too, beside running hubs.
    ///
    /// With `keepReportZone` the store keeps the zone its daily rollups were counted in
    /// instead of `reports.timeZone` (the command line, beside a running hub, never recounts).
    /// With `checkpointsInBackground` (the serving hub) a SQLite store copies its WAL from a
    /// thread of its own (``SQLiteStore/init(path:alerts:reportZone:checkpointsInBackground:)``).
    public static func openStore(
        _ configuration: HubConfiguration, alerts: AlertRules, logger: Logger, keepReportZone: Bool = false,
        checkpointsInBackground: Bool = false
    ) throws -> any FeedbackStore {
        let zone: TimeZone? = keepReportZone ? nil : (configuration.reports.zone ?? .gmt)
        if let settings = try configuration.postgres() {
            logger.info("store: PostgreSQL", metadata: ["database": "\(settings.redactedURL)", "poolSize": "\(settings.poolSize)"])
            return try PostgresStore(settings: settings, alerts: alerts, logger: logger, reportZone: zone)
        }
        return try SQLiteStore(path: configuration.store, alerts: alerts, reportZone: zone, checkpointsInBackground: checkpointsInBackground)
    }

    /// How often silent nodes are counted and silent rules evaluated: a node is silent after
    /// minutes, so seconds of delay do not matter, and each check reads the whole registry.
    public static let fleetCheckInterval = Duration.seconds(10)

    /// Descriptors the hub holds besides connections: the store and its WAL, logs, the
    /// listeners, webhook connections.
    static let filesBesideConnections = 64

    /// The address of the operations endpoints, once bound.
    public var httpAddress: SocketAddress? { self.httpBound.withLock { $0 } }
}

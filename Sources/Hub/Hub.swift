import Foundation
import Hummingbird
import Logging
import NIOCore
import Prometheus
import ServiceLifecycle
import Synchronization

/// One hub: the store, the registry, the protocol server and the operations HTTP endpoints
/// (`/metrics`, `/healthz`, `/readyz`), assembled from a configuration.
///
/// ``application`` is a `Service`: run it in a `ServiceGroup` (the CLI uses
/// `runService()`, which also turns SIGTERM into a graceful drain).
public final class Hub: Sendable {
    /// The settings in force.
    public let configuration: HubConfiguration
    /// The store.
    public let store: SQLiteStore
    /// The node registry.
    public let registry: NodeRegistry
    /// The protocol server.
    public let server: HubServer
    /// The metrics registry behind `/metrics`.
    public let prometheus: PrometheusCollectorRegistry
    private let httpBound = Mutex<SocketAddress?>(nil)
    private let logger: Logger

    /// Opens the store and prepares the servers; nothing listens until the application runs.
    public init(configuration: HubConfiguration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        self.store = try SQLiteStore(path: configuration.store)
        self.registry = try NodeRegistry(store: self.store)
        self.prometheus = PrometheusCollectorRegistry()
        let metrics = HubMetrics(factory: PrometheusMetricsFactory(registry: self.prometheus))
        self.server = try HubServer(
            configuration: configuration,
            store: self.store,
            registry: self.registry,
            metrics: metrics,
            logger: logger
        )
    }

    /// The operations HTTP application, with the protocol server as one of its services.
    public func application() throws -> some Service {
        let http = try HostPort(self.configuration.http, key: "http")
        let router = Router()
        let server = self.server
        let prometheus = self.prometheus
        router.get("healthz") { _, _ in "ok\n" }
        router.get("readyz") { _, _ -> Response in
            let ready = server.isReady
            return Response(
                status: ready ? .ok : .serviceUnavailable,
                headers: [.contentType: "text/plain; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: ready ? "ready\n" : "not ready\n"))
            )
        }
        router.get("metrics") { _, _ -> Response in
            Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: prometheus.emitToBuffer()))
            )
        }
        return Application(
            router: router,
            configuration: .init(address: .hostname(http.host, port: http.port)),
            services: [self.server],
            onServerRunning: { channel in self.httpBound.withLock { $0 = channel.localAddress } },
            logger: self.logger
        )
    }

    /// The address of the operations endpoints, once bound.
    public var httpAddress: SocketAddress? { self.httpBound.withLock { $0 } }
}

import Foundation
import Logging
import ServiceLifecycle

/// Watches the fleet: every ``interval`` it reads when each node was last seen, raises the
/// silent rules' alerts (``AlertStore/raiseSilenceAlerts(fleet:now:)``) and sets
/// `feedback_hub_nodes_silent`. The store is read on NIO's blocking pool, never on an event
/// loop or a concurrency thread.
public final class FleetMonitor: Service, Sendable {
    private let store: any AlertStore & FleetStatusStore
    private let rules: AlertRules
    private let silentAfterMilliseconds: Int64
    private let interval: Duration
    private let metrics: HubMetrics
    private let logger: Logger
    private let now: @Sendable () -> Int64

    /// Creates a monitor of `store`'s fleet.
    ///
    /// - Parameters:
    ///   - silentAfterMinutes: a node not seen for this long counts as silent in the metric.
    ///   - interval: how often it checks.
    ///   - now: the clock (ms since the epoch); tests inject one to make time pass.
    public init(
        store: any AlertStore & FleetStatusStore, rules: AlertRules, silentAfterMinutes: Int, interval: Duration, metrics: HubMetrics, logger: Logger,
        now: @escaping @Sendable () -> Int64
    ) {
        self.store = store
        self.rules = rules
        self.silentAfterMilliseconds = Int64(silentAfterMinutes) * 60_000
        self.interval = interval
        self.metrics = metrics
        self.logger = logger
        self.now = now
    }

    /// Checks until graceful shutdown.
    public func run() async throws {
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            do {
                try await StoreAccess.run { try self.check() }
            } catch {
                self.logger.error("cannot check the fleet for silent nodes", metadata: ["error": "\(error)"])
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: self.interval) }
        }
    }

    /// One check. Blocks on the store.
    func check() throws {
        let now = self.now()
        let fleet = try self.store.fleet()
        // Alerts before the gauge: a scrape that sees the gauge of a check sees its alerts.
        if self.rules.rules.contains(where: { $0.silentForMilliseconds != nil }) {
            _ = try self.store.raiseSilenceAlerts(fleet: fleet, now: now)
        }
        self.metrics.nodesSilent.record(fleet.filter { $0.isSilent(at: now, after: self.silentAfterMilliseconds) }.count)
    }
}

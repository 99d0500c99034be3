import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Watches the store while the hub runs: every ``interval`` it pings it (`/readyz` says not
/// ready while the ping fails, and `feedback_hub_store_up` is 0), records the connection
/// pool's use, and every ``maintainInterval`` runs the store's upkeep (PostgreSQL: record
/// partitions made ahead, old ones dropped). Store calls run on NIO's blocking pool.
public final class StoreWatch: Service, Sendable {
    /// How often the store is pinged.
    public static let interval = Duration.seconds(1)
    /// How often the store's upkeep runs, ms.
    public static let maintainIntervalMilliseconds: Int64 = 3_600_000

    private let store: any StoreUpkeep
    private let metrics: HubMetrics
    private let logger: Logger
    private let now: @Sendable () -> Int64
    private let reachable = Atomic<Bool>(true)
    private let maintainedAt = Mutex<Int64?>(nil)

    /// Creates a watch of `store`; `now` is ms since the epoch.
    public init(store: any StoreUpkeep, metrics: HubMetrics, logger: Logger, now: @escaping @Sendable () -> Int64) {
        self.store = store
        self.metrics = metrics
        self.logger = logger
        self.now = now
        self.metrics.storeUp.record(1)
    }

    /// Whether the last ping answered.
    public var isReachable: Bool {
        self.reachable.load(ordering: .relaxed)
    }

    /// Watches until graceful shutdown.
    public func run() async throws {
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            await self.check()
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: Self.interval) }
        }
    }

    /// One ping, and the upkeep when it is due.
    func check() async {
        let store = self.store
        let up: Bool
        do {
            try await StoreAccess.run { try store.ping() }
            up = true
        } catch {
            up = false
            if self.reachable.load(ordering: .relaxed) {
                self.logger.error("the store does not answer; batches are refused as retryable until it does", metadata: ["error": "\(error)"])
            }
        }
        if up, !self.reachable.load(ordering: .relaxed) { self.logger.notice("the store answers again") }
        self.reachable.store(up, ordering: .relaxed)
        self.metrics.storeUp.record(up ? 1 : 0)
        if let usage = store.poolUsage {
            self.metrics.storePoolInUse.record(usage.inUse)
            self.metrics.storePoolSize.record(usage.size)
        }
        let now = self.now()
        guard up, self.maintainedAt.withLock({ $0.map { now - $0 >= Self.maintainIntervalMilliseconds } ?? true }) else { return }
        do {
            try await StoreAccess.run { try store.maintain(now: now) }
            self.maintainedAt.withLock { $0 = now }
        } catch {
            self.logger.error("store upkeep failed; will try again", metadata: ["error": "\(error)"])
        }
    }
}

import AsyncHTTPClient
import CoreMetrics
import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// Delivers the store's alert outbox: sends each pending delivery to its target, retries
/// failures with exponential backoff up to the rules' attempt limit (then marks it dead),
/// escalates open alerts whose first-action deadline has passed, and follows cases up
/// (a reminder before the due time, an overdue notice and an escalation after it).
///
/// Woken at once when a commit raises alerts, and every ``tick`` for retries and
/// escalation. Each delivery has a stable id (the `webhook-id` header), the same on every
/// retry; it is marked delivered only after the target answered 2xx, so a hub crash
/// between the two makes it go again with the same id (at-least-once, deduplicated by id).
///
/// Every store call runs on NIO's blocking pool (``StoreAccess``), never on a concurrency
/// thread. It also prunes the window rules' counts that can no longer matter, every
/// ``pruneInterval``.
public final class AlertDispatcher: Service, Sendable {
    /// Most deliveries in flight at once.
    public static let maxConcurrent = 32
    /// How often window counts older than the evaluator's horizon are deleted, ms.
    public static let pruneIntervalMilliseconds: Int64 = 600_000

    private let store: any AlertStore
    private let rules: AlertRules
    private let pruned = Mutex<Int64>(0)
    private let metrics: HubMetrics
    private let logger: Logger
    private let now: @Sendable () -> Int64
    private let tick: Duration
    private let busy = Mutex<Set<UUID>>([])
    private let wake: AsyncStream<Void>.Continuation
    private let wakes: AsyncStream<Void>

    /// Creates a dispatcher for `store`'s outbox.
    ///
    /// - Parameters:
    ///   - now: the clock (ms since the epoch); tests inject one to make deadlines pass.
    ///   - tick: how often retries and deadlines are checked without a wake-up.
    public init(
        store: any AlertStore, rules: AlertRules, metrics: HubMetrics, logger: Logger,
        now: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) },
        tick: Duration = .milliseconds(250)
    ) {
        self.store = store
        self.rules = rules
        self.metrics = metrics
        self.logger = logger
        self.now = now
        self.tick = tick
        (self.wakes, self.wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        store.onAlertsRaised { [wake] count in
            metrics.alertsRaised.increment(by: Int64(count))
            wake.yield()
        }
    }

    /// Check the outbox now.
    public func notify() {
        self.wake.yield()
    }

    /// Delivers until graceful shutdown; deliveries in flight then finish (each within the
    /// request timeout).
    public func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask { [wake, tick] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: tick)
                    wake.yield()
                }
            }
            for await _ in self.wakes.cancelOnGracefulShutdown() {
                await self.escalate()
                await self.prune()
                for delivery in await self.takeDue() {
                    group.addTask {
                        await self.deliver(delivery)
                        self.busy.withLock { _ = $0.remove(delivery.id) }
                        self.wake.yield()
                    }
                }
            }
            group.cancelAll()
        }
    }

    private func escalate() async {
        let (store, now) = (self.store, self.now())
        do {
            for (id, level) in try await StoreAccess.run({ try store.escalateOverdue(now: now) }) {
                self.metrics.alertsEscalated.increment()
                self.logger.warning("alert not acknowledged in time; escalated", metadata: ["alert": "\(id)", "level": "\(level)"])
            }
        } catch {
            self.logger.error("cannot escalate alerts", metadata: ["error": "\(error)"])
        }
        do {
            for (id, event) in try await StoreAccess.run({ try store.followUpCases(now: now) }) {
                self.metrics.caseFollowUps(event).increment()
                self.logger.notice("case follow-up sent", metadata: ["alert": "\(id)", "event": "\(event)"])
            }
        } catch {
            self.logger.error("cannot follow up cases", metadata: ["error": "\(error)"])
        }
    }

    private func prune() async {
        let now = self.now()
        guard let horizon = AlertEvaluator(rules: self.rules).windowHorizon(now: now),
            self.pruned.withLock({ last in
                guard now - last >= Self.pruneIntervalMilliseconds else { return false }
                last = now
                return true
            })
        else { return }
        let store = self.store
        do {
            try await StoreAccess.run { try store.pruneAlertWindows(before: horizon) }
        } catch {
            self.logger.error("cannot prune the alert windows", metadata: ["error": "\(error)"])
        }
    }

    private func takeDue() async -> [DueDelivery] {
        let busy = self.busy.withLock { $0 }
        let room = Self.maxConcurrent - busy.count
        guard room > 0 else { return [] }
        let (store, now) = (self.store, self.now())
        do {
            let due = try await StoreAccess.run { try store.dueDeliveries(now: now, limit: room, excluding: busy) }
            self.busy.withLock { $0.formUnion(due.map(\.id)) }
            return due
        } catch {
            self.logger.error("cannot read the alert outbox", metadata: ["error": "\(error)"])
            return []
        }
    }

    private func deliver(_ delivery: DueDelivery) async {
        guard let target = self.rules.targets[delivery.target] else {
            // The rules changed since the alert was raised; nothing to send it to.
            await self.record(delivery, failure: "no target is named \"\(delivery.target)\"", permanent: true)
            return
        }
        let message = WebhookMessage(delivery: delivery, target: target, timestamp: self.now() / 1000)
        var request = HTTPClientRequest(url: target.url)
        request.method = .POST
        for (name, value) in message.headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(string: message.body))
        let failure: String
        do {
            let response = try await HTTPClient.shared.execute(
                request, timeout: .milliseconds(self.rules.delivery.timeoutMilliseconds), logger: nil
            )
            // Read (and bound) the body so the connection can be reused.
            _ = try? await response.body.collect(upTo: 64 * 1024)
            if (200..<300).contains(response.status.code) {
                do {
                    let (store, at) = (self.store, self.now())
                    try await StoreAccess.run { try store.deliveryDone(delivery.id, at: at) }
                    self.metrics.alertDeliveries(outcome: "delivered").increment()
                    if delivery.event == "alert.raised" {
                        self.metrics.alertLatency.recordNanoseconds(max(0, at - delivery.capturedAt) * 1_000_000)
                    }
                } catch {
                    self.logger.error("alert delivered but not recorded; it will go again", metadata: ["error": "\(error)"])
                }
                return
            }
            failure = "HTTP \(response.status.code)"
        } catch {
            failure = "\(error)"
        }
        await self.record(delivery, failure: failure, permanent: false)
    }

    private func record(_ delivery: DueDelivery, failure: String, permanent: Bool) async {
        let attempts = delivery.attempts + 1
        let settings = self.rules.delivery
        let dead = permanent || attempts >= settings.maxAttempts
        // Exponential backoff with up to 20% jitter, so a recovering receiver is not stampeded.
        let base = min(settings.firstRetryMilliseconds << min(attempts - 1, 30), settings.maxRetryMilliseconds)
        let retryAt = dead ? nil : self.now() + base + Int64.random(in: 0...max(base / 5, 0))
        do {
            let store = self.store
            try await StoreAccess.run { try store.deliveryFailed(delivery.id, error: failure, retryAt: retryAt) }
        } catch {
            self.logger.error("cannot record a failed alert delivery", metadata: ["error": "\(error)"])
        }
        self.metrics.alertDeliveries(outcome: dead ? "dead" : "failed").increment()
        let metadata: Logger.Metadata = [
            "alert": "\(delivery.alertID)", "target": "\(delivery.target)", "attempt": "\(attempts)", "error": "\(failure)",
        ]
        if dead {
            self.logger.error("alert delivery given up; dead-lettered", metadata: metadata)
        } else {
            self.logger.warning("alert delivery failed; will retry", metadata: metadata)
        }
    }
}

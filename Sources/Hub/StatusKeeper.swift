import Foundation
import Logging
import Synchronization
import Wire

/// Keeps the newest STATUS report of each registered node.
///
/// ``offer(_:from:)`` runs on an event loop and answers from memory: the registry's keys
/// and the newest `sentAt` kept per node. An accepted report waits in memory, replaced by a
/// newer one of its node; ``flush()`` writes what waits in one store transaction (the hub
/// calls it every second on the protocol server's blocking pool). Memory stays bounded: at
/// most one waiting report, one time and one log mark per registered node.
final class StatusKeeper: Sendable {
    /// How far ahead of the hub's clock a report's `sentAt` may be. Beyond it the node's
    /// clock is wrong, and a report from the future would stay "newest" and shut out every
    /// true one until that time came.
    static let maxAheadMilliseconds: Int64 = 5 * 60_000
    /// Fewest ms between two log lines about reports dropped from one connected node, so a
    /// hostile relay cannot flood the log.
    static let dropLogIntervalMilliseconds: Int64 = 60_000

    private struct State {
        /// `sentAt` of the newest report accepted per node.
        var newest: [UUID: Int64] = [:]
        /// Accepted, not yet written.
        var waiting: [UUID: KeptStatus] = [:]
        /// Per connected node: when a drop was last logged, and drops since.
        var dropLog: [UUID: (loggedAt: Int64, since: Int)] = [:]
    }

    private let store: any FleetStatusStore
    private let registry: NodeRegistry
    private let clock: @Sendable () -> Int64
    private let logger: Logger
    private let state = Mutex(State())

    /// Reads the newest kept report times from `store` (blocking: call it off the loops).
    init(store: any FleetStatusStore, registry: NodeRegistry, clock: @escaping @Sendable () -> Int64, logger: Logger) {
        self.store = store
        self.registry = registry
        self.clock = clock
        self.logger = logger
        do {
            var newest: [UUID: Int64] = [:]
            for node in try store.fleet() {
                if let status = node.status { newest[node.node.nodeID] = status.sentAt }
            }
            self.state.withLock { $0.newest = newest }
        } catch {
            // The store keeps a report only over an older one anyway.
            logger.warning("cannot read the kept status reports", metadata: ["error": "\(error)"])
        }
    }

    /// Checks `report`, which the connected node `sender` sent, and keeps it when it is
    /// newer than the one kept; else drops it (logged at most once a minute per sender).
    /// From memory; the signature check is the only work beyond a lookup.
    func offer(_ report: StatusReport, from sender: Hello) {
        let now = self.clock()
        let via = sender.nodeID == report.nodeID ? nil : sender.nodeID
        if via != nil, sender.role != .relay {
            return self.drop(report, from: sender, now: now, "an agent may report only for itself")
        }
        guard let reporter = self.registry.directoryNode(report.nodeID) else {
            return self.drop(report, from: sender, now: now, "the reporting node is not registered")
        }
        guard !reporter.entry.revoked else { return self.drop(report, from: sender, now: now, "the reporting node is revoked") }
        guard report.sentAt <= now + Self.maxAheadMilliseconds else {
            return self.drop(report, from: sender, now: now, "made more than 5 minutes ahead of the hub's clock")
        }
        // Before the signature: a replayed old report costs a lookup, not a verification.
        guard self.isNewest(report) else { return self.drop(report, from: sender, now: now, "not newer than the report kept") }
        do {
            _ = try report.verified(by: reporter.key)
        } catch let error as WireError {
            return self.drop(report, from: sender, now: now, error.detail)
        } catch {
            return self.drop(report, from: sender, now: now, "\(error)")
        }
        let kept = KeptStatus(
            nodeID: report.nodeID, receivedAt: now, sentAt: report.sentAt, via: via, body: String(decoding: report.body, as: UTF8.self)
        )
        let accepted = self.state.withLock { state -> Bool in
            // Another connection may have brought a newer one meanwhile.
            if let newest = state.newest[report.nodeID], newest >= report.sentAt { return false }
            state.newest[report.nodeID] = report.sentAt
            state.waiting[report.nodeID] = kept
            return true
        }
        if !accepted { self.drop(report, from: sender, now: now, "not newer than the report kept") }
    }

    private func isNewest(_ report: StatusReport) -> Bool {
        self.state.withLock { state in state.newest[report.nodeID].map { $0 < report.sentAt } ?? true }
    }

    private func drop(_ report: StatusReport, from sender: Hello, now: Int64, _ reason: String) {
        let dropped = self.state.withLock { state -> Int? in
            var mark = state.dropLog[sender.nodeID] ?? (loggedAt: Int64.min, since: 0)
            mark.since += 1
            defer { state.dropLog[sender.nodeID] = mark }
            guard mark.loggedAt == Int64.min || now - mark.loggedAt >= Self.dropLogIntervalMilliseconds else { return nil }
            let count = mark.since
            mark = (loggedAt: now, since: 0)
            return count
        }
        guard let dropped else { return }
        self.logger.notice(
            "status report dropped",
            metadata: [
                "node": "\(report.nodeID)", "from": "\(sender.nodeID)", "reason": "\(reason)", "droppedSinceLastLine": "\(dropped)",
            ]
        )
    }

    /// Writes the reports accepted since the last call, in one transaction. Blocks.
    func flush() {
        let waiting = self.state.withLock { state in
            defer { state.waiting = [:] }
            return state.waiting
        }
        guard !waiting.isEmpty else { return }
        do {
            try self.store.keep(Array(waiting.values))
        } catch {
            // Back for the next flush, unless a newer report of the node came meanwhile.
            self.state.withLock { state in
                for (node, status) in waiting where state.waiting[node] == nil { state.waiting[node] = status }
            }
            self.logger.warning("cannot store status reports; will try again", metadata: ["error": "\(error)"])
        }
    }
}

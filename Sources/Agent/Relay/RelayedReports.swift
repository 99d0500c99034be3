import Logging
import Synchronization
import Wire

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The newest STATUS report of each node below a relay, waiting to go upstream. Reports are
/// snapshots: a newer one replaces an older one, and none is kept on disk. Only reports that
/// verify under a registered, unrevoked key are kept, so there is at most one per registered
/// node, and a node may report only for itself (a relay also for the nodes it passes on).
final class RelayedReports: Sendable {
    private let waiting = Mutex<[UUID: StatusReport]>([:])
    private let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    /// Keeps `report`, arrived from the connected `node`, if it checks out.
    func received(_ report: StatusReport, from node: Hello, directory: NodeDirectory) {
        guard node.nodeID == report.nodeID || node.role == .relay else {
            self.logger.info("status report dropped: a node reports only for itself", metadata: ["from": "\(node.nodeID)", "about": "\(report.nodeID)"])
            return
        }
        guard let registered = directory.nodes[report.nodeID], !registered.entry.revoked else {
            self.logger.info("status report dropped: its node is not registered or revoked", metadata: ["about": "\(report.nodeID)"])
            return
        }
        do {
            _ = try report.verified(by: registered.key)
        } catch {
            self.logger.info("status report dropped", metadata: ["about": "\(report.nodeID)", "error": "\(error)"])
            return
        }
        self.waiting.withLock { waiting in
            if let kept = waiting[report.nodeID], kept.sentAt >= report.sentAt { return }
            waiting[report.nodeID] = report
        }
    }

    /// Takes every waiting report, to send upstream.
    func take() -> [StatusReport] {
        self.waiting.withLock { waiting in
            defer { waiting = [:] }
            return Array(waiting.values)
        }
    }

    /// Puts reports back that could not be sent, unless a newer one came meanwhile.
    func putBack(_ reports: [StatusReport]) {
        self.waiting.withLock { waiting in
            for report in reports where (waiting[report.nodeID]?.sentAt ?? .min) < report.sentAt { waiting[report.nodeID] = report }
        }
    }
}

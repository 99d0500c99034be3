import Foundation
import Logging
import NIOCore
import NodeServer
import Wire

/// The hub as a node server's backend: its registry authenticates nodes and names each
/// origin's key and sites, its group committer makes verified batches durable in the store,
/// its status keeper keeps each node's newest STATUS report.
public final class HubIngest: IngestBackend {
    private let store: any RecordStore
    private let registry: NodeRegistry
    private let committer: GroupCommitter
    private let statuses: StatusKeeper
    private let isStoreReachable: @Sendable () -> Bool

    /// Starts the group committer (its writer threads, ``RecordStore/commitWriters``) in front of `store`; reads the kept
    /// status reports' times (blocking).
    ///
    /// - Parameters:
    ///   - clock: ms since the epoch, when a STATUS report arrived.
    ///   - isStoreReachable: whether the store answered its last ping (``StoreWatch``); while
    ///     it does not, batches are refused at once as retryable instead of queueing behind
    ///     commits that cannot succeed.
    public init(
        store: any RecordStore & FleetStatusStore, registry: NodeRegistry, commit: HubConfiguration.Commit, metrics: HubMetrics,
        logger: Logger, clock: @escaping @Sendable () -> Int64, isStoreReachable: @escaping @Sendable () -> Bool = { true }
    ) {
        self.store = store
        self.isStoreReachable = isStoreReachable
        self.registry = registry
        self.statuses = StatusKeeper(store: store, registry: registry, clock: clock, logger: logger)
        var limits = GroupCommitter.Limits()
        limits.maxBatches = commit.maxBatches
        limits.maxRecords = commit.maxRecords
        self.committer = GroupCommitter(store: store, writers: store.commitWriters, limits: limits, metrics: metrics, logger: logger)
    }

    /// Authenticates through the registry (redeeming a token if the HELLO brings one); the
    /// resume point is the node's committed sequence as an origin.
    public func authenticate(_ hello: Hello, challenge: Challenge, now: Int64) -> Result<[Welcome.ResumePoint], Reject> {
        self.registry.authenticate(hello, challenge: challenge, now: now).flatMap { node in
            do {
                return .success([Welcome.ResumePoint(origin: node.nodeID, committedSequence: try self.store.committedSequence(origin: node.nodeID))])
            } catch {
                return .failure(.connection(.storeUnavailable, .retryable, "the store cannot be read"))
            }
        }
    }

    /// The registry's rights of the batch's origin.
    public func rights(for batch: SealedBatch) -> Result<OriginRights, Reject> {
        self.registry.rights(for: batch)
    }

    /// Hands the batch to the group committer; the future fails when its transaction does,
    /// and at once while the store does not answer (a retryable REJECT either way).
    public func take(_ batch: AcceptedBatch, on eventLoop: any EventLoop) -> EventLoopFuture<TakeOutcome> {
        guard self.isStoreReachable() else { return eventLoop.makeFailedFuture(StoreError("the store does not answer")) }
        let incoming = IncomingBatch(key: batch.key, records: batch.records, receivedAt: batch.receivedAt)
        return self.committer.submit(incoming, on: eventLoop).map { outcome in
            switch outcome {
            case .stored(let newRecords): .stored(newRecords: newRecords)
            case .duplicate: .duplicate
            }
        }
    }

    /// Whether the store holds the batch.
    public func isCommitted(_ key: BatchKey) throws -> Bool {
        try self.store.isCommitted(key)
    }

    /// A node revoked, or gone from the registry, is disconnected.
    public func mustDisconnect(_ node: UUID) -> Bool {
        self.registry.node(node)?.revoked ?? true
    }

    /// Writes the STATUS reports that arrived since the last call (one transaction), then
    /// reloads the registry from the store.
    public func refresh() throws {
        self.statuses.flush()
        try self.registry.refresh()
    }

    /// A node's STATUS report, checked from memory and kept if it is its node's newest; the
    /// store gets it at the next ``refresh()``, within a second.
    public func received(_ report: StatusReport, from node: Hello) {
        self.statuses.offer(report, from: node)
    }

    /// Redeems a token carried up by relays: the proof must answer a challenge of a
    /// registered relay, then the registry checks it as if the node had connected here.
    public func enroll(_ request: EnrollRequest, from relay: Hello, now: Int64) -> EnrollAnswer {
        let node = request.hello.nodeID
        guard self.registry.node(request.challenge.hubID)?.role == .relay, self.registry.node(request.challenge.hubID)?.revoked == false else {
            return EnrollAnswer(nodeID: node, outcome: .refused(.connection(.originNotAllowed, .permanent, "the enrollment was not made through a registered relay")))
        }
        switch self.registry.authenticate(request.hello, challenge: request.challenge, now: now) {
        case .success(let registered):
            return EnrollAnswer(nodeID: node, outcome: .enrolled(role: registered.role, sites: registered.sites))
        case .failure(let reject):
            return EnrollAnswer(nodeID: node, outcome: .refused(reject))
        }
    }

    /// The registry as relays get it.
    public func registrySnapshot() -> (revision: UInt64, frames: [RegistryUpdate])? {
        self.registry.registrySnapshot
    }

    /// Commits whatever is queued, then stops the committer; writes the reports waiting.
    public func stopTaking() {
        self.statuses.flush()
        self.committer.stop()
    }
}

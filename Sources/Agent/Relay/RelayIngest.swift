import Logging
import NIOCore
import NodeServer
import Synchronization
import Wire

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The relay as a node server's backend: the registry its upstream sent checks HELLOs and
/// signatures exactly as the hub would (``NodeDirectory``), and a verified batch is held in
/// the relay's own spool, fsync'd, before it is acknowledged downstream. The uplink then
/// forwards it byte for byte and settles it on the upstream's ACK.
///
/// A full spool answers a retryable `overloaded` REJECT: the downstream agent keeps the batch
/// and sends it again later, so an outage of the relay's upstream fills the relay to its
/// quota and then backs up into the agents' own spools. Nothing is dropped anywhere.
final class RelayIngest: IngestBackend {
    private let registry: RelayRegistry
    private let spool: Spool
    private let reports: RelayedReports
    private let held: @Sendable () -> Void
    private let carryUp: @Sendable (EnrollRequest) -> Result<EnrollAnswer, Reject>
    private let logger: Logger

    /// - Parameters:
    ///   - held: called after each batch taken, to wake the uplink.
    ///   - carryUp: sends an enrollment upstream and waits (bounded) for the answer.
    init(
        registry: RelayRegistry, spool: Spool, reports: RelayedReports, logger: Logger, held: @escaping @Sendable () -> Void,
        carryUp: @escaping @Sendable (EnrollRequest) -> Result<EnrollAnswer, Reject>
    ) {
        self.registry = registry
        self.spool = spool
        self.reports = reports
        self.logger = logger
        self.held = held
        self.carryUp = carryUp
    }

    /// Nodes the upstream has registered, checked as the hub checks them. Enrolling a new node
    /// needs the hub: a node with a token is told to enroll with the hub directly.
    func authenticate(_ hello: Hello, challenge: Challenge, now: Int64) -> Result<[Welcome.ResumePoint], Reject> {
        let directory = self.registry.directory
        switch directory.authenticate(hello, challenge: challenge) {
        case .failure(let reject)?:
            return .failure(Self.deferringToTheHub(reject))
        case .success?:
            // What is safe for the node: the highest of its sequences this relay holds or held.
            let held = self.spool.highestHeld(origin: hello.nodeID) ?? 0
            return .success([Welcome.ResumePoint(origin: hello.nodeID, committedSequence: held)])
        case nil:
            if !hello.enrollmentToken.isEmpty {
                // The hub redeems the token; this relay carries it up and, once the hub said
                // yes, knows the node before the next registry snapshot says so.
                switch self.carryUp(EnrollRequest(challenge: challenge, hello: hello)).map(\.outcome) {
                case .failure(let reject), .success(.refused(let reject)):
                    return .failure(reject)
                case .success(.enrolled(let role, let sites)):
                    self.admit(hello, role: role, sites: sites)
                    self.logger.info("node enrolled through this relay", metadata: ["node": "\(hello.nodeID)", "role": "\(role)"])
                    return .success([Welcome.ResumePoint(origin: hello.nodeID, committedSequence: 0)])
                }
            }
            guard self.registry.revision != nil else {
                // Retryable: the registry arrives with the relay's first upstream connection.
                return .failure(.connection(.storeUnavailable, .retryable, "this relay has not received the registry from its upstream yet"))
            }
            return .failure(.connection(.unknownKey, .retryable, "node \(hello.nodeID) is not registered; enroll it with a token"))
        }
    }

    /// A relay below carries an enrollment: it goes further up, the answer comes back down.
    func enroll(_ request: EnrollRequest, from relay: Hello, now: Int64) -> EnrollAnswer {
        switch self.carryUp(request) {
        case .success(let answer):
            if case .enrolled(let role, let sites) = answer.outcome { self.admit(request.hello, role: role, sites: sites) }
            return answer
        case .failure(let reject):
            return EnrollAnswer(nodeID: request.hello.nodeID, outcome: .refused(reject))
        }
    }

    /// A node the hub just enrolled through this relay (or one below it) is known here at once.
    private func admit(_ hello: Hello, role: Hello.Role, sites: SiteScope) {
        self.registry.admit(
            RegistryUpdate.Entry(nodeID: hello.nodeID, keyID: hello.keyID, publicKey: hello.publicKey, role: role, revoked: false, sites: sites)
        )
    }

    func rights(for batch: SealedBatch) -> Result<OriginRights, Reject> {
        self.registry.directory.rights(for: batch).mapError(Self.deferringToTheHub)
    }

    /// Only the hub's registry is authoritative: a relay's copy may be behind (a node enrolled
    /// or re-keyed since its last snapshot, or a snapshot from a stale upstream after a
    /// failover). An unknown or revoked key is therefore refused for now, not for good, so
    /// the sender keeps its batches rather than dead-letter them on a relay's say-so; a key
    /// the hub really revoked is refused for good when it gets there.
    static func deferringToTheHub(_ reject: Reject) -> Reject {
        guard [.unknownKey, .revokedKey].contains(reject.code) else { return reject }
        var deferred = reject
        deferred.disposition = .retryable
        return deferred
    }

    func take(_ batch: AcceptedBatch, on eventLoop: any EventLoop) -> EventLoopFuture<TakeOutcome> {
        let promise = eventLoop.makePromise(of: TakeOutcome.self)
        let spool = self.spool
        let held = self.held
        let count = batch.records.count
        promise.completeWithTask {
            switch try await spool.hold(batch.sealed, path: batch.path) {
            case .held:
                held()
                return .stored(newRecords: count)
            case .duplicate:
                return .duplicate
            case .full:
                return .refused(.overloaded, .retryable, message: "the relay's spool is full; keep the batch and send it again later")
            }
        }
        return promise.futureResult
    }

    /// A batch whose payload fails verification was never held (the relay holds only
    /// batches that passed), so there is nothing to answer `duplicate` for.
    func isCommitted(_ key: BatchKey) throws -> Bool { false }

    func mustDisconnect(_ node: UUID) -> Bool {
        self.registry.directory.mustDisconnect(node)
    }

    func refresh() throws {}

    func received(_ report: StatusReport, from node: Hello) {
        self.reports.received(report, from: node, directory: self.registry.directory)
    }

    func registrySnapshot() -> (revision: UInt64, frames: [RegistryUpdate])? {
        self.registry.snapshot
    }

    /// Every take waited for its fsync before it returned: nothing is left to make durable.
    func stopTaking() {}
}

import Foundation
import NIOCore
import Wire

/// What a ``NodeServer`` needs from the component that keeps the batches it takes: the
/// hub (its store) or a relay (its spool).
///
/// The server owns the protocol: TLS, the handshake, limits, credit, timeouts, signature
/// checks, decompression and site scope. The backend answers who may connect and sign, and
/// makes what it takes durable. Methods documented as blocking run on the server's blocking
/// pool; the others run on an event loop and must answer from memory.
public protocol IngestBackend: Sendable {
    /// Checks a HELLO: proof of key possession, a registered unrevoked key, or an enrollment
    /// token for an unknown node (which registers it). May block.
    ///
    /// - Returns: the WELCOME's resume points for this node, or the connection-level REJECT.
    func authenticate(_ hello: Hello, challenge: Challenge, now: Int64) -> Result<[Welcome.ResumePoint], Reject>

    /// The rights of `batch`'s origin (its key and sites), or the batch-level REJECT. From
    /// memory: called on the event loop for every batch.
    func rights(for batch: SealedBatch) -> Result<OriginRights, Reject>

    /// Takes a verified, decoded, in-scope batch. The future completes once the batch is
    /// durable (an ACK), is known as a duplicate, or is refused (a REJECT); a failed future
    /// is answered with a retryable `storeUnavailable` REJECT.
    func take(_ batch: AcceptedBatch, on eventLoop: any EventLoop) -> EventLoopFuture<TakeOutcome>

    /// Whether the batch is already committed (or held, at a relay). Asked only for a
    /// verified batch whose payload fails, which is answered `duplicate` when it is. May block.
    func isCommitted(_ key: BatchKey) throws -> Bool

    /// Whether a connected node must be disconnected now (revoked, or no longer registered).
    /// From memory: asked for every open connection after each ``refresh()``.
    func mustDisconnect(_ node: UUID) -> Bool

    /// Called every second while the server runs, so revocations and new registrations take
    /// effect (the hub reloads its registry here). May block.
    func refresh() throws

    /// A node's STATUS report arrived from the connected node `from` (the reporter itself,
    /// or a relay passing it on). The backend checks its signature under the reporter's key
    /// and keeps it (the hub) or passes it on (a relay). From the event loop: no blocking.
    func received(_ report: StatusReport, from node: Hello)

    /// A relay below carries a node's enrollment up (ENROLL, PROTOCOL.md §4.16): the hub
    /// checks the proof against the carried challenge and redeems the token; a relay carries
    /// it further up. Blocks (the blocking pool runs it); the answer goes back as ENROLLED.
    func enroll(_ request: EnrollRequest, from relay: Hello, now: Int64) -> EnrollAnswer

    /// The registry snapshot to send to relays connected with version 2, and its revision,
    /// or nil for none. From memory: asked after each WELCOME to a relay and after each
    /// ``refresh()``; a new revision is sent to every connected relay.
    func registrySnapshot() -> (revision: UInt64, frames: [RegistryUpdate])?

    /// The server has closed every connection while stopping: make durable whatever ``take(_:on:)``
    /// accepted before returning (the hub commits its queue). Called once; may block.
    func stopTaking()
}

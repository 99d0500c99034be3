#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The hub side of one connection, as a pure state machine: events in, actions out.
///
/// States: awaiting HELLO → verifying (the handler checks the registry and the proof) →
/// ready → (after ``shutdown(_:)``) draining → closed. Credit is enforced here: a BATCH
/// without credit closes the connection, and so does a BATCH whose (origin, sequence) is
/// already in flight on the connection. Verifying keys, ingesting batches and timers are
/// the handler's work; their outcomes come back as events.
public struct ServerStateMachine: Sendable {
    /// What the handler must do after an event.
    public enum Action: Sendable, Hashable {
        /// Nothing.
        case none
        /// Look the HELLO's key up, check the proof against ``challenge``, then call
        /// ``helloVerified(_:)`` or ``helloRefused(_:)``.
        case verifyHello(Hello)
        /// Verify, deduplicate and commit (or hold) the batch, then call ``batchCompleted(_:)``.
        /// `path` is the relays it passed (empty for a BATCH frame).
        case ingest(SealedBatch, path: [UUID], node: Hello)
        /// Check the report's signature under its node's key and keep (or pass on) it.
        case status(StatusReport, from: Hello)
        /// Redeem (a hub) or carry up (a relay) a node's enrollment; answer with ENROLLED.
        case enroll(EnrollRequest, from: Hello)
        /// Write these frames, in order; then close the connection when `close` is set.
        case write([Frame], close: Bool)
    }

    enum State: Sendable, Hashable {
        case awaitingHello
        case verifying(Hello)
        case ready(node: Hello, credit: UInt32, inFlight: Set<BatchKey>)
        case draining(node: Hello, inFlight: Set<BatchKey>)
        case closed
    }

    /// The challenge sent on this connection.
    public let challenge: Challenge
    /// Most relays a FORWARD's path may name: ``ForwardedBatch/maxHops`` at a hub, one less
    /// at a relay, which adds itself when it passes the batch on.
    public let maxIncomingHops: Int
    private var state: State = .awaitingHello

    /// Creates the state machine; the handler sends `.challenge(challenge)` when the
    /// connection becomes active (see ``start()``). `challenge.hubID` is this node's id: a
    /// FORWARD whose path holds it has gone round a ring.
    public init(challenge: Challenge, maxIncomingHops: Int = ForwardedBatch.maxHops) {
        self.challenge = challenge
        self.maxIncomingHops = maxIncomingHops
    }

    /// Whether the HELLO is being verified: a verification that completes in any other
    /// state (the connection failed or timed out meanwhile) is moot.
    public var isVerifying: Bool {
        if case .verifying = self.state { return true }
        return false
    }

    /// The authenticated node, from WELCOME until the connection closes.
    public var connectedNode: Hello? {
        switch self.state {
        case .ready(let node, _, _), .draining(let node, _): node
        case .awaitingHello, .verifying, .closed: nil
        }
    }

    /// Batches being ingested and not yet answered.
    public var inFlightCount: Int {
        switch self.state {
        case .ready(_, _, let inFlight), .draining(_, let inFlight): inFlight.count
        case .awaitingHello, .verifying, .closed: 0
        }
    }

    /// The connection is up: send the challenge.
    public func start() -> Action {
        .write([.challenge(self.challenge)], close: false)
    }

    /// A frame arrived from the node.
    public mutating func frameReceived(_ frame: Frame) -> Action {
        switch self.state {
        case .awaitingHello:
            guard case .hello(let hello) = frame else { return self.refuse(.unexpectedFrame, "expected HELLO, got \(frame.type)") }
            guard self.challenge.versions.contains(hello.version) else {
                return self.refuse(.unsupportedVersion, "version \(hello.version) is outside \(self.challenge.versions)")
            }
            guard hello.nodeID != Self.nilNodeID else {
                return self.refuse(.malformedFrame, "the nil UUID is reserved and cannot be a node id")
            }
            guard hello.nodeID != self.challenge.hubID else {
                // A relay whose hubs list names its own listener: it would take its own batches
                // back as held and settle them without any reaching the hub.
                return self.refuse(.loopDetected, "node \(hello.nodeID) connected to itself: its upstream list names its own listener")
            }
            self.state = .verifying(hello)
            return .verifyHello(hello)

        case .verifying:
            return self.refuse(.unexpectedFrame, "\(frame.type) sent before WELCOME")

        case .ready(let node, let credit, let inFlight):
            switch frame {
            case .batch(let batch):
                return self.received(batch, path: [], node: node, credit: credit, inFlight: inFlight)
            case .forward(let forwarded):
                guard node.version >= ProtocolVersion.v2 else {
                    return self.refuse(.unexpectedFrame, "FORWARD needs protocol version 2; this connection speaks \(node.version)")
                }
                return self.received(forwarded.batch, path: forwarded.path, node: node, credit: credit, inFlight: inFlight)
            case .status(let report):
                guard node.version >= ProtocolVersion.v2 else {
                    return self.refuse(.unexpectedFrame, "STATUS needs protocol version 2; this connection speaks \(node.version)")
                }
                return .status(report, from: node)
            case .enroll(let request):
                guard node.version >= ProtocolVersion.v2, node.role == .relay else {
                    return self.refuse(.unexpectedFrame, "ENROLL is sent only by relays, on protocol version 2")
                }
                return .enroll(request, from: node)
            case .ping(let value):
                return .write([.pong(value)], close: false)
            case .pong:
                return .none
            case .challenge, .hello, .welcome, .ack, .reject, .credit, .goAway, .registry, .enrolled:
                return self.refuse(.unexpectedFrame, "\(frame.type) is not sent by nodes after the handshake")
            }

        case .draining(_, let inFlight):
            switch frame {
            case .batch, .forward:
                guard let batch = frame.sealedBatch else { return .none }
                guard !inFlight.contains(batch.key) else {
                    return self.refuse(.unexpectedFrame, "batch \(batch.key) is already in flight on this connection")
                }
                let reject = Reject(
                    origin: batch.header.origin,
                    sequence: batch.header.sequence,
                    code: .shuttingDown,
                    disposition: .retryable,
                    message: "batch sent after GOAWAY"
                )
                return .write([.reject(reject)], close: false)
            case .ping(let value):
                return .write([.pong(value)], close: false)
            case .pong, .status, .enroll:
                return .none
            case .challenge, .hello, .welcome, .ack, .reject, .credit, .goAway, .registry, .enrolled:
                return self.refuse(.unexpectedFrame, "\(frame.type) is not sent by nodes after the handshake")
            }

        case .closed:
            return .none
        }
    }

    /// The registry accepted the HELLO and the proof verified.
    public mutating func helloVerified(_ welcome: Welcome) -> Action {
        guard case .verifying(let hello) = self.state else { return .none }
        self.state = .ready(node: hello, credit: welcome.initialCredit, inFlight: [])
        return .write([.welcome(welcome)], close: false)
    }

    /// The HELLO was refused (unknown or revoked key, bad proof, enrollment refused).
    public mutating func helloRefused(_ reject: Reject) -> Action {
        guard case .verifying = self.state else { return .none }
        self.state = .closed
        return .write([.reject(reject)], close: true)
    }

    /// What ingesting one batch came to.
    public enum Outcome: Sendable, Hashable {
        /// Committed: answer with this ACK.
        case ack(Ack)
        /// Refused: answer with this batch-level REJECT.
        case reject(Reject)

        var key: BatchKey {
            switch self {
            case .ack(let ack): ack.key
            case .reject(let reject): reject.key
            }
        }

        var frame: Frame {
            switch self {
            case .ack(let ack): .ack(ack)
            case .reject(let reject): .reject(reject)
            }
        }
    }

    /// A batch handed out by `.ingest` is finished. Each finished batch returns one credit
    /// unless the connection is draining. An outcome for a batch not in flight is dropped.
    public mutating func batchCompleted(_ outcome: Outcome) -> Action {
        switch self.state {
        case .ready(let node, let credit, var inFlight):
            guard inFlight.remove(outcome.key) != nil else { return .none }
            self.state = .ready(node: node, credit: credit == .max ? .max : credit + 1, inFlight: inFlight)
            return .write([outcome.frame, .credit(1)], close: false)
        case .draining(let node, var inFlight):
            guard inFlight.remove(outcome.key) != nil else { return .none }
            self.state = inFlight.isEmpty ? .closed : .draining(node: node, inFlight: inFlight)
            return .write([outcome.frame], close: inFlight.isEmpty)
        case .awaitingHello, .verifying, .closed:
            return .none
        }
    }

    /// The hub is stopping or shedding load: send GOAWAY, finish what is in flight, close.
    public mutating func shutdown(_ goAway: GoAway) -> Action {
        switch self.state {
        case .ready(let node, _, let inFlight) where !inFlight.isEmpty:
            self.state = .draining(node: node, inFlight: inFlight)
            return .write([.goAway(goAway)], close: false)
        case .ready, .awaitingHello, .verifying:
            self.state = .closed
            return .write([.goAway(goAway)], close: true)
        case .draining, .closed:
            return .none
        }
    }

    /// No HELLO arrived within the handshake timeout.
    public mutating func handshakeTimedOut() -> Action {
        switch self.state {
        case .awaitingHello, .verifying:
            return self.refuse(.handshakeTimeout, "no HELLO within the handshake timeout", .retryable)
        case .ready, .draining, .closed:
            return .none
        }
    }

    /// Nothing arrived within the idle timeout.
    public mutating func idleTimedOut() -> Action {
        switch self.state {
        case .closed:
            return .none
        case .awaitingHello, .verifying, .ready, .draining:
            return self.refuse(.idleTimeout, "nothing received within the idle timeout", .retryable)
        }
    }

    /// The decoder refused the node's bytes: REJECT with the matching code, then close.
    public mutating func decodingFailed(_ error: WireError) -> Action {
        if case .closed = self.state { return .none }
        return self.refuse(error.rejectCode, error.detail)
    }

    /// The connection closed. Batches still being ingested finish; their answers are dropped.
    public mutating func closed() {
        self.state = .closed
    }

    /// A BATCH, or the batch of a FORWARD, on a ready connection.
    private mutating func received(
        _ batch: SealedBatch, path: [UUID], node: Hello, credit: UInt32, inFlight: Set<BatchKey>
    ) -> Action {
        guard credit > 0 else { return self.refuse(.creditExceeded, "BATCH sent without credit") }
        guard node.role == .relay || batch.header.origin == node.nodeID else {
            // Refused without ingesting; the credit it used is given back.
            let reject = Reject(
                origin: batch.header.origin,
                sequence: batch.header.sequence,
                code: .originNotAllowed,
                disposition: .permanent,
                message: "an agent sends only its own batches; forwarding needs the relay role"
            )
            return .write([.reject(reject), .credit(1)], close: false)
        }
        guard !inFlight.contains(batch.key) else {
            return self.refuse(.unexpectedFrame, "batch \(batch.key) is already in flight on this connection")
        }
        // Another origin's batch from a relay in a plain BATCH (a version 1 relay) passed
        // that relay: the path checks see it as a path of one.
        let path = path.isEmpty && batch.header.origin != node.nodeID ? [node.nodeID] : path
        switch self.pathRefusal(path, batch: batch, node: node) {
        case .refuse(let action): return action
        case .reject(let reject): return .write([.reject(reject), .credit(1)], close: false)
        case nil: break
        }
        self.state = .ready(node: node, credit: credit - 1, inFlight: inFlight.union([batch.key]))
        return .ingest(batch, path: path, node: node)
    }

    private enum PathRefusal {
        /// The connection ends.
        case refuse(Action)
        /// The batch is refused alone; its credit is given back.
        case reject(Reject)
    }

    /// Why a batch's path is refused, if it is. A FORWARD's path must end with the relay
    /// that sent it (else the connection ends: `malformedFrame`). A batch whose origin is this
    /// node, or whose path already holds it, has gone round a ring (`loopDetected`); one this
    /// node could not pass on within the hop limit is `hopLimitExceeded`. Those two refuse the
    /// batch alone, retryable: the sender keeps it and logs the path, and its other batches
    /// still flow, so one bad path cannot stop a link.
    private mutating func pathRefusal(_ path: [UUID], batch: SealedBatch, node: Hello) -> PathRefusal? {
        guard !path.isEmpty || batch.header.origin != self.challenge.hubID else {
            return .reject(self.pathReject(batch, .loopDetected, "the batch came back to its origin \(self.challenge.hubID)"))
        }
        guard !path.isEmpty else { return nil }
        let route = path.map(\.uuidString).joined(separator: " → ")
        guard path.last == node.nodeID else {
            return .refuse(self.refuse(.malformedFrame, "the FORWARD path \(route) does not end with the relay that sent it (\(node.nodeID))"))
        }
        guard !path.contains(self.challenge.hubID), batch.header.origin != self.challenge.hubID else {
            return .reject(self.pathReject(batch, .loopDetected, "the batch already passed this node: path \(route) → \(self.challenge.hubID)"))
        }
        guard path.count <= self.maxIncomingHops else {
            return .reject(self.pathReject(
                batch, .hopLimitExceeded, "the batch passed \(path.count) relays (path \(route)); this node passes on at most \(self.maxIncomingHops)"
            ))
        }
        return nil
    }

    private func pathReject(_ batch: SealedBatch, _ code: RejectCode, _ message: String) -> Reject {
        Reject(origin: batch.header.origin, sequence: batch.header.sequence, code: code, disposition: .retryable, message: message)
    }

    static let nilNodeID = UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))

    private mutating func refuse(
        _ code: RejectCode,
        _ message: String,
        _ disposition: Reject.Disposition = .permanent
    ) -> Action {
        self.state = .closed
        return .write([.reject(.connection(code, disposition, message))], close: true)
    }
}

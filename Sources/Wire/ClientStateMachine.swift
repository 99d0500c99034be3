/// The node (agent or relay) side of one connection, as a pure state machine: events in,
/// actions out. The channel handler performs the actions; it holds no protocol state.
///
/// States: awaiting CHALLENGE → awaiting WELCOME → ready → (after GOAWAY) draining → closed.
/// Anything the hub sends out of turn closes the connection with a ``WireError``.
public struct ClientStateMachine: Sendable {
    /// What the handler must do after an event.
    public enum Action: Sendable, Hashable {
        /// Nothing.
        case none
        /// Build a HELLO for `version`, signed over `challenge`, and send it.
        case sendHello(version: UInt16, challenge: Challenge)
        /// The handshake is done; start sending (``canSend``).
        case established(Welcome)
        /// A batch is committed: drop it from the spool. May also mean more credit.
        case acknowledged(Ack)
        /// A batch was refused: retry it later (retryable) or dead-letter it (permanent).
        case batchRejected(Reject)
        /// More credit arrived; send waiting batches.
        case creditGranted
        /// Send PONG with this value.
        case sendPong(UInt64)
        /// The hub will close: stop sending. When `closeNow`, nothing is in flight: close.
        case goAway(GoAway, closeNow: Bool)
        /// An ACK or REJECT arrived while draining and nothing is in flight any more: close.
        case closeAfterDrain(Frame)
        /// The hub refused the connection (handshake failure, timeout, violation): close.
        case connectionRejected(Reject)
        /// The hub broke the protocol: close, logging the error.
        case protocolError(WireError)
        /// Part of the upstream's registry snapshot arrived (version 2, relays only).
        case registryReceived(RegistryUpdate)
        /// The upstream answered an ENROLL this relay carried (version 2).
        case enrollAnswered(EnrollAnswer)
    }

    /// Whether a batch may be sent now.
    public enum SendDecision: Sendable, Hashable {
        /// Send it; it is now in flight.
        case send
        /// Wait for CREDIT.
        case noCredit
        /// The connection is not (or no longer) ready for batches.
        case notReady
    }

    enum State: Sendable, Hashable {
        case awaitingChallenge
        case awaitingWelcome(version: UInt16)
        case ready(credit: UInt32, inFlight: Set<BatchKey>)
        case draining(inFlight: Set<BatchKey>)
        case closed
    }

    private var state: State = .awaitingChallenge
    private let versions: ClosedRange<UInt16>
    /// The version agreed in the handshake (0 before WELCOME).
    public private(set) var agreedVersion: UInt16 = 0

    /// Creates the state machine for a node speaking `versions`.
    public init(versions: ClosedRange<UInt16> = ProtocolVersion.supported) {
        self.versions = versions
    }

    /// Batches sent and not yet answered.
    public var inFlightCount: Int {
        switch self.state {
        case .ready(_, let inFlight), .draining(let inFlight): inFlight.count
        case .awaitingChallenge, .awaitingWelcome, .closed: 0
        }
    }

    /// Whether the handshake finished and no GOAWAY or close came since.
    public var isReady: Bool {
        if case .ready = self.state { return true }
        return false
    }

    /// Asks to send the batch `key`; on `.send` it counts as in flight.
    public mutating func sendBatch(_ key: BatchKey) -> SendDecision {
        switch self.state {
        case .ready(let credit, var inFlight):
            guard credit > 0 else { return .noCredit }
            inFlight.insert(key)
            self.state = .ready(credit: credit - 1, inFlight: inFlight)
            return .send
        case .awaitingChallenge, .awaitingWelcome, .draining, .closed:
            return .notReady
        }
    }

    /// The connection closed, for whatever reason. Batches in flight must be sent again.
    public mutating func closed() {
        self.state = .closed
    }

    /// A frame arrived from the hub.
    public mutating func frameReceived(_ frame: Frame) -> Action {
        if case .reject(let reject) = frame, reject.isConnectionLevel {
            self.state = .closed
            return .connectionRejected(reject)
        }
        switch self.state {
        case .awaitingChallenge:
            guard case .challenge(let challenge) = frame else { return self.violation(frame, "before CHALLENGE") }
            guard let version = ProtocolVersion.negotiate(ours: self.versions, theirs: challenge.versions) else {
                self.state = .closed
                return .protocolError(
                    WireError(
                        .unsupportedVersion,
                        field: "challenge.versions",
                        "hub speaks \(challenge.versions), this node \(self.versions)"
                    )
                )
            }
            self.state = .awaitingWelcome(version: version)
            return .sendHello(version: version, challenge: challenge)

        case .awaitingWelcome(let version):
            guard case .welcome(let welcome) = frame else { return self.violation(frame, "before WELCOME") }
            guard welcome.version == version else {
                self.state = .closed
                return .protocolError(
                    WireError(
                        .unsupportedVersion,
                        field: "welcome.version",
                        "hub welcomed version \(welcome.version) after HELLO chose \(version)"
                    )
                )
            }
            self.state = .ready(credit: welcome.initialCredit, inFlight: [])
            self.agreedVersion = version
            return .established(welcome)

        case .ready(let credit, var inFlight):
            switch frame {
            case .ack(let ack):
                guard inFlight.remove(ack.key) != nil else { return self.violation(frame, "for a batch not in flight") }
                self.state = .ready(credit: credit, inFlight: inFlight)
                return .acknowledged(ack)
            case .reject(let reject):
                guard inFlight.remove(reject.key) != nil else { return self.violation(frame, "for a batch not in flight") }
                self.state = .ready(credit: credit, inFlight: inFlight)
                return .batchRejected(reject)
            case .credit(let more):
                let (sum, overflow) = credit.addingReportingOverflow(more)
                self.state = .ready(credit: overflow ? .max : sum, inFlight: inFlight)
                return .creditGranted
            case .ping(let value):
                return .sendPong(value)
            case .pong:
                return .none
            case .goAway(let goAway):
                self.state = inFlight.isEmpty ? .closed : .draining(inFlight: inFlight)
                return .goAway(goAway, closeNow: inFlight.isEmpty)
            case .registry(let update):
                return self.registry(update, frame)
            case .enrolled(let answer):
                guard self.agreedVersion >= ProtocolVersion.v2 else { return self.violation(frame, "on a version \(self.agreedVersion) connection") }
                return .enrollAnswered(answer)
            case .challenge, .hello, .welcome, .batch, .forward, .status, .enroll:
                return self.violation(frame, "after the handshake")
            }

        case .draining(var inFlight):
            switch frame {
            case .ack(let ack):
                guard inFlight.remove(ack.key) != nil else { return self.violation(frame, "for a batch not in flight") }
                return self.drained(inFlight, frame)
            case .reject(let reject):
                guard inFlight.remove(reject.key) != nil else { return self.violation(frame, "for a batch not in flight") }
                return self.drained(inFlight, frame)
            case .ping(let value):
                return .sendPong(value)
            case .pong, .credit, .goAway:
                return .none
            case .registry(let update):
                return self.registry(update, frame)
            case .enrolled(let answer):
                guard self.agreedVersion >= ProtocolVersion.v2 else { return self.violation(frame, "on a version \(self.agreedVersion) connection") }
                return .enrollAnswered(answer)
            case .challenge, .hello, .welcome, .batch, .forward, .status, .enroll:
                return self.violation(frame, "after the handshake")
            }

        case .closed:
            return .none
        }
    }

    private mutating func drained(_ inFlight: Set<BatchKey>, _ frame: Frame) -> Action {
        guard inFlight.isEmpty else {
            self.state = .draining(inFlight: inFlight)
            switch frame {
            case .ack(let ack): return .acknowledged(ack)
            case .reject(let reject): return .batchRejected(reject)
            case .challenge, .hello, .welcome, .batch, .credit, .ping, .pong, .goAway, .forward, .registry, .status, .enroll, .enrolled:
                return .none
            }
        }
        self.state = .closed
        return .closeAfterDrain(frame)
    }

    /// REGISTRY exists from version 2 on; the handler checks that this node is a relay.
    private mutating func registry(_ update: RegistryUpdate, _ frame: Frame) -> Action {
        guard self.agreedVersion >= ProtocolVersion.v2 else { return self.violation(frame, "on a version \(self.agreedVersion) connection") }
        return .registryReceived(update)
    }

    private mutating func violation(_ frame: Frame, _ when: String) -> Action {
        self.state = .closed
        return .protocolError(
            WireError(.protocolViolation, field: "frame.type", "hub sent \(frame.type) \(when)")
        )
    }
}

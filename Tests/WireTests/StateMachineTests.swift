import Foundation
import NIOCore
import TestSupport
import Testing
import Wire

private let welcome = Welcome(
    maxFrameLength: 1 << 20,
    maxBatchRecords: 1000,
    maxUncompressedBytes: 1 << 22,
    initialCredit: 2,
    idleTimeoutMilliseconds: 30_000,
    resume: []
)

private func key(_ sequence: UInt64) -> BatchKey { BatchKey(origin: Samples.agentID, sequence: sequence) }

private func storedAck(_ sequence: UInt64) -> Ack {
    Ack(origin: Samples.agentID, sequence: sequence, status: .stored, storedRecords: 1)
}

private func ack(_ sequence: UInt64) -> Frame {
    .ack(storedAck(sequence))
}

private func acked(_ sequence: UInt64) -> ServerStateMachine.Outcome {
    .ack(storedAck(sequence))
}

private func batch(_ sequence: UInt64, origin: UUID = Samples.agentID) throws -> SealedBatch {
    try BatchSealer(origin: origin, signingKey: Samples.agentKey).seal([Samples.kioskRecord(origin: origin)], sequence: sequence)
}

private func hello(role: Hello.Role = .agent, version: UInt16 = 1) throws -> Hello {
    try Hello(answering: Samples.challenge, version: version, nodeID: Samples.agentID, role: role, signingKey: Samples.agentKey)
}

@Suite struct ClientStateMachineTests {
    private func established() -> ClientStateMachine {
        var machine = ClientStateMachine()
        _ = machine.frameReceived(.challenge(Samples.challenge))
        _ = machine.frameReceived(.welcome(welcome))
        return machine
    }

    @Test func handshakeThenCreditLimitsWhatIsInFlight() {
        var machine = ClientStateMachine()
        #expect(machine.sendBatch(key(1)) == .notReady)
        #expect(machine.frameReceived(.challenge(Samples.challenge)) == .sendHello(version: 1, challenge: Samples.challenge))
        #expect(machine.sendBatch(key(1)) == .notReady)
        #expect(machine.frameReceived(.welcome(welcome)) == .established(welcome))
        #expect(machine.sendBatch(key(1)) == .send)
        #expect(machine.sendBatch(key(2)) == .send)
        #expect(machine.sendBatch(key(3)) == .noCredit)
        #expect(machine.inFlightCount == 2)
        #expect(machine.frameReceived(ack(1)) == .acknowledged(storedAck(1)))
        #expect(machine.sendBatch(key(3)) == .noCredit)
        #expect(machine.frameReceived(.credit(1)) == .creditGranted)
        #expect(machine.sendBatch(key(3)) == .send)
        #expect(machine.inFlightCount == 2)
    }

    @Test func noCommonVersionEndsTheConnection() {
        var machine = ClientStateMachine()
        let future = Challenge(versions: 3...4, hubID: Samples.hubID, nonce: Samples.challenge.nonce)
        guard case .protocolError(let error) = machine.frameReceived(.challenge(future)) else {
            Issue.record("expected a protocol error")
            return
        }
        #expect(error.code == .unsupportedVersion)
    }

    @Test func aWelcomeForAnotherVersionIsRefused() {
        var machine = ClientStateMachine(versions: 1...2)
        let wide = Challenge(versions: 1...2, hubID: Samples.hubID, nonce: Samples.challenge.nonce)
        #expect(machine.frameReceived(.challenge(wide)) == .sendHello(version: 2, challenge: wide))
        var v1 = welcome
        v1.version = 1
        guard case .protocolError(let error) = machine.frameReceived(.welcome(v1)) else {
            Issue.record("expected a protocol error")
            return
        }
        #expect(error.field == "welcome.version")
    }

    @Test func outOfTurnFramesAreProtocolErrors() throws {
        var early = ClientStateMachine()
        guard case .protocolError = early.frameReceived(.welcome(welcome)) else { Issue.record("welcome first"); return }

        var stray = self.established()
        guard case .protocolError = stray.frameReceived(ack(9)) else { Issue.record("ack not in flight"); return }

        var batchFromHub = self.established()
        guard case .protocolError = batchFromHub.frameReceived(.batch(try batch(1))) else {
            Issue.record("hub sent a batch")
            return
        }
        #expect(batchFromHub.sendBatch(key(1)) == .notReady)
    }

    @Test func batchRejectsAndPingsAreReported() {
        var machine = self.established()
        _ = machine.sendBatch(key(1))
        let reject = Reject(origin: Samples.agentID, sequence: 1, code: .invalidRecord, disposition: .permanent, message: "bad")
        #expect(machine.frameReceived(.reject(reject)) == .batchRejected(reject))
        #expect(machine.frameReceived(.ping(7)) == .sendPong(7))
        let refused = Reject.connection(.revokedKey, .permanent, "revoked")
        #expect(machine.frameReceived(.reject(refused)) == .connectionRejected(refused))
        #expect(machine.sendBatch(key(2)) == .notReady)
    }

    @Test func goAwayStopsSendingAndClosesOnceDrained() {
        var machine = self.established()
        _ = machine.sendBatch(key(1))
        _ = machine.sendBatch(key(2))
        let goAway = GoAway(code: .shuttingDown, reconnectAfterMilliseconds: 100, message: "bye")
        #expect(machine.frameReceived(.goAway(goAway)) == .goAway(goAway, closeNow: false))
        #expect(machine.sendBatch(key(3)) == .notReady)
        #expect(machine.frameReceived(ack(1)) == .acknowledged(storedAck(1)))
        #expect(machine.frameReceived(ack(2)) == .closeAfterDrain(ack(2)))

        var idle = self.established()
        #expect(idle.frameReceived(.goAway(goAway)) == .goAway(goAway, closeNow: true))
    }
}

@Suite struct ServerStateMachineTests {
    private func ready(role: Hello.Role = .agent) throws -> ServerStateMachine {
        var machine = ServerStateMachine(challenge: Samples.challenge)
        _ = machine.frameReceived(.hello(try hello(role: role)))
        _ = machine.helloVerified(welcome)
        return machine
    }

    private func isConnectionReject(_ action: ServerStateMachine.Action, _ code: RejectCode) -> Bool {
        guard case .write(let frames, close: true) = action, case .reject(let reject)? = frames.first else { return false }
        return reject.code == code && reject.isConnectionLevel
    }

    @Test func handshakeVerifiesThenWelcomes() throws {
        var machine = ServerStateMachine(challenge: Samples.challenge)
        #expect(machine.start() == .write([.challenge(Samples.challenge)], close: false))
        let hello = try hello()
        #expect(machine.frameReceived(.hello(hello)) == .verifyHello(hello))
        #expect(machine.helloVerified(welcome) == .write([.welcome(welcome)], close: false))
    }

    @Test func refusedHellosAndTimeoutsClose() throws {
        var refused = ServerStateMachine(challenge: Samples.challenge)
        _ = refused.frameReceived(.hello(try hello()))
        let reject = Reject.connection(.unknownKey, .permanent, "who?")
        #expect(refused.helloRefused(reject) == .write([.reject(reject)], close: true))

        var wrongVersion = ServerStateMachine(challenge: Samples.challenge)
        #expect(self.isConnectionReject(wrongVersion.frameReceived(.hello(try hello(version: 2))), .unsupportedVersion))

        var impatient = ServerStateMachine(challenge: Samples.challenge)
        _ = impatient.frameReceived(.hello(try hello()))
        #expect(self.isConnectionReject(impatient.frameReceived(.ping(1)), .unexpectedFrame))

        var silent = ServerStateMachine(challenge: Samples.challenge)
        #expect(self.isConnectionReject(silent.handshakeTimedOut(), .handshakeTimeout))

        var idle = try self.ready()
        #expect(self.isConnectionReject(idle.idleTimedOut(), .idleTimeout))

        var garbled = try self.ready()
        let error = WireError(.lengthOutOfRange, field: "batch.length", "too long")
        #expect(self.isConnectionReject(garbled.decodingFailed(error), .malformedFrame))
    }

    @Test func batchesConsumeCreditAndCompletionReturnsIt() throws {
        var machine = try self.ready()
        let one = try batch(1)
        let two = try batch(2)
        #expect(machine.frameReceived(.batch(one)) == .ingest(one, path: [], node: try hello()))
        #expect(machine.frameReceived(.batch(two)) == .ingest(two, path: [], node: try hello()))
        #expect(machine.inFlightCount == 2)
        #expect(machine.batchCompleted(acked(1)) == .write([ack(1), .credit(1)], close: false))
        // An answer for a batch that is not in flight (answered already) is dropped.
        #expect(machine.batchCompleted(acked(1)) == .none)
        #expect(machine.frameReceived(.batch(try batch(3))) == .ingest(try batch(3), path: [], node: try hello()))
        #expect(self.isConnectionReject(machine.frameReceived(.batch(try batch(4))), .creditExceeded))
    }

    @Test func theSameBatchTwiceInFlightEndsTheConnection() throws {
        var machine = try self.ready()
        let one = try batch(1)
        #expect(machine.frameReceived(.batch(one)) == .ingest(one, path: [], node: try hello()))
        #expect(self.isConnectionReject(machine.frameReceived(.batch(one)), .unexpectedFrame))

        // Once answered, the same batch may come again (and is answered `duplicate` by the hub).
        var again = try self.ready()
        _ = again.frameReceived(.batch(one))
        _ = again.batchCompleted(acked(1))
        #expect(again.frameReceived(.batch(one)) == .ingest(one, path: [], node: try hello()))
    }

    @Test func theNilUUIDIsNotANodeID() throws {
        var machine = ServerStateMachine(challenge: Samples.challenge)
        let nilID = UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
        let hello = try Hello(answering: Samples.challenge, version: 1, nodeID: nilID, role: .agent, signingKey: Samples.agentKey)
        #expect(self.isConnectionReject(machine.frameReceived(.hello(hello)), .malformedFrame))
    }

    @Test func agentsSendOnlyTheirOwnBatchesRelaysForwardAny() throws {
        let foreign = try batch(1, origin: Samples.relayID)
        var agent = try self.ready()
        guard case .write(let frames, close: false) = agent.frameReceived(.batch(foreign)),
            case .reject(let reject)? = frames.first
        else {
            Issue.record("expected a batch reject")
            return
        }
        #expect(reject.code == .originNotAllowed)
        #expect(frames.last == .credit(1))

        var relay = try self.ready(role: .relay)
        // A relay's plain BATCH of another origin passed that relay: a path of one.
        #expect(relay.frameReceived(.batch(foreign)) == .ingest(foreign, path: [Samples.agentID], node: try hello(role: .relay)))
    }

    @Test func shutdownDrainsInFlightBatchesThenCloses() throws {
        var machine = try self.ready()
        _ = machine.frameReceived(.batch(try batch(1)))
        _ = machine.frameReceived(.batch(try batch(2)))
        let goAway = GoAway(code: .shuttingDown, reconnectAfterMilliseconds: 1000, message: "stopping")
        #expect(machine.shutdown(goAway) == .write([.goAway(goAway)], close: false))
        guard case .write(let late, close: false) = machine.frameReceived(.batch(try batch(3))),
            case .reject(let reject)? = late.first
        else {
            Issue.record("expected a retryable reject")
            return
        }
        #expect(reject.code == .shuttingDown && reject.disposition == .retryable)
        // A batch still in flight sent again while draining is a violation, as before GOAWAY.
        var repeating = machine
        #expect(self.isConnectionReject(repeating.frameReceived(.batch(try batch(1))), .unexpectedFrame))
        #expect(machine.batchCompleted(acked(1)) == .write([ack(1)], close: false))
        #expect(machine.batchCompleted(acked(2)) == .write([ack(2)], close: true))

        var idle = try self.ready()
        #expect(idle.shutdown(goAway) == .write([.goAway(goAway)], close: true))
    }
}

/// Version 2's mesh frames: FORWARD's path checks, and REGISTRY and STATUS only where version 2
/// was agreed.
@Suite struct MeshStateMachineTests {
    static let challenge = Challenge(versions: 1...2, hubID: Samples.hubID, nonce: Samples.challenge.nonce)
    static let downstream = UUID(uuidString: "0193a1b2-0000-7000-8000-0000000000d1")!

    private func ready(role: Hello.Role = .relay, version: UInt16 = 2, maxIncomingHops: Int = ForwardedBatch.maxHops) throws -> (ServerStateMachine, Hello) {
        var machine = ServerStateMachine(challenge: Self.challenge, maxIncomingHops: maxIncomingHops)
        let hello = try Hello(answering: Self.challenge, version: version, nodeID: Samples.agentID, role: role, signingKey: Samples.agentKey)
        _ = machine.frameReceived(.hello(hello))
        var agreed = welcome
        agreed.version = version
        _ = machine.helloVerified(agreed)
        return (machine, hello)
    }

    private func refusal(_ action: ServerStateMachine.Action) -> Reject? {
        guard case .write(let frames, close: true) = action, case .reject(let reject)? = frames.first, reject.isConnectionLevel else { return nil }
        return reject
    }

    @Test func aForwardedBatchIsIngestedWithItsPath() throws {
        var (machine, hello) = try self.ready()
        let foreign = try batch(1, origin: Self.downstream)
        let path = [Self.downstream, Samples.agentID]
        #expect(machine.frameReceived(.forward(ForwardedBatch(path: path, batch: foreign))) == .ingest(foreign, path: path, node: hello))
        #expect(machine.inFlightCount == 1)
    }

    /// A batch-level, retryable refusal that gives the credit back: the sender keeps the
    /// batch and its other batches still flow.
    private func batchRefusal(_ action: ServerStateMachine.Action) -> Reject? {
        guard case .write(let frames, close: false) = action, case .reject(let reject)? = frames.first, !reject.isConnectionLevel,
            frames.last == .credit(1), reject.disposition == .retryable
        else { return nil }
        return reject
    }

    @Test func aPathHoldingTheReceiverIsALoopAndNamesThePath() throws {
        var (machine, _) = try self.ready()
        let ring = [Samples.hubID, Samples.agentID]
        let reject = try #require(self.batchRefusal(machine.frameReceived(.forward(ForwardedBatch(path: ring, batch: try batch(1))))))
        #expect(reject.code == .loopDetected)
        #expect(reject.message.contains(Samples.hubID.uuidString) && reject.message.contains(Samples.agentID.uuidString))
        // The connection goes on: the next batch is taken.
        let next = try batch(2)
        #expect(machine.frameReceived(.forward(ForwardedBatch(path: [Samples.agentID], batch: next))) != .none)
        #expect(machine.inFlightCount == 1)
    }

    @Test func aBatchComingBackToItsOriginIsALoop() throws {
        // The receiver's own batch, passed back by a relay in a FORWARD or a plain BATCH.
        var (machine, _) = try self.ready()
        let own = try batch(1, origin: Samples.hubID)
        #expect(self.batchRefusal(machine.frameReceived(.forward(ForwardedBatch(path: [Samples.agentID], batch: own))))?.code == .loopDetected)
        #expect(self.batchRefusal(machine.frameReceived(.batch(own)))?.code == .loopDetected)
    }

    @Test func aRelaysPlainBatchOfAnotherOriginCountsAsOneHop() throws {
        var (relay, hello) = try self.ready(maxIncomingHops: 1)
        let foreign = try batch(1, origin: Self.downstream)
        #expect(relay.frameReceived(.batch(foreign)) == .ingest(foreign, path: [Samples.agentID], node: hello))
        var (tight, _) = try self.ready(maxIncomingHops: 0)
        #expect(self.batchRefusal(tight.frameReceived(.batch(foreign)))?.code == .hopLimitExceeded)
    }

    @Test func aNodeConnectingToItselfIsRefused() throws {
        var machine = ServerStateMachine(challenge: Self.challenge)
        let key = Samples.agentKey
        let itself = try Hello(answering: Self.challenge, version: 2, nodeID: Samples.hubID, role: .relay, signingKey: key)
        #expect(self.refusal(machine.frameReceived(.hello(itself)))?.code == .loopDetected)
    }

    @Test func aPathAsLongAsTheReceiverMayTakeIsRefused() throws {
        var (relay, _) = try self.ready(maxIncomingHops: ForwardedBatch.maxHops - 1)
        let long = (0..<(ForwardedBatch.maxHops - 1)).map { _ in UUID() } + [Samples.agentID]
        let reject = try #require(self.batchRefusal(relay.frameReceived(.forward(ForwardedBatch(path: long, batch: try batch(1))))))
        #expect(reject.code == .hopLimitExceeded)
        // A hub takes the same path: it passes the batch on to no one.
        var (hub, hello) = try self.ready()
        let foreign = try batch(1)
        #expect(hub.frameReceived(.forward(ForwardedBatch(path: long, batch: foreign))) == .ingest(foreign, path: long, node: hello))
    }

    @Test func aPathNotEndingWithTheSenderIsMalformed() throws {
        var (machine, _) = try self.ready()
        let reject = try #require(self.refusal(machine.frameReceived(.forward(ForwardedBatch(path: [Self.downstream], batch: try batch(1))))))
        #expect(reject.code == .malformedFrame)
    }

    @Test func anAgentsForwardIsRefusedLikeAForeignBatch() throws {
        var (machine, _) = try self.ready(role: .agent)
        let action = machine.frameReceived(.forward(ForwardedBatch(path: [Samples.agentID], batch: try batch(1, origin: Self.downstream))))
        guard case .write(let frames, close: false) = action, case .reject(let reject)? = frames.first else {
            Issue.record("expected a batch-level reject, got \(action)")
            return
        }
        #expect(reject.code == .originNotAllowed && frames.last == .credit(1))
    }

    @Test func meshFramesNeedVersionTwo() throws {
        var (v1, _) = try self.ready(version: 1)
        #expect(self.refusal(v1.frameReceived(.forward(ForwardedBatch(path: [Samples.agentID], batch: try batch(1)))))?.code == .unexpectedFrame)
        let report = try StatusReport(
            nodeID: Samples.agentID, signingKey: Samples.agentKey, sentAt: Samples.baseTime,
            status: NodeStatus(version: "1", role: "agent", sites: ["*"], backlogRecords: 0, backlogBatches: 0, oldestPendingAt: nil,
                               sources: [], upstream: nil, downstream: nil)
        )
        var (v1Status, _) = try self.ready(version: 1)
        #expect(self.refusal(v1Status.frameReceived(.status(report)))?.code == .unexpectedFrame)
        var (v2, hello) = try self.ready(version: 2)
        #expect(v2.frameReceived(.status(report)) == .status(report, from: hello))

        // A node receives REGISTRY only on a version 2 connection.
        let update = RegistryUpdate(revision: 1, first: true, last: true, entries: [])
        var client = ClientStateMachine(versions: 1...1)
        _ = client.frameReceived(.challenge(Samples.challenge))
        _ = client.frameReceived(.welcome(welcome))
        guard case .protocolError = client.frameReceived(.registry(update)) else {
            Issue.record("REGISTRY on a version 1 connection must be a protocol error")
            return
        }
        var meshClient = ClientStateMachine()
        _ = meshClient.frameReceived(.challenge(Self.challenge))
        var agreed = welcome
        agreed.version = 2
        _ = meshClient.frameReceived(.welcome(agreed))
        #expect(meshClient.frameReceived(.registry(update)) == .registryReceived(update))
    }

    @Test func onlyRelaysCarryEnrollments() throws {
        let node = try Hello(answering: Self.challenge, version: 2, nodeID: Self.downstream, role: .agent, signingKey: Samples.otherKey,
                             enrollmentToken: "fmt_x")
        let request = EnrollRequest(challenge: Self.challenge, hello: node)
        var (relay, hello) = try self.ready(role: .relay)
        #expect(relay.frameReceived(.enroll(request)) == .enroll(request, from: hello))
        var (agent, _) = try self.ready(role: .agent)
        #expect(self.refusal(agent.frameReceived(.enroll(request)))?.code == .unexpectedFrame)
        var (v1, _) = try self.ready(role: .relay, version: 1)
        #expect(self.refusal(v1.frameReceived(.enroll(request)))?.code == .unexpectedFrame)
        // The answer reaches a version 2 node only.
        let answer = EnrollAnswer(nodeID: Self.downstream, outcome: .refused(.connection(.enrollmentRefused, .permanent, "used")))
        var client = ClientStateMachine()
        _ = client.frameReceived(.challenge(Self.challenge))
        var agreed = welcome
        agreed.version = 2
        _ = client.frameReceived(.welcome(agreed))
        #expect(client.frameReceived(.enrolled(answer)) == .enrollAnswered(answer))
    }

    @Test func aStatusReportVerifiesOnlyUnderItsNodesKey() throws {
        let status = NodeStatus(version: "1", role: "relay", sites: ["branch-1"], backlogRecords: 5, backlogBatches: 1,
                                oldestPendingAt: 7, sources: [], upstream: "hub:7443", downstream: 3)
        let report = try StatusReport(nodeID: Samples.agentID, signingKey: Samples.agentKey, sentAt: 1, status: status)
        #expect(try report.verified(by: Samples.agentKey.publicKey) == status)
        #expect(throws: WireError.self) { try report.verified(by: Samples.otherKey.publicKey) }
        var tampered = ByteBuffer()
        Frame.status(report).write(into: &tampered)
        tampered.setInteger(UInt8(ascii: "9"), at: tampered.writerIndex - 64 - 10)
        guard case .status(let read)? = try Frame.read(from: &tampered, limits: FrameLimits()) else {
            Issue.record("expected a STATUS frame")
            return
        }
        #expect(throws: WireError.self) { try read.verified(by: Samples.agentKey.publicKey) }
    }
}

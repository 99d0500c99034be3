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
        let future = Challenge(versions: 2...3, hubID: Samples.hubID, nonce: Samples.challenge.nonce)
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
        #expect(machine.frameReceived(.batch(one)) == .ingest(one, node: try hello()))
        #expect(machine.frameReceived(.batch(two)) == .ingest(two, node: try hello()))
        #expect(machine.inFlightCount == 2)
        #expect(machine.batchCompleted(acked(1)) == .write([ack(1), .credit(1)], close: false))
        // An answer for a batch that is not in flight (answered already) is dropped.
        #expect(machine.batchCompleted(acked(1)) == .none)
        #expect(machine.frameReceived(.batch(try batch(3))) == .ingest(try batch(3), node: try hello()))
        #expect(self.isConnectionReject(machine.frameReceived(.batch(try batch(4))), .creditExceeded))
    }

    @Test func theSameBatchTwiceInFlightEndsTheConnection() throws {
        var machine = try self.ready()
        let one = try batch(1)
        #expect(machine.frameReceived(.batch(one)) == .ingest(one, node: try hello()))
        #expect(self.isConnectionReject(machine.frameReceived(.batch(one)), .unexpectedFrame))

        // Once answered, the same batch may come again (and is answered `duplicate` by the hub).
        var again = try self.ready()
        _ = again.frameReceived(.batch(one))
        _ = again.batchCompleted(acked(1))
        #expect(again.frameReceived(.batch(one)) == .ingest(one, node: try hello()))
    }

    @Test func theNilUUIDIsNotANodeID() throws {
        var machine = ServerStateMachine(challenge: Samples.challenge)
        let nilID = UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
        let hello = try Hello(answering: Samples.challenge, version: 1, nodeID: nilID, role: .agent, signingKey: Samples.agentKey)
        #expect(self.isConnectionReject(machine.frameReceived(.hello(hello)), .malformedFrame))
    }

    @Test func agentsSendOnlyTheirOwnBatchesRelaysForwardAny() throws {
        let foreign = try batch(1, origin: Samples.hubID)
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
        #expect(relay.frameReceived(.batch(foreign)) == .ingest(foreign, node: try hello(role: .relay)))
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

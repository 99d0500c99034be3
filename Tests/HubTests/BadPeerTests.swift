import Agent
import Foundation
import Hub
import NIOCore
import TestSupport
import Testing
import Wire

@Suite(.serialized) struct BadPeerTests {
    /// Writes `bytes` after the CHALLENGE and returns what the hub sent before closing.
    private func exchange(_ hub: HubHarness, _ bytes: [UInt8]) async throws -> [Frame] {
        let (channel, collector) = try await hub.rawConnection()
        #expect(await eventually { !collector.frames.withLockedValue { $0.isEmpty } })
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes))
        let closed = await eventually { !channel.isActive }
        #expect(closed, "the hub must close the connection")
        return collector.frames.withLockedValue { $0 }
    }

    private func connectionReject(_ frames: [Frame]) -> Reject? {
        for frame in frames {
            if case .reject(let reject) = frame, reject.isConnectionLevel { return reject }
        }
        return nil
    }

    @Test func beforeWelcomeOnlyAHelloIsReadAndFramesOutOfTurnCloseWithTheirCode() async throws {
        let hub = try await HubHarness.start()
        // A BATCH header declaring 1 GiB before HELLO: refused from the 5-byte header as out
        // of turn; an unauthenticated peer cannot make the hub buffer a batch.
        var frames = try await self.exchange(hub, [0x04, 0x40, 0x00, 0x00, 0x00])
        #expect(frames.first.map { if case .challenge = $0 { true } else { false } } == true, "CHALLENGE comes first")
        #expect(self.connectionReject(frames)?.code == .unexpectedFrame)

        // An undefined frame type is malformed, whatever the state.
        frames = try await self.exchange(hub, [0x7E, 0, 0, 0, 0])
        #expect(self.connectionReject(frames)?.code == .malformedFrame)

        // A whole BATCH before the handshake.
        let identity = AgentIdentity.generate()
        var factory = RecordFactory(origin: identity.nodeID)
        let batch = try BatchSealer(origin: identity.nodeID, signingKey: identity.signingKey).seal(factory.records(1), sequence: 1)
        frames = try await self.exchange(hub, Array(Samples.bytes(of: .batch(batch)).readableBytesView))
        #expect(self.connectionReject(frames)?.code == .unexpectedFrame)

        // A HELLO whose proof signs another challenge.
        let hello = try Hello(answering: Samples.challenge, version: 1, nodeID: identity.nodeID, role: .agent, signingKey: identity.signingKey)
        frames = try await self.exchange(hub, Array(Samples.bytes(of: .hello(hello)).readableBytesView))
        #expect(self.connectionReject(frames)?.code == .badProof)

        // After WELCOME the frame limits of the WELCOME apply: 1 GiB is too large.
        try hub.register(identity)
        let (session, collector) = try await hub.authenticatedRawConnection(identity)
        try await session.writeAndFlush(ByteBuffer(bytes: [0x04, 0x40, 0x00, 0x00, 0x00]))
        #expect(await eventually { !session.isActive })
        #expect(self.connectionReject(collector.frames.withLockedValue { $0 })?.code == .frameTooLarge)
        #expect(try hub.recordCount == 0)
        try await hub.stopAndRemove()
    }

    @Test func framesBetweenHelloAndWelcomeAreOutOfTurn() async throws {
        let hub = try await HubHarness.start()
        let identity = AgentIdentity.generate()
        try hub.register(identity)
        let (channel, collector) = try await hub.rawConnection()
        let hello = try Hello(answering: try await hub.challenge(on: collector), version: 1, nodeID: identity.nodeID, role: .agent, signingKey: identity.signingKey)
        var bytes = Samples.bytes(of: .hello(hello))
        var ping = Samples.bytes(of: .ping(7))
        bytes.writeBuffer(&ping)
        try await channel.writeAndFlush(bytes)
        #expect(await eventually { !channel.isActive })
        let received = collector.frames.withLockedValue { $0 }
        #expect(self.connectionReject(received)?.code == .unexpectedFrame)
        #expect(!received.contains { if case .welcome = $0 { true } else { false } })
        try await hub.stopAndRemove()
    }

    @Test func handshakesEndAtTheirDeadlineWithOrWithoutTLS() async throws {
        let hub = try await HubHarness.start { $0.limits.handshakeTimeoutMs = 500 }
        let (silent, collector) = try await hub.rawConnection()
        #expect(await eventually(seconds: 5) { !silent.isActive })
        #expect(self.connectionReject(collector.frames.withLockedValue { $0 })?.code == .handshakeTimeout)

        // Connections that never start TLS cannot be sent a REJECT: they are closed anyway.
        let plain = RawSockets()
        plain.open(20, from: ["127.0.0.1"], to: hub.port)
        #expect(plain.descriptors.count == 20)
        #expect(await eventually(seconds: 5) { plain.closedByPeer() == 20 })
        try await hub.stopAndRemove()
    }

    @Test func theConnectionCapCountsAuthenticatedNodesAndAnswersBeforeWelcome() async throws {
        let hub = try await HubHarness.start { $0.limits.maxConnections = 2 }
        let nodes = (0..<3).map { _ in AgentIdentity.generate() }
        for node in nodes { try hub.register(node) }
        // Handshakes in progress do not take connection slots.
        let (pending, _) = try await hub.rawConnection()
        let first = try await hub.connect(nodes[0])
        let second = try await hub.connect(nodes[1])
        let (third, frames) = try await hub.rawConnection()
        // CHALLENGE is the first frame even at the cap.
        let hello = try Hello(answering: try await hub.challenge(on: frames), version: 1, nodeID: nodes[2].nodeID, role: .agent, signingKey: nodes[2].signingKey)
        try await third.writeAndFlush(Samples.bytes(of: .hello(hello)))
        #expect(await eventually(seconds: 5) { !third.isActive })
        let reject = self.connectionReject(frames.frames.withLockedValue { $0 })
        #expect(reject?.code == .tooManyConnections)
        #expect(reject?.disposition == .retryable)
        // A slot freed is a slot taken.
        await first.close()
        var late: HubConnection?
        for _ in 0..<50 where late == nil {
            late = try? await hub.connect(nodes[2])
            if late == nil { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(late != nil)
        await late?.close()
        await second.close()
        try? await pending.close()
        try await hub.stopAndRemove()
    }

    @Test func theIdleTimeoutStartsAtWelcomeAndCountsBytesNotFrames() async throws {
        // Wide margins (each step is 1 s against a 6 s timeout) so a busy machine cannot
        // turn a pause into a timeout (4 s was seen to fail with both cores loaded).
        let hub = try await HubHarness.start {
            $0.limits.idleTimeoutMs = 6_000
            $0.limits.handshakeTimeoutMs = 20_000
        }
        let identity = AgentIdentity.generate()
        try hub.register(identity)
        // HubConnection pings every idle/3: it stays up well past the idle timeout.
        let connection = try await hub.connect(identity)
        try await Task.sleep(for: .milliseconds(9_000))
        #expect(connection.isActive)
        await connection.close()

        // Before WELCOME the node was never told the idle timeout: only the handshake
        // timeout (20 s here) applies.
        let (waiting, _) = try await hub.rawConnection()
        try await Task.sleep(for: .milliseconds(8_000))
        #expect(waiting.isActive)
        try? await waiting.close()

        // A BATCH trickling in slower than the idle timeout per frame, faster per byte, is
        // received and acknowledged.
        let (session, collector) = try await hub.authenticatedRawConnection(identity)
        var factory = RecordFactory(origin: identity.nodeID)
        let batch = try BatchSealer(origin: identity.nodeID, signingKey: identity.signingKey).seal(factory.records(50), sequence: 1)
        let bytes = Array(Samples.bytes(of: .batch(batch)).readableBytesView)
        let step = max(1, bytes.count / 8)
        let pieces = stride(from: 0, to: bytes.count, by: step).map { Array(bytes[$0..<min($0 + step, bytes.count)]) }
        for piece in pieces {
            try await session.writeAndFlush(ByteBuffer(bytes: piece))
            try await Task.sleep(for: .milliseconds(1_000))
        }
        #expect(await eventually {
            collector.frames.withLockedValue { frames in frames.contains { if case .ack(let ack) = $0 { ack.sequence == 1 } else { false } } }
        }, "sent over \(pieces.count * 1_000) ms against an idle timeout of 6,000 ms")

        // Silence after WELCOME ends with idleTimeout.
        #expect(await eventually(seconds: 20) { !session.isActive })
        #expect(self.connectionReject(collector.frames.withLockedValue { $0 })?.code == .idleTimeout)
        try await hub.stopAndRemove()
    }

    @Test func attackersSharingAnAgentsAddressCannotHoldItsHandshakeSlots() async throws {
        let hub = try await HubHarness.start { $0.limits.maxHandshakesPerAddress = 4 }
        let identity = AgentIdentity.generate()
        try hub.register(identity)
        // Four idle connections from the agent's own address (a shared NAT, loopback).
        let squatters = RawSockets()
        squatters.open(4, from: ["127.0.0.1"], to: hub.port)
        #expect(squatters.descriptors.count == 4)
        try await Task.sleep(for: .milliseconds(1_200))
        // The agent takes the slot of the longest-idle one instead of being refused.
        let connection = try await hub.connect(identity)
        #expect(await eventually { squatters.closedByPeer() >= 1 })
        await connection.close()
        try await hub.stopAndRemove()
    }

    @Test func aNodesNewestConnectionReplacesItsOldestAndRevocationDisconnects() async throws {
        let hub = try await HubHarness.start { $0.limits.maxConnectionsPerNode = 2 }
        let identity = AgentIdentity.generate()
        try hub.register(identity)
        let first = try await hub.connect(identity)
        let second = try await hub.connect(identity)
        let third = try await hub.connect(identity)
        #expect(await eventually { !first.isActive }, "one stolen key cannot take every connection slot")
        #expect(second.isActive && third.isActive)

        #expect(try hub.hub.store.revokeNode(identity.nodeID, at: 1))
        #expect(await eventually(seconds: 10) { !second.isActive && !third.isActive }, "a revoked node is disconnected")
        try await hub.stopAndRemove()
    }
}


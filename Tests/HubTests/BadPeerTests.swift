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

    @Test func oversizedFramesUnknownTypesAndOutOfTurnFramesCloseWithTheirCode() async throws {
        let hub = try await HubHarness.start()
        // A BATCH header declaring 1 GiB: refused from the 5-byte header, nothing buffered.
        var frames = try await self.exchange(hub, [0x04, 0x40, 0x00, 0x00, 0x00])
        guard case .challenge? = frames.first else { Issue.record("no CHALLENGE first"); return }
        #expect(self.connectionReject(frames)?.code == .frameTooLarge)

        frames = try await self.exchange(hub, [0x7E, 0, 0, 0, 0])
        #expect(self.connectionReject(frames)?.code == .malformedFrame)

        // A BATCH before the handshake.
        let identity = AgentIdentity.generate()
        var factory = RecordFactory(origin: identity.nodeID)
        let batch = try BatchSealer(origin: identity.nodeID, signingKey: identity.signingKey).seal(factory.records(1), sequence: 1)
        frames = try await self.exchange(hub, Array(Samples.bytes(of: .batch(batch)).readableBytesView))
        #expect(self.connectionReject(frames)?.code == .unexpectedFrame)

        // A HELLO whose proof signs another challenge.
        let hello = try Hello(answering: Samples.challenge, version: 1, nodeID: identity.nodeID, role: .agent, signingKey: identity.signingKey)
        frames = try await self.exchange(hub, Array(Samples.bytes(of: .hello(hello)).readableBytesView))
        #expect(self.connectionReject(frames)?.code == .badProof)
        #expect(try hub.recordCount == 0)
        try await hub.stopAndRemove()
    }

    @Test func silentPeersAreDroppedAndConnectionsAreCapped() async throws {
        let hub = try await HubHarness.start { $0.limits.handshakeTimeoutMs = 300 }
        let (silent, collector) = try await hub.rawConnection()
        #expect(await eventually(seconds: 5) { !silent.isActive })
        #expect(self.connectionReject(collector.frames.withLockedValue { $0 })?.code == .handshakeTimeout)

        try await hub.stopAndRemove()

        // The cap, on a hub whose handshake timeout cannot drop the first two before the
        // third arrives (TLS handshakes on a loaded machine take longer than 300 ms).
        let capped = try await HubHarness.start { $0.limits.maxConnections = 2 }
        let first = try await capped.rawConnection()
        let second = try await capped.rawConnection()
        let (third, thirdFrames) = try await capped.rawConnection()
        #expect(await eventually(seconds: 5) { !third.isActive })
        #expect(self.connectionReject(thirdFrames.frames.withLockedValue { $0 })?.code == .tooManyConnections)
        try? await first.0.close()
        try? await second.0.close()
        try await capped.stopAndRemove()
    }

    @Test func anIdleConnectionIsClosedButKeepaliveHoldsIt() async throws {
        let hub = try await HubHarness.start { $0.limits.idleTimeoutMs = 400 }
        let identity = AgentIdentity.generate()
        try hub.register(identity)
        // HubConnection pings every idle/3: it stays up well past the idle timeout.
        let connection = try await hub.connect(identity)
        try await Task.sleep(for: .milliseconds(1_500))
        #expect(connection.isActive)
        await connection.close()

        let (raw, collector) = try await hub.rawConnection()
        #expect(await eventually(seconds: 5) { !raw.isActive })
        #expect(self.connectionReject(collector.frames.withLockedValue { $0 }) != nil)
        try await hub.stopAndRemove()
    }
}

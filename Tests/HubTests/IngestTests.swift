import Agent
import Crypto
import Foundation
import Hub
import NIOCore
import TestSupport
import Testing
import Wire

@Suite(.serialized) struct IngestTests {
    private func seal(_ identity: AgentIdentity, _ records: [FeedbackRecord], sequence: UInt64) throws -> SealedBatch {
        try BatchSealer(origin: identity.nodeID, signingKey: identity.signingKey).seal(records, sequence: sequence)
    }

    private func expectReject(_ result: BatchResult, _ code: RejectCode, _ disposition: Reject.Disposition = .permanent) {
        guard case .rejected(let reject) = result else {
            Issue.record("expected REJECT \(code), got \(result)")
            return
        }
        #expect(reject.code == code)
        #expect(reject.disposition == disposition)
    }

    @Test func aValidAgentsBatchesAreStoredAndAcknowledged() async throws {
        // Keepalive PINGs (every third of the idle timeout) flush the socket as a side
        // effect; pushing them out of the test's reach shows batches waiting for credit
        // leave on their own.
        let hub = try await HubHarness.start { $0.limits.idleTimeoutMs = 600_000 }
        let identity = AgentIdentity.generate()
        try hub.register(identity)
        var factory = RecordFactory(origin: identity.nodeID)
        let connection = try await hub.connect(identity)
        #expect(connection.welcome.resume == [Welcome.ResumePoint(origin: identity.nodeID, committedSequence: 0)])
        #expect(connection.welcome.initialCredit == 16)

        // Four times the credit at once: the rest wait for CREDIT frames and go out as they come.
        let batches = try (1...64).map { try self.seal(identity, factory.records(100), sequence: UInt64($0)) }
        let futures = batches.map { connection.send($0) }
        let answered = NIOLockedValueBoxSet()
        for (batch, future) in zip(batches, futures) {
            future.whenComplete { _ in answered.insert(batch.header.sequence) }
        }
        guard await eventually(seconds: 30, { answered.count == batches.count }) else {
            Issue.record("\(batches.count - answered.count) batches beyond the credit were stranded")
            await connection.close()
            try await hub.stopAndRemove()
            return
        }
        let results = try await futures.asyncMap { try await $0.get() }
        for (batch, result) in zip(batches, results) {
            #expect(result == .acknowledged(Ack(origin: identity.nodeID, sequence: batch.header.sequence, status: .stored, storedRecords: 100)))
        }
        #expect(try hub.recordCount == 6_400)
        await connection.close()

        let again = try await hub.connect(identity)
        #expect(again.welcome.resume.first?.committedSequence == 64)
        await again.close()
        try await hub.stopAndRemove()
    }

    @Test func aDuplicateBatchIsStoredOnceAndAnsweredDuplicate() async throws {
        let hub = try await HubHarness.start()
        let identity = AgentIdentity.generate()
        try hub.register(identity)
        var factory = RecordFactory(origin: identity.nodeID)
        let records = factory.records(100)
        let batch = try self.seal(identity, records, sequence: 1)

        let first = try await hub.connect(identity)
        #expect(try await first.send(batch).get() == .acknowledged(Ack(origin: identity.nodeID, sequence: 1, status: .stored, storedRecords: 100)))
        #expect(try await first.send(batch).get() == .acknowledged(Ack(origin: identity.nodeID, sequence: 1, status: .duplicate, storedRecords: 0)))
        await first.close()

        // After a reconnect, as an agent re-sends what it never saw acknowledged.
        let second = try await hub.connect(identity)
        #expect(try await second.send(batch).get() == .acknowledged(Ack(origin: identity.nodeID, sequence: 1, status: .duplicate, storedRecords: 0)))
        // The same records re-sealed under a new sequence: the batch is new, its records are not.
        let resealed = try self.seal(identity, records, sequence: 2)
        #expect(try await second.send(resealed).get() == .acknowledged(Ack(origin: identity.nodeID, sequence: 2, status: .stored, storedRecords: 0)))
        await second.close()
        #expect(try hub.recordCount == 100)
        try await hub.stopAndRemove()
    }

    @Test func forgedSignaturesAndBombsAreRefusedAndNothingIsStored() async throws {
        let hub = try await HubHarness.start()
        let identity = AgentIdentity.generate()
        try hub.register(identity)
        var factory = RecordFactory(origin: identity.nodeID)
        let connection = try await hub.connect(identity)

        // Signed by another key, claiming the agent's key id.
        let genuine = try self.seal(identity, factory.records(10), sequence: 1)
        let forgedBytes = Samples.forgeBatch(
            header: genuine.header,
            payload: Array(genuine.payload.readableBytesView),
            key: Curve25519.Signing.PrivateKey()
        )
        self.expectReject(try await connection.send(try SealedBatch(parsing: forgedBytes)).get(), .badSignature)

        // A zstd bomb, validly signed: 64 MiB of zeros declared as 4 KiB, and declared honestly.
        var bomb = ByteBuffer()
        try ZstdCompressor(level: 19).compress(ByteBuffer(repeating: 0, count: 64 << 20), into: &bomb)
        var header = BatchHeader(
            origin: identity.nodeID, sequence: 2, keyID: identity.keyID, recordCount: 1,
            uncompressedLength: 4096, compressedLength: UInt32(bomb.readableBytes)
        )
        let small = Samples.forgeBatch(header: header, payload: Array(bomb.readableBytesView), key: identity.signingKey)
        self.expectReject(try await connection.send(try SealedBatch(parsing: small)).get(), .decompressionFailed)
        header.sequence = 3
        header.uncompressedLength = UInt32(64 << 20)
        let honest = Samples.forgeBatch(header: header, payload: Array(bomb.readableBytesView), key: identity.signingKey)
        self.expectReject(try await connection.send(try SealedBatch(parsing: honest)).get(), .batchTooLarge)

        // The connection survives batch-level refusals.
        let good = try self.seal(identity, factory.records(5), sequence: 4)
        #expect(try await connection.send(good).get() == .acknowledged(Ack(origin: identity.nodeID, sequence: 4, status: .stored, storedRecords: 5)))
        await connection.close()
        #expect(try hub.recordCount == 5)
        #expect(try hub.hub.store.batchCount() == 1)
        try await hub.stopAndRemove()
    }

    @Test func unknownAndRevokedKeysAreRefused() async throws {
        let hub = try await HubHarness.start()
        let stranger = AgentIdentity.generate()
        await #expect {
            _ = try await hub.connect(stranger)
        } throws: { ($0 as? ConnectionError)?.reject?.code == .unknownKey }

        let identity = AgentIdentity.generate()
        try hub.register(identity)
        var factory = RecordFactory(origin: identity.nodeID)
        let connection = try await hub.connect(identity)
        #expect(try await connection.send(try self.seal(identity, factory.records(3), sequence: 1)).get()
            == .acknowledged(Ack(origin: identity.nodeID, sequence: 1, status: .stored, storedRecords: 3)))
        #expect(try hub.hub.store.revokeNode(identity.nodeID, at: 1))
        try hub.hub.registry.refresh()
        self.expectReject(try await connection.send(try self.seal(identity, factory.records(3), sequence: 2)).get(), .revokedKey)
        await connection.close()
        await #expect {
            _ = try await hub.connect(identity)
        } throws: { ($0 as? ConnectionError)?.reject?.code == .revokedKey }
        #expect(try hub.recordCount == 3)

        // Someone else's key under the agent's node id.
        let impostor = AgentIdentity(nodeID: identity.nodeID, signingKey: Curve25519.Signing.PrivateKey())
        await #expect {
            _ = try await hub.connect(impostor)
        } throws: { ($0 as? ConnectionError)?.reject != nil }
        try await hub.stopAndRemove()
    }

    @Test func anAgentCannotSendAnotherOriginsBatches() async throws {
        let hub = try await HubHarness.start()
        let agent = AgentIdentity.generate()
        let other = AgentIdentity.generate()
        try hub.register(agent)
        try hub.register(other)
        var factory = RecordFactory(origin: other.nodeID)
        let connection = try await hub.connect(agent)
        self.expectReject(try await connection.send(try self.seal(other, factory.records(2), sequence: 1)).get(), .originNotAllowed)
        await connection.close()

        // A relay may forward it, unchanged, and the origin's signature is what counts.
        let relay = AgentIdentity.generate()
        try hub.register(relay, role: .relay)
        let relayed = try await hub.connect(relay, role: .relay)
        let batch = try self.seal(other, factory.records(2), sequence: 2)
        #expect(try await relayed.send(batch).get() == .acknowledged(Ack(origin: other.nodeID, sequence: 2, status: .stored, storedRecords: 2)))
        await relayed.close()
        try await hub.stopAndRemove()
    }

    @Test func anEnrollmentTokenRegistersOneNodeOnce() async throws {
        let hub = try await HubHarness.start()
        let token = EnrollmentToken.generate()
        try hub.hub.store.addEnrollmentToken(
            hash: NodeRegistry.tokenHash(token), sites: try SiteScope(["branch-9"]), role: .agent, createdAt: 0, expiresAt: .max
        )
        let identity = AgentIdentity.generate()
        let connection = try await hub.connect(identity, token: token)
        await connection.close()
        #expect(hub.hub.registry.node(identity.nodeID)?.sites == (try SiteScope(["branch-9"])))
        // Known now: it connects without the token.
        await (try await hub.connect(identity)).close()
        await #expect {
            _ = try await hub.connect(AgentIdentity.generate(), token: token)
        } throws: { ($0 as? ConnectionError)?.reject?.code == .enrollmentRefused }
        await #expect {
            _ = try await hub.connect(AgentIdentity.generate(), token: "fmt_not-a-token")
        } throws: { ($0 as? ConnectionError)?.reject?.code == .enrollmentRefused }
        try await hub.stopAndRemove()
    }
}

extension Sequence {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for element in self { results.append(try await transform(element)) }
        return results
    }
}

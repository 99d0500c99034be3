import Agent
import Foundation
import Hub
import NIOCore
import TestSupport
import Testing
import Wire

/// Behaviours PROTOCOL.md settles that a client written from the spec alone relies on:
/// each test names the section it holds the hub to.
@Suite(.serialized) struct ProtocolConformanceTests {
    private func seal(_ identity: AgentIdentity, _ records: [FeedbackRecord], sequence: UInt64) throws -> SealedBatch {
        try BatchSealer(origin: identity.nodeID, signingKey: identity.signingKey).seal(records, sequence: sequence)
    }

    /// A batch with a valid signature over a payload that is not zstd at all.
    private func garbage(_ identity: AgentIdentity, sequence: UInt64) throws -> SealedBatch {
        let payload = [UInt8](repeating: 0x5A, count: 200)
        let header = BatchHeader(
            origin: identity.nodeID, sequence: sequence, keyID: identity.keyID, recordCount: 2,
            uncompressedLength: 400, compressedLength: UInt32(payload.count)
        )
        return try SealedBatch(parsing: Samples.forgeBatch(header: header, payload: payload, key: identity.signingKey))
    }

    private func rejectCode(_ result: BatchResult) -> RejectCode? {
        guard case .rejected(let reject) = result else { return nil }
        return reject.code
    }

    /// §7.2: a committed batch is answered `duplicate` whatever its payload holds.
    @Test func aKnownBatchIsADuplicateWhateverItsPayload() async throws {
        let hub = try await HubHarness.start()
        let agent = AgentIdentity.generate()
        try hub.register(agent)
        var factory = RecordFactory(origin: agent.nodeID)
        let connection = try await hub.connect(agent)
        _ = try await connection.send(try self.seal(agent, factory.records(3), sequence: 1)).get()
        let known = try await connection.send(try self.garbage(agent, sequence: 1)).get()
        #expect(known == .acknowledged(Ack(origin: agent.nodeID, sequence: 1, status: .duplicate, storedRecords: 0)))
        #expect(self.rejectCode(try await connection.send(try self.garbage(agent, sequence: 2)).get()) == .decompressionFailed)
        #expect(try hub.recordCount == 3)
        await connection.close()
        try await hub.stopAndRemove()
    }

    /// §6.2, §5: a node registered as an agent that says `relay` is refused at connection level.
    @Test func anAgentClaimingToBeARelayIsRefusedAtConnectionLevel() async throws {
        let hub = try await HubHarness.start()
        let agent = AgentIdentity.generate()
        try hub.register(agent)
        await #expect {
            _ = try await hub.connect(agent, role: .relay)
        } throws: { error in
            guard let reject = (error as? ConnectionError)?.reject else { return false }
            return reject.code == .originNotAllowed && reject.isConnectionLevel && reject.disposition == .permanent
        }
        try await hub.stopAndRemove()
    }

    /// §6.5, §8: every limit WELCOME announces is enforced, and nothing above it is stored.
    @Test func theHubRefusesBatchesAboveTheLimitsItAnnounced() async throws {
        let hub = try await HubHarness.start {
            $0.limits.maxBatchRecords = 50
            $0.limits.maxUncompressedBytes = 8_000
            $0.limits.maxCompressedBytes = 4_000
        }
        let agent = AgentIdentity.generate()
        try hub.register(agent)
        var factory = RecordFactory(origin: agent.nodeID)
        let connection = try await hub.connect(agent)
        #expect(connection.welcome.maxBatchRecords == 50)
        #expect(connection.welcome.maxUncompressedBytes == 8_000)
        #expect(connection.welcome.maxFrameLength == 4_000 + 113)
        #expect(self.rejectCode(try await connection.send(try self.seal(agent, factory.records(51), sequence: 1)).get()) == .batchTooLarge)
        // 50 records with long comments: within the count, over the uncompressed bytes.
        var long = factory.records(50)
        for index in long.indices { long[index].comment = String(repeating: "x", count: 200) }
        #expect(self.rejectCode(try await connection.send(try self.seal(agent, long, sequence: 2)).get()) == .batchTooLarge)
        let fits = try await connection.send(try self.seal(agent, factory.records(50), sequence: 3)).get()
        #expect(fits == .acknowledged(Ack(origin: agent.nodeID, sequence: 3, status: .stored, storedRecords: 50)))
        #expect(try hub.recordCount == 50)
        await connection.close()
        try await hub.stopAndRemove()
    }

    /// §8: a hub may not lower the compression ratio it accepts below the protocol's 200,
    /// which WELCOME does not announce (a conforming agent would dead-letter good batches).
    @Test func theCompressionRatioCannotBeLoweredBelowTheProtocolFloor() throws {
        var configuration = HubConfiguration(hubID: UUID(), tls: .init(certificate: "c", privateKey: "k"))
        configuration.limits.maxCompressionRatio = 100
        #expect(throws: ConfigurationError.self) { try configuration.validate() }
        configuration.limits.maxCompressionRatio = 200
        try configuration.validate()
    }

    /// §6.2: a node id registered with another key is refused `unknownKey` even with a valid
    /// token, and the token is not used up.
    @Test func aTokenDoesNotReKeyARegisteredNode() async throws {
        let hub = try await HubHarness.start()
        let registered = AgentIdentity.generate()
        try hub.register(registered)
        let token = EnrollmentToken.generate()
        try hub.hub.store.addEnrollmentToken(hash: NodeRegistry.tokenHash(token), sites: .any, role: .agent, createdAt: 0, expiresAt: .max)
        let impostor = AgentIdentity(nodeID: registered.nodeID, signingKey: AgentIdentity.generate().signingKey)
        await #expect {
            _ = try await hub.connect(impostor, token: token)
        } throws: { ($0 as? ConnectionError)?.reject?.code == .unknownKey }
        // Nor does a node that asks to relay with a token that enrolls an agent use it up.
        await #expect {
            _ = try await hub.connect(AgentIdentity.generate(), role: .relay, token: token)
        } throws: { ($0 as? ConnectionError)?.reject?.code == .originNotAllowed }
        let newcomer = try await hub.connect(AgentIdentity.generate(), token: token)
        await newcomer.close()
        try await hub.stopAndRemove()
    }

    /// §6.2: a node whose first HELLO redeemed its token but never saw the answer retries
    /// with the same token and is enrolled, not refused for good; anyone else is refused.
    @Test func aNodeRetryingItsEnrollmentIsNotRefusedForGood() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("retry-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let store = try SQLiteStore(path: folder.appendingPathComponent("feedback.sqlite").path)
        let hash = NodeRegistry.tokenHash(EnrollmentToken.generate())
        try store.addEnrollmentToken(hash: hash, sites: .any, role: .agent, createdAt: 0, expiresAt: .max)
        func candidate(_ identity: AgentIdentity) -> RegisteredNode {
            RegisteredNode(
                nodeID: identity.nodeID, publicKey: [UInt8](identity.signingKey.publicKey.rawRepresentation), keyID: identity.keyID,
                role: .agent, sites: .any, revoked: false, createdAt: 0
            )
        }
        let agent = AgentIdentity.generate()
        #expect(try store.redeemEnrollmentToken(hash: hash, node: candidate(agent), at: 1).map(\.nodeID) == .success(agent.nodeID))
        #expect(try store.redeemEnrollmentToken(hash: hash, node: candidate(agent), at: 2).map(\.nodeID) == .success(agent.nodeID))
        #expect(try store.redeemEnrollmentToken(hash: hash, node: candidate(AgentIdentity.generate()), at: 3) == .failure(.alreadyUsed))
        let sameIDOtherKey = AgentIdentity(nodeID: agent.nodeID, signingKey: AgentIdentity.generate().signingKey)
        #expect(try store.redeemEnrollmentToken(hash: hash, node: candidate(sameIDOtherKey), at: 4) == .failure(.alreadyUsed))
    }

    /// §7.2: the same record id twice in one batch is stored once and counted once.
    @Test func aRecordRepeatedInsideABatchIsStoredOnce() async throws {
        let hub = try await HubHarness.start()
        let agent = AgentIdentity.generate()
        try hub.register(agent)
        var factory = RecordFactory(origin: agent.nodeID)
        var records = factory.records(3)
        records[2].id = records[0].id
        let connection = try await hub.connect(agent)
        let result = try await connection.send(try self.seal(agent, records, sequence: 1)).get()
        #expect(result == .acknowledged(Ack(origin: agent.nodeID, sequence: 1, status: .stored, storedRecords: 2)))
        #expect(try hub.recordCount == 2)
        await connection.close()
        try await hub.stopAndRemove()
    }

    /// §6.4, §6.5: credit exceeded, or one batch twice in flight, ends the connection; what
    /// was in flight may be committed but is unanswered, and sending it again on a new
    /// connection stores nothing twice.
    @Test func creditViolationsEndTheConnectionAndResendingLosesAndDoublesNothing() async throws {
        let hub = try await HubHarness.start { $0.limits.credit = 2 }
        let agent = AgentIdentity.generate()
        try hub.register(agent)
        var factory = RecordFactory(origin: agent.nodeID)
        let batches = try (1...3).map { try self.seal(agent, factory.records(10), sequence: UInt64($0)) }

        for (name, sequences) in [("over credit", [1, 2, 3]), ("twice in flight", [1, 1])] {
            let (channel, collector) = try await hub.authenticatedRawConnection(agent)
            var bytes = ByteBuffer()
            for sequence in sequences { Frame.batch(batches[sequence - 1]).write(into: &bytes) }
            try await channel.writeAndFlush(bytes)
            #expect(await eventually { !channel.isActive }, "\(name): the hub closes the connection")
            let reject = collector.frames.withLockedValue { frames in
                frames.compactMap { if case .reject(let reject) = $0, reject.isConnectionLevel { reject } else { nil } }.first
            }
            #expect(reject?.code == (name == "over credit" ? .creditExceeded : .unexpectedFrame), "\(name)")
        }

        let connection = try await hub.connect(agent)
        for batch in batches {
            guard case .acknowledged = try await connection.send(batch).get() else {
                Issue.record("batch \(batch.header.sequence) was refused when sent again")
                continue
            }
        }
        #expect(try hub.recordCount == 30)
        #expect(try hub.hub.store.batchCount() == 3)
        await connection.close()
        try await hub.stopAndRemove()
    }
}

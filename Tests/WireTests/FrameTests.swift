import Foundation
import NIOCore
import NIOTestUtils
import TestSupport
import Testing
import Wire

/// One frame of each type, built from the fixture samples.
enum SampleFrames {
    static func all() throws -> [Frame] {
        let sealer = BatchSealer(origin: Samples.agentID, signingKey: Samples.agentKey)
        let batch = try sealer.seal([Samples.kioskRecord(0), Samples.popupRecord(1)], sequence: 1)
        let hello = try Hello(
            answering: Samples.challenge,
            version: 1,
            nodeID: Samples.agentID,
            role: .agent,
            signingKey: Samples.agentKey,
            enrollmentToken: "enr_5bQ2"
        )
        return [
            .challenge(Samples.challenge),
            .hello(hello),
            .welcome(
                Welcome(
                    maxFrameLength: 4_194_417,
                    maxBatchRecords: 10_000,
                    maxUncompressedBytes: 8_388_608,
                    initialCredit: 32,
                    idleTimeoutMilliseconds: 60_000,
                    resume: [Welcome.ResumePoint(origin: Samples.agentID, committedSequence: 41)]
                )
            ),
            .batch(batch),
            .ack(Ack(origin: Samples.agentID, sequence: 1, status: .stored, storedRecords: 2)),
            .reject(
                Reject(origin: Samples.agentID, sequence: 2, code: .badSignature, disposition: .permanent, message: "signature does not verify")
            ),
            .credit(8),
            .ping(0x0102_0304_0506_0708),
            .pong(0x0102_0304_0506_0708),
            .goAway(GoAway(code: .shuttingDown, reconnectAfterMilliseconds: 5_000, message: "hub restarting")),
            .forward(ForwardedBatch(path: [Samples.relayID], batch: batch)),
            .registry(
                RegistryUpdate(
                    revision: 7, first: true, last: true,
                    entries: [
                        RegistryUpdate.Entry(
                            nodeID: Samples.agentID, keyID: KeyID(Samples.agentKey.publicKey),
                            publicKey: Array(Samples.agentKey.publicKey.rawRepresentation), role: .agent, revoked: false,
                            sites: try SiteScope(["branch-12", "kiosk-*"])
                        )
                    ]
                )
            ),
            .enroll(EnrollRequest(challenge: Samples.challenge, hello: hello)),
            .enrolled(EnrollAnswer(nodeID: Samples.agentID, outcome: .enrolled(role: .agent, sites: try SiteScope(["branch-12"])))),
            .status(
                try StatusReport(
                    nodeID: Samples.agentID, signingKey: Samples.agentKey, sentAt: Samples.baseTime,
                    status: NodeStatus(
                        version: "1.0", role: "agent", sites: ["branch-12"], backlogRecords: 3, backlogBatches: 1,
                        oldestPendingAt: Samples.baseTime - 2_000,
                        sources: [NodeStatus.Source(name: "kiosk", captured: 41, errors: 0, lastError: nil)],
                        upstream: "relay.branch-12:7443", downstream: nil
                    )
                )
            ),
        ]
    }
}

@Suite struct FrameTests {
    let limits = FrameLimits()

    private func readError(_ bytes: [UInt8]) -> WireError? {
        var buffer = ByteBuffer(bytes: bytes)
        do {
            _ = try Frame.read(from: &buffer, limits: self.limits)
            return nil
        } catch {
            return error as? WireError
        }
    }

    @Test func everyFrameTypeRoundTrips() throws {
        let frames = try SampleFrames.all()
        #expect(Set(frames.map(\.type)) == Set(FrameType.allCases))
        for frame in frames {
            var buffer = Samples.bytes(of: frame)
            #expect(try Frame.read(from: &buffer, limits: self.limits) == frame)
            #expect(buffer.readableBytes == 0)
        }
    }

    @Test func theDecoderHandlesAnySplitOfTheStream() throws {
        let pairs = try SampleFrames.all().map { (Samples.bytes(of: $0), [$0]) }
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) { FrameDecoder() }
    }

    @Test func incompleteFramesWaitWithoutConsuming() throws {
        let bytes = Array(Samples.bytes(of: .credit(3)).readableBytesView)
        for cut in 0..<bytes.count {
            var buffer = ByteBuffer(bytes: bytes.prefix(cut))
            #expect(try Frame.read(from: &buffer, limits: self.limits) == nil)
            #expect(buffer.readableBytes == cut)
        }
    }

    @Test func unknownTypesAndLengthsOutOfRangeAreRefusedFromTheHeaderAlone() {
        #expect(self.readError([0x00, 0, 0, 0, 0])?.code == .unknownFrameType)
        #expect(self.readError([0x7F, 0, 0, 0, 8])?.code == .unknownFrameType)
        // Below the minimum: a CREDIT of 3 bytes.
        #expect(self.readError([0x07, 0, 0, 0, 3])?.code == .lengthOutOfRange)
        // Above the maximum: a 4 GiB BATCH is refused at once, not waited for.
        #expect(self.readError([0x04, 0xFF, 0xFF, 0xFF, 0xFF])?.code == .frameTooLarge)
        #expect(self.readError([0x04, 0xFF, 0xFF, 0xFF, 0xFF])?.rejectCode == .frameTooLarge)
        // A HELLO longer than the longest token allows.
        #expect(self.readError([0x02, 0, 0, 1, 0])?.code == .frameTooLarge)
        // A REJECT whose message length overruns its frame.
        var reject = Array(Samples.bytes(of: .reject(.connection(.overloaded, .retryable, "busy"))).readableBytesView)
        reject[5 + 28] = 10  // claims 10 message bytes; 4 follow
        #expect(self.readError(reject)?.code == .truncated)
    }

    @Test func bytesLeftInsideAFrameAreRefused() {
        // A REJECT whose frame is one byte longer than its message.
        var bytes = Array(Samples.bytes(of: .reject(.connection(.overloaded, .retryable, "busy"))).readableBytesView)
        bytes[4] += 1
        bytes.append(0x00)
        #expect(self.readError(bytes)?.code == .trailingBytes)
    }

    @Test func fieldValuesOutOfRangeAreRefused() throws {
        #expect(self.readError([0x07, 0, 0, 0, 4, 0, 0, 0, 0])?.field == "credit")
        var ack = Array(Samples.bytes(of: .ack(Ack(origin: Samples.agentID, sequence: 1, status: .stored, storedRecords: 1))).readableBytesView)
        ack[5 + 24] = 3
        #expect(self.readError(ack)?.field == "ack.status")
        var challenge = Array(Samples.bytes(of: .challenge(Samples.challenge)).readableBytesView)
        challenge[5 + 1] = 2  // min version 2 > max version 1
        #expect(self.readError(challenge)?.field == "challenge.versions")
        var goAway = Array(Samples.bytes(of: .goAway(GoAway(code: .shuttingDown, reconnectAfterMilliseconds: 0, message: "ab"))).readableBytesView)
        goAway[goAway.count - 1] = 0xFF
        #expect(self.readError(goAway)?.code == .invalidUTF8)
        var hello = Array(Samples.bytes(of: try SampleFrames.all()[1]).readableBytesView)
        hello[5 + 18] = 7
        #expect(self.readError(hello)?.field == "hello.role")
    }

    @Test func longMessagesAreCutAtACharacterBoundary() {
        let reject = Reject.connection(.overloaded, .retryable, String(repeating: "é", count: 600))
        #expect(reject.message.utf8.count == Reject.maxMessageLength)
        var buffer = Samples.bytes(of: .reject(reject))
        #expect(throws: Never.self) { _ = try Frame.read(from: &buffer, limits: self.limits) }
    }

    @Test func helloProofBindsTheChallengeAndTheFields() throws {
        guard case .hello(let hello) = try SampleFrames.all()[1] else { Issue.record("not a hello"); return }
        try hello.verifyProof(for: Samples.challenge)

        var otherNonce = Samples.challenge
        otherNonce.nonce[0] ^= 1
        #expect(throws: WireError.self) { try hello.verifyProof(for: otherNonce) }

        var relay = hello
        relay.role = .relay
        #expect(throws: WireError.self) { try relay.verifyProof(for: Samples.challenge) }

        var stolen = try Hello(
            answering: Samples.challenge,
            version: 1,
            nodeID: Samples.agentID,
            role: .agent,
            signingKey: Samples.otherKey
        )
        stolen.publicKey = hello.publicKey  // claims the agent's key, signed by another
        stolen.keyID = hello.keyID
        #expect {
            try stolen.verifyProof(for: Samples.challenge)
        } throws: { ($0 as? WireError)?.rejectCode == .badProof }
    }

    @Test func frameSizeLimitsFollowTheBatchLimits() throws {
        var batchLimits = BatchLimits()
        batchLimits.maxCompressedBytes = 1024
        let small = FrameLimits(batch: batchLimits)
        var header = ByteBuffer()
        header.writeInteger(FrameType.batch.rawValue)
        header.writeInteger(UInt32(small.maxFrameLength + 1))
        #expect(throws: WireError.self) { _ = try Frame.read(from: &header, limits: small) }
    }
}

import Crypto
import Foundation
import NIOCore
import TestSupport
import Testing
import Wire

/// REGISTRY snapshots and the node directory a hub and a relay both check HELLOs and batches
/// against.
@Suite struct MeshFrameTests {
    @Test func aLargeSnapshotIsCutIntoFramesThatDecodeBackWhole() throws {
        // 700 nodes with 40 long patterns each: past one frame's 256 KiB three times over. One
        // key for all: making keys is not what is tested, and costs CPU the other suites need.
        let key = Curve25519.Signing.PrivateKey().publicKey
        let patterns = try SiteScope((0..<40).map { "a-very-long-branch-name-\($0)" })
        let entries = (0..<700).map { _ in
            RegistryUpdate.Entry(nodeID: UUID(), keyID: KeyID(key), publicKey: Array(key.rawRepresentation), role: .agent, revoked: false, sites: patterns)
        }
        let frames = RegistryUpdate.frames(revision: 42, entries: entries)
        #expect(frames.count > 1)
        #expect(frames.first?.first == true && frames.last?.last == true)
        #expect(frames.dropFirst().allSatisfy { !$0.first } && frames.dropLast().allSatisfy { !$0.last })
        var decoded: [RegistryUpdate.Entry] = []
        for frame in frames {
            var buffer = ByteBuffer()
            Frame.registry(frame).write(into: &buffer)
            #expect(buffer.readableBytes <= RegistryUpdate.maxLength + Frame.headerLength)
            guard case .registry(let update)? = try Frame.read(from: &buffer, limits: FrameLimits()) else {
                Issue.record("expected REGISTRY")
                return
            }
            #expect(update.revision == 42)
            decoded += update.entries
        }
        #expect(decoded == entries)
    }

    @Test func anEmptyRegistryIsOneFrame() {
        let frames = RegistryUpdate.frames(revision: 1, entries: [])
        #expect(frames == [RegistryUpdate(revision: 1, first: true, last: true, entries: [])])
    }

    @Test func hostileRegistryFramesAreRefused() throws {
        var flags = ByteBuffer()
        flags.writeMultipleIntegers(UInt8(0x0C), UInt32(11), UInt64(1), UInt8(4), UInt16(0))
        #expect(throws: WireError.self) { try Frame.read(from: &flags, limits: FrameLimits()) }
        // One entry declared, none present.
        var short = ByteBuffer()
        short.writeMultipleIntegers(UInt8(0x0C), UInt32(11), UInt64(1), UInt8(3), UInt16(1))
        #expect(throws: WireError.self) { try Frame.read(from: &short, limits: FrameLimits()) }
        // Longer than a REGISTRY may be: refused from the header, before the payload arrives.
        var long = ByteBuffer()
        long.writeMultipleIntegers(UInt8(0x0C), UInt32(RegistryUpdate.maxLength + 1))
        #expect(throws: WireError.self) { try Frame.read(from: &long, limits: FrameLimits()) }
    }

    @Test func theDirectoryRefusesLikeTheHub() throws {
        let key = Curve25519.Signing.PrivateKey()
        let node = UUID()
        let registered = RegistryUpdate.Entry(
            nodeID: node, keyID: KeyID(key.publicKey), publicKey: Array(key.publicKey.rawRepresentation), role: .agent, revoked: false,
            sites: try SiteScope(["branch-1"])
        )
        var directory = NodeDirectory([registered])
        let challenge = Challenge(versions: 1...2, hubID: Samples.hubID, nonce: Samples.challenge.nonce)
        let hello = try Hello(answering: challenge, version: 2, nodeID: node, role: .agent, signingKey: key)
        #expect(try directory.authenticate(hello, challenge: challenge)?.get() == registered)
        // Claiming the relay role without it, or another key, or a proof for another challenge.
        let asRelay = try Hello(answering: challenge, version: 2, nodeID: node, role: .relay, signingKey: key)
        #expect(self.code(directory.authenticate(asRelay, challenge: challenge)) == .originNotAllowed)
        let impostor = try Hello(answering: challenge, version: 2, nodeID: node, role: .agent, signingKey: Curve25519.Signing.PrivateKey())
        #expect(self.code(directory.authenticate(impostor, challenge: challenge)) == .unknownKey)
        let replayed = Challenge(versions: 1...2, hubID: Samples.hubID, nonce: Array(repeating: 7, count: 32))
        #expect(self.code(directory.authenticate(hello, challenge: replayed)) == .badProof)
        // Unknown: nil, for the caller to enroll or refuse.
        let stranger = Curve25519.Signing.PrivateKey()
        #expect(directory.authenticate(try Hello(answering: challenge, version: 2, nodeID: UUID(), role: .agent, signingKey: stranger), challenge: challenge) == nil)

        let batch = try BatchSealer(origin: node, signingKey: key).seal([Samples.kioskRecord(origin: node)], sequence: 1)
        #expect(try directory.rights(for: batch).get().sites == registered.sites)
        #expect(!directory.mustDisconnect(node))
        var revoked = registered
        revoked.revoked = true
        let before = directory.revision
        directory = NodeDirectory([revoked])
        #expect(directory.revision != before, "a revocation changes the revision, so it is sent to relays")
        #expect(self.code(directory.authenticate(hello, challenge: challenge)) == .revokedKey)
        if case .failure(let reject) = directory.rights(for: batch) { #expect(reject.code == .revokedKey) } else { Issue.record("revoked origin") }
        #expect(directory.mustDisconnect(node) && directory.mustDisconnect(UUID()))
        #expect(NodeDirectory([registered]).revision == NodeDirectory([registered]).revision)
    }

    private func code(_ result: Result<RegistryUpdate.Entry, Reject>?) -> RejectCode? {
        if case .failure(let reject)? = result { return reject.code }
        return nil
    }
}

import Foundation
import Hub
import NIOCore
import TestSupport
import Testing
import Wire

@Suite struct FrameInspectorTests {
    private func frames(_ frames: [Frame]) -> [UInt8] {
        var buffer = ByteBuffer()
        for frame in frames { frame.write(into: &buffer) }
        return Array(buffer.readableBytesView)
    }

    @Test func batchesOpenUnderTheOriginsKeyAndNoOther() throws {
        let batch = try BatchSealer(origin: Samples.agentID, signingKey: Samples.agentKey)
            .seal([Samples.kioskRecord(0), Samples.popupRecord(1)], sequence: 5)
        let bytes = self.frames([.challenge(Samples.challenge), .batch(batch), .credit(2)])

        let entries = try FrameInspector(publicKey: Samples.agentKey.publicKey).inspect(bytes)
        #expect(entries.map(\.frame.type) == [.challenge, .batch, .credit])
        #expect(try entries[1].opened?.get() == [Samples.kioskRecord(0), Samples.popupRecord(1)])

        let wrongKey = try FrameInspector(publicKey: Samples.otherKey.publicKey).inspect(bytes)
        guard case .failure(let error)? = wrongKey[1].opened else {
            Issue.record("opened under the wrong key")
            return
        }
        #expect(error.rejectCode == .unknownKey)
    }

    @Test func aStreamEndingInsideAFrameIsReported() {
        let bytes = self.frames([.ping(1), .credit(1)]).dropLast(2)
        #expect {
            _ = try FrameInspector(publicKey: nil).inspect(Array(bytes))
        } throws: { ($0 as? WireError)?.code == .truncated }
    }
}

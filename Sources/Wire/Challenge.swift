import NIOCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// CHALLENGE, hub → node, the first frame on every connection: the versions the hub speaks
/// and a fresh nonce the node must sign in its HELLO.
public struct Challenge: Sendable, Hashable {
    /// Encoded size: `u16 minVersion, u16 maxVersion, 16 hubId, 32 nonce`.
    public static let length = 52

    /// The versions the hub speaks.
    public var versions: ClosedRange<UInt16>
    /// The hub's node id.
    public var hubID: UUID
    /// 32 random bytes, never reused.
    public var nonce: [UInt8]

    /// Creates a challenge. `nonce` must be 32 bytes.
    public init(versions: ClosedRange<UInt16> = ProtocolVersion.supported, hubID: UUID, nonce: [UInt8]) {
        precondition(nonce.count == 32, "a challenge nonce is 32 bytes")
        self.versions = versions
        self.hubID = hubID
        self.nonce = nonce
    }

    /// Creates a challenge with a fresh random nonce.
    public static func random(hubID: UUID, versions: ClosedRange<UInt16> = ProtocolVersion.supported) -> Challenge {
        var rng = SystemRandomNumberGenerator()
        return Challenge(versions: versions, hubID: hubID, nonce: (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) })
    }

    func write(into buffer: inout ByteBuffer) {
        buffer.writeMultipleIntegers(self.versions.lowerBound, self.versions.upperBound)
        buffer.writeUUID(self.hubID)
        buffer.writeBytes(self.nonce)
    }

    static func read(from buffer: inout ByteBuffer) throws -> Challenge {
        let low = try buffer.readWire(UInt16.self, "challenge.minVersion")
        let high = try buffer.readWire(UInt16.self, "challenge.maxVersion")
        guard low <= high else {
            throw WireError(.lengthOutOfRange, field: "challenge.versions", "version range \(low)...\(high) is empty")
        }
        let hubID = try buffer.readUUID("challenge.hubId")
        let nonce = try buffer.readWireBytes(32, "challenge.nonce")
        return Challenge(versions: low...high, hubID: hubID, nonce: nonce)
    }
}

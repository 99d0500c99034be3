import NIOCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// FORWARD, relay → upstream (protocol version 2): a sealed batch another node made, with the
/// relays it passed on its way. The path travels outside the sealed bytes, so the origin's
/// signature still covers exactly what the origin sealed.
///
/// On the wire: `u8 hopCount` (1 … ``maxHops``), `hopCount` node ids (the relays in the
/// order the batch passed them; the sending relay last), then the sealed batch.
public struct ForwardedBatch: Sendable, Hashable {
    /// Most relays a batch may pass. A relay refuses a batch it could not pass on within it
    /// (`hopLimitExceeded`), and any node refuses a batch whose path already holds it
    /// (`loopDetected`): a ring of relays is found on the first batch that goes round it.
    public static let maxHops = 8
    /// Bytes before the sealed batch for `hops` relays.
    public static func pathLength(hops: Int) -> Int { 1 + 16 * hops }

    /// The relays the batch passed, oldest first; never empty, the sender last.
    public var path: [UUID]
    /// The batch, exactly as its origin sealed it.
    public var batch: SealedBatch

    /// A forwarded batch; `path` holds 1 … ``maxHops`` node ids.
    public init(path: [UUID], batch: SealedBatch) {
        precondition((1...Self.maxHops).contains(path.count), "a forwarded batch names 1 … \(Self.maxHops) relays")
        self.path = path
        self.batch = batch
    }

    func write(into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(self.path.count))
        for hop in self.path { buffer.writeUUID(hop) }
        buffer.writeImmutableBuffer(self.batch.bytes)
    }

    static func read(from buffer: inout ByteBuffer) throws -> ForwardedBatch {
        let hops = Int(try buffer.readWire(UInt8.self, "forward.hopCount"))
        guard (1...Self.maxHops).contains(hops) else {
            throw WireError.length("forward.hopCount", hops, max: Self.maxHops, min: 1)
        }
        var path: [UUID] = []
        for _ in 0..<hops { path.append(try buffer.readUUID("forward.path")) }
        let batch = try SealedBatch(parsing: buffer.slice())
        buffer.moveReaderIndex(to: buffer.writerIndex)
        return ForwardedBatch(path: path, batch: batch)
    }
}

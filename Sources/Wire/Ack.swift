import NIOCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// ACK, hub → node: a batch is durably committed. Sent only after the store transaction
/// holding the batch is on disk.
public struct Ack: Sendable, Hashable {
    /// Encoded size: `16 origin, u64 sequence, u8 status, u32 storedRecords`.
    public static let length = 29

    /// What the hub did with the batch.
    public enum Status: UInt8, Sendable, Hashable {
        /// Stored now, for the first time.
        case stored = 1
        /// The hub already held this origin and sequence; nothing new was stored.
        case duplicate = 2
    }

    /// The batch's origin.
    public var origin: UUID
    /// The batch's sequence.
    public var sequence: UInt64
    /// Stored or duplicate.
    public var status: Status
    /// Records stored for the first time (records already held under their id are skipped).
    public var storedRecords: UInt32

    /// Creates an ACK.
    public init(origin: UUID, sequence: UInt64, status: Status, storedRecords: UInt32) {
        self.origin = origin
        self.sequence = sequence
        self.status = status
        self.storedRecords = storedRecords
    }

    func write(into buffer: inout ByteBuffer) {
        buffer.writeUUID(self.origin)
        buffer.writeMultipleIntegers(self.sequence, self.status.rawValue, self.storedRecords)
    }

    static func read(from buffer: inout ByteBuffer) throws -> Ack {
        let origin = try buffer.readUUID("ack.origin")
        guard let (sequence, statusByte, stored) = buffer.readMultipleIntegers(as: (UInt64, UInt8, UInt32).self) else {
            throw WireError.truncated("ack")
        }
        guard let status = Status(rawValue: statusByte) else {
            throw WireError(.lengthOutOfRange, field: "ack.status", "ack status \(statusByte) is not stored (1) or duplicate (2)")
        }
        return Ack(origin: origin, sequence: sequence, status: status, storedRecords: stored)
    }
}

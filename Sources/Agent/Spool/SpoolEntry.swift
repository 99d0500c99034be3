#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOCore
import Wire

/// One entry of a spool segment. On disk: `u32 length` (of type and body), `u32 CRC-32C`
/// (of type and body), `u8 type`, body; big-endian.
///
/// - `header`: starts every segment; `u64 nextSequence`, `u64 nextRecordNumber`, so both
///   survive when every older segment is gone.
/// - `record`: `u64 recordNumber`, `16 origin`, the record's wire encoding. Record numbers
///   increase with every append and are never reused.
/// - `sealed`: `u64 firstRecordNumber`, `u64 lastRecordNumber`, the sealed batch's bytes.
///   The records numbered `first...last` are in this batch (none when `first > last`, as in
///   a segment rewritten after quarantine, whose records already left the queue).
/// - `acknowledged`: `u64 sequence`: the upstream committed this node's own batch of that
///   sequence (the one a `sealed` entry holds).
/// - `base`: no body; starts a segment rewritten after quarantine, which holds everything
///   live, so every older segment is superseded.
/// - `captured`: a source's cursor (`u8` name length, name, `u64` device, inode, offset,
///   line), `u32` count, then per record `u64 recordNumber`, `16 origin`, the record's
///   wire encoding. One entry, one checksum: the records and the position they were read
///   up to become durable together, or not at all.
/// - `cursor`: a source's cursor alone; repeated after each segment's header so it
///   outlives the segment that first held it.
/// - `forwarded`: another node's sealed batch, held by a relay: `u8 count` (at most
///   ``maxPathLength``, a bound for reading; ``Spool/hold(_:path:)`` takes fewer),
///   `count` × 16-byte node ids (the relays it came through, first hop first), then the
///   sealed batch's bytes exactly as received.
/// - `settled`: `16 origin`, `u64 sequence`: the upstream took that `forwarded` batch; it
///   leaves the spool. (Own batches are still settled by `acknowledged`.)
enum SpoolEntry: Sendable {
    case header(nextSequence: UInt64, nextRecordNumber: UInt64)
    case record(number: UInt64, FeedbackRecord)
    case sealed(firstRecordNumber: UInt64, lastRecordNumber: UInt64, SealedBatch)
    case acknowledged(sequence: UInt64)
    case base
    case captured(SourceCursor, [(number: UInt64, record: FeedbackRecord)])
    case cursor(SourceCursor)
    case forwarded(path: [UUID], SealedBatch)
    case settled(BatchKey)

    /// The longest hop path a `forwarded` entry may hold: what is read back is checked
    /// against it; what is written is checked by ``Spool/maxPathLength``, which is smaller.
    static let maxPathLength = 16

    /// Bytes before the body: length, checksum, type.
    static let prefixLength = 9
    /// The largest body (a sealed batch at the protocol's largest frame, with room to spare).
    static let maxBodyLength = 16 << 20

    enum Kind: UInt8 {
        case header = 1
        case record = 2
        case sealed = 3
        case acknowledged = 4
        case base = 5
        case captured = 6
        case cursor = 7
        case forwarded = 8
        case settled = 9
    }

    func write(into buffer: inout ByteBuffer) {
        let start = buffer.writerIndex
        buffer.writeMultipleIntegers(UInt32(0), UInt32(0))
        switch self {
        case .header(let nextSequence, let nextRecordNumber):
            buffer.writeInteger(Kind.header.rawValue)
            buffer.writeMultipleIntegers(nextSequence, nextRecordNumber)
        case .record(let number, let record):
            buffer.writeInteger(Kind.record.rawValue)
            buffer.writeInteger(number)
            _ = withUnsafeBytes(of: record.origin.uuid) { buffer.writeBytes($0) }
            RecordCodec.encode(record, into: &buffer)
        case .sealed(let firstRecordNumber, let lastRecordNumber, let batch):
            buffer.writeInteger(Kind.sealed.rawValue)
            buffer.writeMultipleIntegers(firstRecordNumber, lastRecordNumber)
            buffer.writeImmutableBuffer(batch.bytes)
        case .acknowledged(let sequence):
            buffer.writeInteger(Kind.acknowledged.rawValue)
            buffer.writeInteger(sequence)
        case .base:
            buffer.writeInteger(Kind.base.rawValue)
        case .captured(let cursor, let records):
            buffer.writeInteger(Kind.captured.rawValue)
            cursor.write(into: &buffer)
            buffer.writeInteger(UInt32(records.count))
            for (number, record) in records {
                buffer.writeInteger(number)
                _ = withUnsafeBytes(of: record.origin.uuid) { buffer.writeBytes($0) }
                RecordCodec.encode(record, into: &buffer)
            }
        case .cursor(let cursor):
            buffer.writeInteger(Kind.cursor.rawValue)
            cursor.write(into: &buffer)
        case .forwarded(let path, let batch):
            precondition(path.count <= Self.maxPathLength, "checked by Spool.hold, or read back under this bound")
            buffer.writeInteger(Kind.forwarded.rawValue)
            buffer.writeInteger(UInt8(path.count))
            for node in path { _ = withUnsafeBytes(of: node.uuid) { buffer.writeBytes($0) } }
            buffer.writeImmutableBuffer(batch.bytes)
        case .settled(let key):
            buffer.writeInteger(Kind.settled.rawValue)
            _ = withUnsafeBytes(of: key.origin.uuid) { buffer.writeBytes($0) }
            buffer.writeInteger(key.sequence)
        }
        let length = buffer.writerIndex - start - 8
        let crc = buffer.withUnsafeReadableBytes { raw in
            CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[(start - buffer.readerIndex + 8)...]))
        }
        buffer.setMultipleIntegers(UInt32(length), crc, at: start)
    }

    /// What reading the entry at the front of some bytes found.
    enum ReadResult {
        /// An entry and its size on disk.
        case entry(SpoolEntry, size: Int)
        /// The bytes end inside the entry (a torn write when it is the file's end).
        case incomplete
        /// The entry is damaged: bad checksum, impossible length, unknown type or bad body.
        case corrupt(String)
    }

    static func read(from bytes: UnsafeRawBufferPointer) -> ReadResult {
        guard bytes.count >= Self.prefixLength else { return .incomplete }
        let length = Int(bytes.loadUnaligned(fromByteOffset: 0, as: UInt32.self).bigEndian)
        let crc = bytes.loadUnaligned(fromByteOffset: 4, as: UInt32.self).bigEndian
        guard length >= 1, length <= Self.maxBodyLength + 1 else { return .corrupt("entry length \(length) out of range") }
        guard bytes.count >= 8 + length else { return .incomplete }
        let typed = UnsafeRawBufferPointer(rebasing: bytes[8..<(8 + length)])
        guard CRC32C.checksum(typed) == crc else { return .corrupt("checksum mismatch") }
        var body = ByteBuffer(bytes: typed.dropFirst())
        guard let kind = Kind(rawValue: typed[0]) else { return .corrupt("unknown entry type \(typed[0])") }
        let entry: SpoolEntry?
        switch kind {
        case .header:
            entry = body.readMultipleIntegers(as: (UInt64, UInt64).self).map { .header(nextSequence: $0.0, nextRecordNumber: $0.1) }
        case .record:
            guard let number = body.readInteger(as: UInt64.self), let origin = body.readBytes(length: 16),
                let record = try? RecordCodec.decode(from: &body, origin: Self.uuid(origin))
            else { return .corrupt("unreadable record entry") }
            entry = .record(number: number, record)
        case .sealed:
            guard let (first, last) = body.readMultipleIntegers(as: (UInt64, UInt64).self),
                let batch = try? SealedBatch(parsing: body.slice())
            else { return .corrupt("unreadable sealed-batch entry") }
            body.moveReaderIndex(to: body.writerIndex)
            entry = .sealed(firstRecordNumber: first, lastRecordNumber: last, batch)
        case .acknowledged:
            entry = body.readInteger(as: UInt64.self).map { .acknowledged(sequence: $0) }
        case .base:
            entry = .base
        case .captured:
            guard let cursor = SourceCursor.read(from: &body), let count = body.readInteger(as: UInt32.self) else {
                return .corrupt("unreadable captured entry")
            }
            var records: [(number: UInt64, record: FeedbackRecord)] = []
            for _ in 0..<count {
                guard let number = body.readInteger(as: UInt64.self), let origin = body.readBytes(length: 16),
                    let record = try? RecordCodec.decode(from: &body, origin: Self.uuid(origin))
                else { return .corrupt("unreadable record in a captured entry") }
                records.append((number, record))
            }
            entry = .captured(cursor, records)
        case .cursor:
            entry = SourceCursor.read(from: &body).map { .cursor($0) }
        case .forwarded:
            guard let count = body.readInteger(as: UInt8.self), Int(count) <= Self.maxPathLength else {
                return .corrupt("unreadable forwarded-batch entry (hop path)")
            }
            var path: [UUID] = []
            for _ in 0..<count {
                guard let node = body.readBytes(length: 16) else { return .corrupt("unreadable forwarded-batch entry (hop path)") }
                path.append(Self.uuid(node))
            }
            guard let batch = try? SealedBatch(parsing: body.slice()) else { return .corrupt("unreadable forwarded-batch entry") }
            body.moveReaderIndex(to: body.writerIndex)
            entry = .forwarded(path: path, batch)
        case .settled:
            guard let origin = body.readBytes(length: 16), let sequence = body.readInteger(as: UInt64.self) else {
                return .corrupt("unreadable settled entry")
            }
            entry = .settled(BatchKey(origin: Self.uuid(origin), sequence: sequence))
        }
        guard let entry, body.readableBytes == 0 else { return .corrupt("malformed \(kind) entry") }
        return .entry(entry, size: 8 + length)
    }

    private static func uuid(_ b: [UInt8]) -> UUID {
        UUID(uuid: (b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]))
    }
}

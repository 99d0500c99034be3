import NIOCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The binary encoding of one record (version 1), as it appears inside a batch payload.
///
/// Layout, big-endian: `u8 version=1`, `16 id`, `u8 source`, `u8 scale`, `u8 score`,
/// `i64 occurredAt`, `i64 capturedAt`, then `site`, `channel`, `subject`, `topic`,
/// `survey`, `customer` as `u8 length + UTF-8`, `comment` as `u16 length + UTF-8`, then
/// `u8 attributeCount` and per attribute (sorted by key bytes) `u8 length + key`,
/// `u8 length + value`. The origin is not encoded: it is the batch's origin.
/// See docs/PROTOCOL.md.
public enum RecordCodec {
    /// The record encoding version this implementation writes and reads.
    public static let version: UInt8 = 1
    /// Bytes of the fixed part: version through capturedAt.
    public static let fixedLength = 36
    /// The smallest possible encoded record: fixed part, seven empty strings, no attributes.
    public static let minimumLength = fixedLength + 6 + 2 + 1

    /// Appends `record` to `buffer`. The record must already be valid (see
    /// ``FeedbackRecord/validate(limits:)``); lengths are not checked again here.
    public static func encode(_ record: FeedbackRecord, into buffer: inout ByteBuffer) {
        buffer.writeInteger(Self.version)
        buffer.writeUUID(record.id)
        buffer.writeMultipleIntegers(record.source.rawValue, record.scale.rawValue, record.score)
        buffer.writeMultipleIntegers(record.occurredAt, record.capturedAt)
        buffer.writeString8(record.site)
        buffer.writeString8(record.channel)
        buffer.writeString8(record.subject)
        buffer.writeString8(record.topic)
        buffer.writeString8(record.survey)
        buffer.writeString8(record.customer)
        buffer.writeString16(record.comment)
        buffer.writeInteger(UInt8(truncatingIfNeeded: record.attributes.count))
        if !record.attributes.isEmpty {
            for key in record.attributes.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
                buffer.writeString8(key)
                buffer.writeString8(record.attributes[key] ?? "")
            }
        }
    }

    /// Reads one record from the front of `buffer` and validates it.
    ///
    /// - Parameters:
    ///   - origin: the node id to set as the record's origin (the batch's origin).
    ///   - limits: field bounds; lengths above them are refused before any allocation.
    /// - Throws: ``WireError`` naming the field; the buffer is then left unchanged.
    public static func decode(
        from buffer: inout ByteBuffer,
        origin: UUID,
        limits: RecordLimits = .protocolMaximum
    ) throws -> FeedbackRecord {
        try buffer.readWithCursor { try Self.decode(from: &$0, origin: origin, limits: limits) }
    }

    /// Reads exactly `count` records filling all of `buffer`, validating each.
    ///
    /// - Throws: ``WireError`` naming the field; `invalidRecord` with the record's position
    ///   when bytes are missing or left over.
    public static func decodeAll(
        _ buffer: ByteBuffer,
        count: Int,
        origin: UUID,
        limits: RecordLimits = .protocolMaximum
    ) throws -> [FeedbackRecord] {
        try buffer.withUnsafeReadableBytes { raw in
            var cursor = ByteCursor(raw)
            var records = [FeedbackRecord]()
            records.reserveCapacity(count)
            for index in 0..<count {
                do {
                    records.append(try Self.decode(from: &cursor, origin: origin, limits: limits))
                } catch let error as WireError {
                    throw WireError(error.code, field: error.field, "record \(index + 1) of \(count): \(error.detail)")
                }
            }
            guard cursor.remaining == 0 else {
                throw WireError(.trailingBytes, field: "batch payload", "\(cursor.remaining) bytes after the last record")
            }
            return records
        }
    }

    static func decode(from cursor: inout ByteCursor, origin: UUID, limits: RecordLimits) throws -> FeedbackRecord {
        let version = try cursor.integer(UInt8.self, "record.version")
        guard version == Self.version else {
            throw WireError(.unsupportedVersion, field: "record.version", "record version \(version) is not supported")
        }
        let id = try cursor.uuid("id")
        let sourceByte = try cursor.integer(UInt8.self, "source")
        let scaleByte = try cursor.integer(UInt8.self, "scale")
        let score = try cursor.integer(UInt8.self, "score")
        let occurredAt = try cursor.integer(Int64.self, "occurredAt")
        let capturedAt = try cursor.integer(Int64.self, "capturedAt")
        guard let source = FeedbackRecord.Source(rawValue: sourceByte) else {
            throw WireError.invalid("source", "source \(sourceByte) is not a known source")
        }
        guard let scale = FeedbackRecord.Scale(rawValue: scaleByte) else {
            throw WireError.invalid("scale", "scale \(scaleByte) is not a known scale")
        }
        let site = try cursor.string8("site", max: limits.site)
        let channel = try cursor.string8("channel", max: limits.channel)
        let subject = try cursor.string8("subject", max: limits.subject)
        let topic = try cursor.string8("topic", max: limits.topic)
        let survey = try cursor.string8("survey", max: limits.survey)
        let customer = try cursor.string8("customer", max: limits.customer)
        let comment = try cursor.string16("comment", max: limits.comment)
        let attributeCount = Int(try cursor.integer(UInt8.self, "attributes"))
        guard attributeCount <= limits.attributeCount else {
            throw WireError.length("attributes", attributeCount, max: limits.attributeCount)
        }
        var attributes: [String: String] = [:]
        if attributeCount > 0 {
            attributes = Dictionary(minimumCapacity: attributeCount)
            var previous: String?
            for _ in 0..<attributeCount {
                let key = try cursor.string8("attributes", max: limits.attributeKey)
                guard !key.isEmpty else { throw WireError.invalid("attributes", "an attribute key is empty") }
                let value = try cursor.string8("attributes", max: limits.attributeValue)
                // Sorted, distinct keys make the encoding canonical: one record, one byte string.
                if let previous, !previous.utf8.lexicographicallyPrecedes(key.utf8) {
                    throw WireError.invalid("attributes", "attribute keys are not strictly sorted at \"\(key)\"")
                }
                previous = key
                attributes[key] = value
            }
        }
        let record = FeedbackRecord(
            id: id,
            origin: origin,
            source: source,
            scale: scale,
            score: score,
            occurredAt: occurredAt,
            capturedAt: capturedAt,
            site: site,
            channel: channel,
            subject: subject,
            topic: topic,
            survey: survey,
            customer: customer,
            comment: comment,
            attributes: attributes
        )
        // Every length was checked against `limits` as it was read.
        try record.validateValues(limits: limits)
        return record
    }
}

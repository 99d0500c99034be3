#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension FeedbackRecord {
    /// Checks every rule a stored record must satisfy.
    ///
    /// - Throws: ``WireError`` with code `invalidRecord` and the offending field.
    public func validate(limits: RecordLimits = .protocolMaximum) throws {
        try self.validateValues(limits: limits)
        try self.validateLengths(limits: limits)
    }

    /// The checks a decoder still owes after reading the fields within their length limits:
    /// score, id, timestamps, then control characters in the text fields.
    func validateValues(limits: RecordLimits) throws {
        guard self.scale.range.contains(self.score) else {
            throw WireError.invalid(
                "score",
                "score \(self.score) is outside the \(self.scale.name) scale \(self.scale.range.lowerBound)–\(self.scale.range.upperBound)"
            )
        }
        guard UUIDv7.isVersion7(self.id) else {
            throw WireError.invalid("id", "id \(self.id) is not a version 7 UUID")
        }
        try Self.checkTime(self.occurredAt, "occurredAt", limits)
        try Self.checkTime(self.capturedAt, "capturedAt", limits)
        try self.validateText()
    }

    /// Text fields hold no C0 control (U+0000–U+001F) and no DEL (U+007F); a comment may
    /// hold TAB, LF and CR. Such characters have no meaning in a rating and, printed raw,
    /// drive terminals and break line-based logs and tables (PROTOCOL.md §2.4).
    private func validateText() throws {
        try Self.checkText(self.site, "site")
        try Self.checkText(self.channel, "channel")
        try Self.checkText(self.subject, "subject")
        try Self.checkText(self.topic, "topic")
        try Self.checkText(self.survey, "survey")
        try Self.checkText(self.customer, "customer")
        try Self.checkText(self.comment, "comment", allowingLineBreaks: true)
        // Sorted (for the same error whatever the dictionary's order) only when one is there:
        // this runs for every record a hub opens.
        let clean = self.attributes.allSatisfy {
            Self.firstControl(in: $0.key, allowingLineBreaks: false) == nil && Self.firstControl(in: $0.value, allowingLineBreaks: false) == nil
        }
        guard !clean else { return }
        for key in self.attributes.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            try Self.checkText(key, "attributes", what: "an attribute key")
            try Self.checkText(self.attributes[key] ?? "", "attributes.\(key)")
        }
    }

    private static func checkText(_ value: String, _ field: String, what: String? = nil, allowingLineBreaks: Bool = false) throws {
        guard let control = Self.firstControl(in: value, allowingLineBreaks: allowingLineBreaks) else { return }
        let code = "U+" + String(repeating: "0", count: control < 0x10 ? 3 : 2) + String(control, radix: 16, uppercase: true)
        throw WireError.invalid(
            field,
            "\(what ?? field) holds the control character \(code)"
                + (allowingLineBreaks ? "; a comment may hold only TAB, LF and CR of them" : "; text fields may not hold control characters")
        )
    }

    /// The first C0 control or DEL in `text`: in UTF-8 these are single bytes below 0x80,
    /// so a byte scan finds them exactly.
    private static func firstControl(in text: String, allowingLineBreaks: Bool) -> UInt8? {
        var text = text
        return text.withUTF8 { bytes in
            for byte in bytes where byte < 0x20 || byte == 0x7F {
                if allowingLineBreaks, byte == 0x09 || byte == 0x0A || byte == 0x0D { continue }
                return byte
            }
            return nil
        }
    }

    private func validateLengths(limits: RecordLimits) throws {
        try Self.checkLength(self.site, "site", limits.site)
        try Self.checkLength(self.channel, "channel", limits.channel)
        try Self.checkLength(self.subject, "subject", limits.subject)
        try Self.checkLength(self.topic, "topic", limits.topic)
        try Self.checkLength(self.survey, "survey", limits.survey)
        try Self.checkLength(self.customer, "customer", limits.customer)
        try Self.checkLength(self.comment, "comment", limits.comment)
        guard self.attributes.count <= limits.attributeCount else {
            throw WireError.invalid(
                "attributes",
                "\(self.attributes.count) attributes exceed the limit of \(limits.attributeCount)"
            )
        }
        for (key, value) in self.attributes {
            guard !key.isEmpty else { throw WireError.invalid("attributes", "an attribute key is empty") }
            try Self.checkLength(key, "attributes", limits.attributeKey)
            // The field name is built only on failure: this loop runs for every record opened.
            if value.utf8.count > limits.attributeValue {
                try Self.checkLength(value, "attributes.\(key)", limits.attributeValue)
            }
        }
    }

    private static func checkTime(_ value: Int64, _ field: String, _ limits: RecordLimits) throws {
        guard value >= 0, value <= limits.maxTimestamp else {
            throw WireError.invalid(field, "\(field) \(value) ms is outside 0...\(limits.maxTimestamp)")
        }
    }

    private static func checkLength(_ value: String, _ field: String, _ max: Int) throws {
        let count = value.utf8.count
        guard count <= max else {
            throw WireError.invalid(field, "\(field) is \(count) bytes, more than the limit of \(max)")
        }
    }
}

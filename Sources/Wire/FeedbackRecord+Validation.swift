import Foundation

extension FeedbackRecord {
    /// Checks every rule a stored record must satisfy.
    ///
    /// - Throws: ``WireError`` with code `invalidRecord` and the offending field.
    public func validate(limits: RecordLimits = .protocolMaximum) throws {
        try self.validateValues(limits: limits)
        try self.validateLengths(limits: limits)
    }

    /// The checks a decoder still owes after reading the fields within their length limits.
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

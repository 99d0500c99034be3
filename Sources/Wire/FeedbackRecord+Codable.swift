#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// JSON form of a record, used by the CLIs and HTTP APIs: field names as in the model,
/// `source` and `scale` by name (`"kiosk"`, `"nps"`), times in milliseconds since the epoch.
/// Decoding fills absent text fields with "" and absent attributes with `{}`; it does not
/// validate (call ``FeedbackRecord/validate(limits:)``).
extension FeedbackRecord: Codable {
    enum CodingKeys: String, CodingKey {
        case id, origin, source, scale, score, occurredAt, capturedAt
        case site, channel, subject, topic, survey, customer, comment, attributes
    }

    /// Decodes the JSON form.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let sourceName = try c.decode(String.self, forKey: .source)
        guard let source = Source(name: sourceName) else {
            throw DecodingError.dataCorruptedError(
                forKey: .source,
                in: c,
                debugDescription: "source \"\(sourceName)\" is not one of \(Source.allCases.map(\.name).joined(separator: ", "))"
            )
        }
        let scaleName = try c.decode(String.self, forKey: .scale)
        guard let scale = Scale(name: scaleName) else {
            throw DecodingError.dataCorruptedError(
                forKey: .scale,
                in: c,
                debugDescription: "scale \"\(scaleName)\" is not one of \(Scale.allCases.map(\.name).joined(separator: ", "))"
            )
        }
        self.init(
            id: try c.decode(UUID.self, forKey: .id),
            origin: try c.decode(UUID.self, forKey: .origin),
            source: source,
            scale: scale,
            score: try c.decode(UInt8.self, forKey: .score),
            occurredAt: try c.decode(Int64.self, forKey: .occurredAt),
            capturedAt: try c.decode(Int64.self, forKey: .capturedAt),
            site: try c.decodeIfPresent(String.self, forKey: .site) ?? "",
            channel: try c.decodeIfPresent(String.self, forKey: .channel) ?? "",
            subject: try c.decodeIfPresent(String.self, forKey: .subject) ?? "",
            topic: try c.decodeIfPresent(String.self, forKey: .topic) ?? "",
            survey: try c.decodeIfPresent(String.self, forKey: .survey) ?? "",
            customer: try c.decodeIfPresent(String.self, forKey: .customer) ?? "",
            comment: try c.decodeIfPresent(String.self, forKey: .comment) ?? "",
            attributes: try c.decodeIfPresent([String: String].self, forKey: .attributes) ?? [:]
        )
    }

    /// Encodes the JSON form.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(self.id, forKey: .id)
        try c.encode(self.origin, forKey: .origin)
        try c.encode(self.source.name, forKey: .source)
        try c.encode(self.scale.name, forKey: .scale)
        try c.encode(self.score, forKey: .score)
        try c.encode(self.occurredAt, forKey: .occurredAt)
        try c.encode(self.capturedAt, forKey: .capturedAt)
        try c.encode(self.site, forKey: .site)
        try c.encode(self.channel, forKey: .channel)
        try c.encode(self.subject, forKey: .subject)
        try c.encode(self.topic, forKey: .topic)
        try c.encode(self.survey, forKey: .survey)
        try c.encode(self.customer, forKey: .customer)
        try c.encode(self.comment, forKey: .comment)
        try c.encode(self.attributes, forKey: .attributes)
    }
}

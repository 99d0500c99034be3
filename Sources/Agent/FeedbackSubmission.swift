import Wire

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A rating as a caller submits it, before the agent gives it an id, an origin and a
/// capture time. The JSON form uses the record's field names; `source` and `scale` by name.
public struct FeedbackSubmission: Sendable, Hashable, Codable {
    /// The record id (a version 7 UUID) when the caller chooses it, so a retry is stored
    /// once; the agent makes one when absent.
    public var id: UUID?
    /// How the rating entered the system, e.g. "popup".
    public var source: String
    /// The scale's name, e.g. "nps".
    public var scale: String
    /// The rating on the scale.
    public var score: Int
    /// When the customer gave the rating (ms since the epoch); the capture time when absent.
    public var occurredAt: Int64?
    /// Where.
    public var site: String?
    /// How.
    public var channel: String?
    /// Who served the customer.
    public var subject: String?
    /// What it was about.
    public var topic: String?
    /// The survey or question id.
    public var survey: String?
    /// An opaque customer reference.
    public var customer: String?
    /// Free text.
    public var comment: String?
    /// Extra string pairs.
    public var attributes: [String: String]?

    /// Creates a submission.
    public init(
        source: String,
        scale: String,
        score: Int,
        occurredAt: Int64? = nil,
        site: String? = nil,
        channel: String? = nil,
        subject: String? = nil,
        topic: String? = nil,
        survey: String? = nil,
        customer: String? = nil,
        comment: String? = nil,
        attributes: [String: String]? = nil,
        id: UUID? = nil
    ) {
        self.id = id
        self.source = source
        self.scale = scale
        self.score = score
        self.occurredAt = occurredAt
        self.site = site
        self.channel = channel
        self.subject = subject
        self.topic = topic
        self.survey = survey
        self.customer = customer
        self.comment = comment
        self.attributes = attributes
    }

    /// Makes the validated record; its site must be inside `sites`, the sites this agent is
    /// enrolled for, since the hub refuses a whole batch holding a record outside them.
    ///
    /// - Throws: ``WireError`` with code `invalidRecord` naming the field.
    public func record(
        id: UUID, origin: UUID, capturedAt: Int64, limits: RecordLimits = .protocolMaximum, sites: SiteScope = .any
    ) throws -> FeedbackRecord {
        guard let source = FeedbackRecord.Source(name: self.source) else {
            throw WireError(
                .invalidRecord,
                field: "source",
                "source \"\(self.source)\" is not one of \(FeedbackRecord.Source.allCases.map(\.name).joined(separator: ", "))"
            )
        }
        guard let scale = FeedbackRecord.Scale(name: self.scale) else {
            throw WireError(
                .invalidRecord,
                field: "scale",
                "scale \"\(self.scale)\" is not one of \(FeedbackRecord.Scale.allCases.map(\.name).joined(separator: ", "))"
            )
        }
        guard let score = UInt8(exactly: self.score), scale.range.contains(score) else {
            throw WireError(
                .invalidRecord,
                field: "score",
                "score \(self.score) is outside the \(scale.name) scale \(scale.range.lowerBound)–\(scale.range.upperBound)"
            )
        }
        let record = FeedbackRecord(
            id: id,
            origin: origin,
            source: source,
            scale: scale,
            score: score,
            occurredAt: self.occurredAt ?? capturedAt,
            capturedAt: capturedAt,
            site: self.site ?? "",
            channel: self.channel ?? "",
            subject: self.subject ?? "",
            topic: self.topic ?? "",
            survey: self.survey ?? "",
            customer: self.customer ?? "",
            comment: self.comment ?? "",
            attributes: self.attributes ?? [:]
        )
        try record.validate(limits: limits)
        guard sites.allows(record.site) else {
            throw WireError(
                .invalidRecord, field: "site",
                "site \(String(reflecting: String(record.site.prefix(64)))) is outside this agent's sites (\(sites))"
            )
        }
        return record
    }
}

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One customer rating, as an agent captures it.
///
/// A record is immutable once sealed into a batch. ``id`` is a UUIDv7 made at capture, so
/// records sort by capture time and stores insert them in key order. ``origin`` is the
/// node id of the agent that captured the record; on the wire it is carried once per batch,
/// not per record.
public struct FeedbackRecord: Sendable, Hashable {
    /// Unique, time-ordered record id (UUID version 7).
    public var id: UUID
    /// Node id of the capturing agent.
    public var origin: UUID
    /// How the rating entered the system.
    public var source: Source
    /// The rating scale; ``score`` is checked against it.
    public var scale: Scale
    /// The rating on ``scale``.
    public var score: UInt8
    /// When the customer gave the rating, in milliseconds since the Unix epoch.
    public var occurredAt: Int64
    /// When the agent received the rating, in milliseconds since the Unix epoch.
    public var capturedAt: Int64
    /// Where: branch or location id.
    public var site: String
    /// How: web, app, kiosk, phone, …
    public var channel: String
    /// Who served the customer: an employee id or a queue.
    public var subject: String
    /// What it was about: general, billing, refund, …
    public var topic: String
    /// The survey or question id.
    public var survey: String
    /// An opaque customer reference, empty when unknown.
    public var customer: String
    /// Free text from the customer.
    public var comment: String
    /// A small map of extra string pairs; encoded sorted by key.
    public var attributes: [String: String]

    /// Creates a record. Call ``validate(limits:)`` (sealing does) before trusting it.
    public init(
        id: UUID,
        origin: UUID,
        source: Source,
        scale: Scale,
        score: UInt8,
        occurredAt: Int64,
        capturedAt: Int64,
        site: String = "",
        channel: String = "",
        subject: String = "",
        topic: String = "",
        survey: String = "",
        customer: String = "",
        comment: String = "",
        attributes: [String: String] = [:]
    ) {
        self.id = id
        self.origin = origin
        self.source = source
        self.scale = scale
        self.score = score
        self.occurredAt = occurredAt
        self.capturedAt = capturedAt
        self.site = site
        self.channel = channel
        self.subject = subject
        self.topic = topic
        self.survey = survey
        self.customer = customer
        self.comment = comment
        self.attributes = attributes
    }

    /// Whether the score counts as negative on its scale (a detractor for NPS).
    public var isNegative: Bool { self.scale.isNegative(self.score) }
}

extension FeedbackRecord {
    /// How a rating entered the system. The raw value is the byte on the wire.
    public enum Source: UInt8, Sendable, Hashable, CaseIterable {
        /// An in-product rating popup.
        case popup = 1
        /// A branch kiosk's buttons.
        case kiosk = 2
        /// A post-call survey from a call centre.
        case call = 3
        /// A direct API call.
        case api = 4
        /// A bulk import.
        case `import` = 5

        /// The lower-case name used in configuration and JSON.
        public var name: String {
            switch self {
            case .popup: "popup"
            case .kiosk: "kiosk"
            case .call: "call"
            case .api: "api"
            case .import: "import"
            }
        }

        /// Looks a source up by its lower-case name.
        public init?(name: String) {
            guard let found = Self.allCases.first(where: { $0.name == name }) else { return nil }
            self = found
        }
    }

    /// A rating scale. The raw value is the byte on the wire.
    public enum Scale: UInt8, Sendable, Hashable, CaseIterable {
        /// Net Promoter Score question, 0–10.
        case nps = 1
        /// Customer satisfaction, 1–5.
        case csat = 2
        /// Customer effort, 1–7.
        case ces = 3
        /// Smiley buttons, 1 (very unhappy) – 4 (very happy).
        case smiley = 4
        /// Thumbs down 0 / thumbs up 1.
        case binary = 5

        /// The scores this scale allows.
        public var range: ClosedRange<UInt8> {
            switch self {
            case .nps: 0...10
            case .csat: 1...5
            case .ces: 1...7
            case .smiley: 1...4
            case .binary: 0...1
            }
        }

        /// The highest score that counts as negative: NPS 0–6, CSAT 1–2, CES 1–3,
        /// smiley 1–2, binary 0.
        public var negativeThrough: UInt8 {
            switch self {
            case .nps: 6
            case .csat: 2
            case .ces: 3
            case .smiley: 2
            case .binary: 0
            }
        }

        /// Whether `score` counts as negative on this scale.
        public func isNegative(_ score: UInt8) -> Bool { score <= self.negativeThrough }

        /// The lower-case name used in configuration and JSON.
        public var name: String {
            switch self {
            case .nps: "nps"
            case .csat: "csat"
            case .ces: "ces"
            case .smiley: "smiley"
            case .binary: "binary"
            }
        }

        /// Looks a scale up by its lower-case name.
        public init?(name: String) {
            guard let found = Self.allCases.first(where: { $0.name == name }) else { return nil }
            self = found
        }
    }
}

extension FeedbackRecord {
    /// The attribute a source sets to `"true"` on a rating it judges misuse (a kiosk button
    /// hammered): such a rating is stored but never alerts and never counts in a window.
    public static let misuseAttribute = "misuse"

    /// Whether the source flagged this rating as misuse (``misuseAttribute``).
    public var isFlaggedMisuse: Bool {
        Self.isFlaggedMisuse(self.attributes)
    }

    /// Whether `attributes` flag a rating as misuse: the rule, for records read back from a
    /// store as well as for records in hand.
    public static func isFlaggedMisuse(_ attributes: [String: String]) -> Bool {
        attributes[Self.misuseAttribute] == "true"
    }
}

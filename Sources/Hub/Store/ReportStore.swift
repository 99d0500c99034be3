import Foundation
import Wire

/// One site's ratings, for `feedback-hub report` and dashboards.
public struct SiteSummary: Sendable, Hashable {
    /// The site ("" for records without one).
    public var site: String
    /// Ratings stored, every scale.
    public var responses: Int
    /// Negative ratings (detractors, csat 1–2, …).
    public var negatives: Int
    /// NPS ratings among them.
    public var npsResponses: Int
    /// NPS 9–10.
    public var promoters: Int
    /// NPS 0–6.
    public var detractors: Int

    /// Net Promoter Score: % promoters − % detractors of the NPS responses; nil without any.
    public var nps: Double? {
        guard self.npsResponses > 0 else { return nil }
        return (Double(self.promoters) - Double(self.detractors)) * 100 / Double(self.npsResponses)
    }
}

/// Where the hub's reports read from. Every method blocks; call them off the event loops and
/// off Swift concurrency's threads.
public protocol ReportStore: Sendable {
    /// Ratings per site, most responses first.
    func siteSummaries() throws -> [SiteSummary]
}

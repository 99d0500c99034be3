import Foundation
import GRDB
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

extension SQLiteStore {
    /// Ratings per site, most responses first.
    public func siteSummaries() throws -> [SiteSummary] {
        try self.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT site, COUNT(*) AS responses, SUM(negative) AS negatives,
                        SUM(scale = ?) AS nps, SUM(scale = ? AND score >= 9) AS promoters,
                        SUM(scale = ? AND score <= 6) AS detractors
                    FROM records GROUP BY site ORDER BY responses DESC, site
                    """,
                arguments: [Int(FeedbackRecord.Scale.nps.rawValue), Int(FeedbackRecord.Scale.nps.rawValue), Int(FeedbackRecord.Scale.nps.rawValue)]
            ).map { row in
                SiteSummary(
                    site: row["site"], responses: row["responses"], negatives: row["negatives"], npsResponses: row["nps"],
                    promoters: row["promoters"], detractors: row["detractors"]
                )
            }
        }
    }
}

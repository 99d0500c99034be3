import Foundation
import GRDB
import Wire

extension SQLiteStore: ReportStore {
    /// The text of `column`, whole: from its `COLUMN_bytes` copy (`CAST(column AS BLOB)`)
    /// when the query selected one. Text stored before PROTOCOL.md §2.4 refused control
    /// characters may hold a NUL, where reading it as a C string would cut it short.
    static func text(_ row: Row, _ column: String) -> String {
        if let bytes = row[column + "_bytes"] as Data? { return String(decoding: bytes, as: UTF8.self) }
        return row[column] ?? ""
    }

    /// Ratings per site, most responses first.
    public func siteSummaries() throws -> [SiteSummary] {
        try self.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT site, CAST(site AS BLOB) AS site_bytes, COUNT(*) AS responses, SUM(negative) AS negatives,
                        SUM(scale = ?) AS nps, SUM(scale = ? AND score >= 9) AS promoters,
                        SUM(scale = ? AND score <= 6) AS detractors
                    FROM records GROUP BY site ORDER BY responses DESC, site
                    """,
                arguments: [Int(FeedbackRecord.Scale.nps.rawValue), Int(FeedbackRecord.Scale.nps.rawValue), Int(FeedbackRecord.Scale.nps.rawValue)]
            ).map { row in
                SiteSummary(
                    site: Self.text(row, "site"), responses: row["responses"], negatives: row["negatives"], npsResponses: row["nps"],
                    promoters: row["promoters"], detractors: row["detractors"]
                )
            }
        }
    }
}

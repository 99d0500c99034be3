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

/// What a report asks of the rollups: a range of UTC hours (``RollupCell``, or ``SiteCell``
/// for the site-hour rollups) or of days in the store's report zone (``SiteCell``), the
/// dimensions to group by, equality filters and
/// the caller's site scope.
public struct RollupQuery: Sendable, Hashable {
    /// What ratings can be grouped and filtered by.
    public enum Dimension: String, Sendable, Hashable, CaseIterable {
        case site, subject, channel, topic, source, survey

        /// The dimensions the daily and site-hour rollups keep.
        public static let daily: Set<Dimension> = [.site, .source]
    }

    /// Which rollups to read.
    public enum Resolution: String, Sendable, Hashable {
        /// The hourly rollups: every dimension; `from` and `to` are hours since the epoch.
        case hour
        /// The daily rollups: site and source only; `from` and `to` are local dates in the
        /// report zone, as days since 1970-01-01.
        case day
        /// The site-hour rollups: site and source only; `from` and `to` are hours since the
        /// epoch.
        case siteHour
    }

    /// Which rollups, and the unit of `from` and `to`.
    public var resolution: Resolution
    /// First hour or day, inclusive.
    public var from: Int64
    /// Last hour or day, exclusive.
    public var to: Int64
    /// Dimensions to group by, in the order the rows give their values.
    public var groupBy: [Dimension]
    /// Whether rows keep their hour or day (to fold into time buckets) or sum over the range.
    public var byTime: Bool
    /// Only ratings whose dimension has this value (a source by its name).
    public var filters: [Dimension: String]
    /// Only ratings of these sites.
    public var scope: SiteScope
    /// Most rows the answer may hold; a store throws ``RollupLimitExceeded`` rather than
    /// gather more (memory stays bounded whatever is asked).
    public var maxRows = 1_000_000

    /// Creates a query.
    public init(
        _ resolution: Resolution = .hour, from: Int64, to: Int64, groupBy: [Dimension] = [], byTime: Bool = false,
        filters: [Dimension: String] = [:], scope: SiteScope = .any
    ) {
        self.resolution = resolution
        self.from = from
        self.to = to
        self.groupBy = groupBy
        self.byTime = byTime
        self.filters = filters
        self.scope = scope
    }

    /// Whether the daily and site-hour rollups can answer: they keep site and source only.
    public var fitsDaily: Bool {
        Set(self.groupBy).isSubset(of: Dimension.daily) && Set(self.filters.keys).isSubset(of: Dimension.daily)
    }

    /// The table, the time column and the SQL column names of the grouping, for a store's
    /// query (names from the closed enums, never from a request).
    var table: (name: String, time: String) {
        switch self.resolution {
        case .hour: ("rollups", "hour")
        case .day: ("daily_rollups", "day")
        case .siteHour: ("site_hours", "hour")
        }
    }
}

/// A rollup query whose answer would hold more than ``RollupQuery/maxRows`` rows.
public struct RollupLimitExceeded: Error, Sendable, CustomStringConvertible {
    /// The limit.
    public var maxRows: Int

    public var description: String { "the answer would hold more than \(self.maxRows) rollup rows" }
}

/// Ratings of one score on one scale for one group (and hour or day, when asked), summed.
public struct RollupRow: Sendable, Hashable {
    /// The group's values, in ``RollupQuery/groupBy`` order (a source by its name).
    public var group: [String]
    /// The hour or day, when the query kept them.
    public var time: Int64?
    /// The scale's raw value.
    public var scale: UInt8
    /// The score.
    public var score: UInt8
    /// Whether these ratings were flagged as misuse.
    public var misuse: Bool
    /// How many.
    public var count: Int64

    /// Creates a row.
    public init(group: [String], time: Int64?, scale: UInt8, score: UInt8, misuse: Bool, count: Int64) {
        self.group = group
        self.time = time
        self.scale = scale
        self.score = score
        self.misuse = misuse
        self.count = count
    }
}

/// Which individual ratings to list, newest first: a period, a site, only negative ones,
/// only those with a comment, within the caller's sites, after a cursor.
public struct RatingQuery: Sendable, Hashable {
    /// Occurred at or after, ms since the epoch.
    public var from: Int64
    /// Occurred before.
    public var to: Int64
    /// Only this site.
    public var site: String?
    /// Only negative ratings (detractors, CSAT 1–2, …).
    public var negativeOnly: Bool
    /// Only ratings with a comment.
    public var withComment: Bool
    /// Only ratings of these sites.
    public var scope: SiteScope
    /// Most ratings to return.
    public var limit: Int
    /// Only ratings listed after this one (its time and id): the next page.
    public var after: Cursor?

    /// Where a page ended: the last rating's time and id.
    public struct Cursor: Sendable, Hashable {
        /// Its `occurredAt`.
        public var occurredAt: Int64
        /// Its id.
        public var id: UUID

        /// Creates a cursor.
        public init(occurredAt: Int64, id: UUID) {
            self.occurredAt = occurredAt
            self.id = id
        }
    }

    /// Creates a query.
    public init(
        from: Int64, to: Int64, site: String? = nil, negativeOnly: Bool = false, withComment: Bool = false, scope: SiteScope = .any,
        limit: Int = 100, after: Cursor? = nil
    ) {
        self.from = from
        self.to = to
        self.site = site
        self.negativeOnly = negativeOnly
        self.withComment = withComment
        self.scope = scope
        self.limit = limit
        self.after = after
    }
}

/// Where the hub's reports read from. Every method blocks; call them off the event loops and
/// off Swift concurrency's threads.
public protocol ReportStore: Sendable {
    /// The rollup rows `query` selects, summed over what it does not group by. The rollups
    /// are added to in the transaction that stores each rating, so they count every stored
    /// rating once.
    ///
    /// - Throws: ``StoreError`` for a daily query that groups or filters by a dimension the
    ///   daily rollups do not keep (``RollupQuery/fitsDaily``).
    func rollups(_ query: RollupQuery) throws -> [RollupRow]

    /// The zone whose dates the daily rollups count (`reports.timeZone`).
    var reportZone: TimeZone { get }

    /// Individual ratings, newest first (time, then id): a site's negative ratings read
    /// an index made for them (`records_negative_by_site`), any other listing the site or
    /// time index.
    func ratings(_ query: RatingQuery) throws -> [FeedbackRecord]
}

extension ReportStore {
    /// Every rating stored, per site, most responses first, misuse included (what
    /// `feedback-hub report` prints): read from the daily rollups, never the ratings.
    public func siteSummaries() throws -> [SiteSummary] {
        var sites: [String: SiteSummary] = [:]
        for row in try self.rollups(RollupQuery(.day, from: Int64(Int32.min), to: Int64(Int32.max), groupBy: [.site])) {
            let site = row.group.first ?? ""
            var summary = sites[site] ?? SiteSummary(site: site, responses: 0, negatives: 0, npsResponses: 0, promoters: 0, detractors: 0)
            let count = Int(row.count)
            summary.responses += count
            guard let scale = FeedbackRecord.Scale(rawValue: row.scale) else { continue }
            if scale.isNegative(row.score) { summary.negatives += count }
            if scale == .nps {
                summary.npsResponses += count
                if row.score >= 9 { summary.promoters += count }
                if row.score <= 6 { summary.detractors += count }
            }
            sites[site] = summary
        }
        return sites.values.sorted { ($0.responses, $1.site) > ($1.responses, $0.site) }
    }
}

import Foundation
import Wire

/// One cell of the rating rollups: ratings of one score on one scale, in one UTC hour, for
/// one combination of site, subject, channel, topic, source and survey, misuse apart. The
/// stores keep a count per cell, added to in the transaction that stores the ratings, so a
/// report reads cells, never the ratings themselves.
public struct RollupCell: Sendable, Hashable {
    /// Hours since the epoch (UTC) of the rating's `occurredAt`.
    public var hour: Int64
    /// The site.
    public var site: String
    /// The subject.
    public var subject: String
    /// The channel.
    public var channel: String
    /// The topic.
    public var topic: String
    /// The source's raw value.
    public var source: UInt8
    /// The survey.
    public var survey: String
    /// The scale's raw value.
    public var scale: UInt8
    /// The score.
    public var score: UInt8
    /// Whether the source flagged the ratings as misuse (left out of statistics, counted).
    public var misuse: Bool

    /// The cell of `record`.
    public init(_ record: FeedbackRecord) {
        self.init(
            hour: Self.hour(of: record.occurredAt), site: record.site, subject: record.subject, channel: record.channel, topic: record.topic,
            source: record.source.rawValue, survey: record.survey, scale: record.scale.rawValue, score: record.score,
            misuse: record.isFlaggedMisuse
        )
    }

    /// A cell from its parts.
    public init(
        hour: Int64, site: String, subject: String, channel: String, topic: String, source: UInt8, survey: String, scale: UInt8, score: UInt8,
        misuse: Bool
    ) {
        self.hour = hour
        self.site = site
        self.subject = subject
        self.channel = channel
        self.topic = topic
        self.source = source
        self.survey = survey
        self.scale = scale
        self.score = score
        self.misuse = misuse
    }

    /// Milliseconds in an hour.
    public static let hourMilliseconds: Int64 = 3_600_000

    /// Hashes a text's UTF-8 bytes (in one call where the string stores them contiguously).
    static func hash(_ text: String, into hasher: inout Hasher) {
        hasher.combine(text.utf8.count)
        let hashed: Void? = text.utf8.withContiguousStorageIfAvailable { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
        if hashed == nil {
            for byte in text.utf8 { hasher.combine(byte) }
        }
    }

    /// Cells are equal when their texts are the same bytes, as the stores compare them, not
    /// when Swift deems them canonically equivalent ("é" and "e" + accent): two sites that
    /// differ so are two sites to the records, the scopes and the filters.
    public static func == (a: RollupCell, b: RollupCell) -> Bool {
        a.hour == b.hour && a.source == b.source && a.scale == b.scale && a.score == b.score && a.misuse == b.misuse
            && a.site.utf8.elementsEqual(b.site.utf8) && a.subject.utf8.elementsEqual(b.subject.utf8)
            && a.channel.utf8.elementsEqual(b.channel.utf8) && a.topic.utf8.elementsEqual(b.topic.utf8)
            && a.survey.utf8.elementsEqual(b.survey.utf8)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(self.hour)
        for text in [self.site, self.subject, self.channel, self.topic, self.survey] { Self.hash(text, into: &hasher) }
        hasher.combine(self.source)
        hasher.combine(self.scale)
        hasher.combine(self.score)
        hasher.combine(self.misuse)
    }

    /// The UTC hour holding `milliseconds` since the epoch (rounded down, before 1970 too).
    public static func hour(of milliseconds: Int64) -> Int64 {
        milliseconds >= 0 ? milliseconds / Self.hourMilliseconds : (milliseconds - Self.hourMilliseconds + 1) / Self.hourMilliseconds
    }
}

/// One row of the site rollups: ratings on one scale at one site from one source, misuse
/// apart, in one local day in the store's report zone (the daily rollups) or in one UTC hour
/// (the site-hour rollups), counted per score in one row (``ScoreCounts``). Reports grouped
/// and filtered by site and source read these: a day or an hour of a site is a row per
/// source and scale however many subjects, topics, channels and scores its ratings name.
public struct SiteCell: Sendable, Hashable {
    /// Days since 1970-01-01 of the ratings' local date in the report zone (daily rollups),
    /// or hours since the epoch (site-hour rollups).
    public var time: Int64
    /// The site.
    public var site: String
    /// The source's raw value.
    public var source: UInt8
    /// The scale's raw value.
    public var scale: UInt8
    /// Whether the source flagged the ratings as misuse.
    public var misuse: Bool

    /// Milliseconds in a day.
    public static let dayMilliseconds: Int64 = 86_400_000

    /// A cell from its parts.
    public init(time: Int64, site: String, source: UInt8, scale: UInt8, misuse: Bool) {
        self.time = time
        self.site = site
        self.source = source
        self.scale = scale
        self.misuse = misuse
    }

    /// Equal when the sites are the same bytes (see ``RollupCell``).
    public static func == (a: SiteCell, b: SiteCell) -> Bool {
        a.time == b.time && a.source == b.source && a.scale == b.scale && a.misuse == b.misuse && a.site.utf8.elementsEqual(b.site.utf8)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(self.time)
        RollupCell.hash(self.site, into: &hasher)
        hasher.combine(self.source)
        hasher.combine(self.scale)
        hasher.combine(self.misuse)
    }
}

/// Ratings per score, 0 through 10 (every score of every scale: NPS's 0–10 is the widest),
/// in one value: a daily rollup row's counts.
public struct ScoreCounts: Sendable, Hashable {
    /// The highest score counted; the daily rollups have one column per score up to it.
    public static let maxScore: UInt8 = 10
    /// The column names of the daily rollups' counts, score 0 first.
    public static let columns = (0...Int(maxScore)).map { "s\($0)" }

    /// The counts, score 0 first.
    public private(set) var counts = [Int64](repeating: 0, count: Int(maxScore) + 1)

    /// None counted.
    public init() {}

    /// Adds `count` ratings of `score`; a score beyond ``maxScore`` (no valid rating has
    /// one) is not counted.
    public mutating func add(_ count: Int64, score: UInt8) {
        guard score <= Self.maxScore else { return }
        self.counts[Int(score)] += count
    }

    /// Adds, for every score, the count `count(score)` gives (a daily rollup row's columns).
    @inline(__always)
    public mutating func add(_ count: (UInt8) -> Int64) {
        for score in 0...Self.maxScore { self.counts[Int(score)] += count(score) }
    }
}

/// Rollup counts gathered in memory for one transaction: many ratings of one cell become
/// one upsert, in the hourly rollups, the daily ones and the site-hour ones.
public struct RollupCounts: Sendable {
    /// Ratings per hourly cell.
    public private(set) var cells: [RollupCell: Int64] = [:]
    /// Ratings of the hours that a local midnight may split (the zone's offset not a whole
    /// number of hours), per daily cell: counted one by one. Every other hour's ratings
    /// share one local date and are summed from ``cells`` when ``days`` is read.
    private var splitDays: [SiteCell: ScoreCounts] = [:]
    /// The zone whose dates the daily cells count.
    public let zone: TimeZone
    /// The zone's offset from UTC at the first instant of each hour seen, in seconds: one
    /// lookup serves every rating of the hour, and the commit and a recount agree on it.
    private var offsets: [Int64: Int] = [:]

    /// Nothing counted; daily cells by the dates of `zone`.
    public init(zone: TimeZone) {
        self.zone = zone
    }

    /// Counts `record`.
    public mutating func add(_ record: FeedbackRecord) {
        self.add(RollupCell(record), occurredAt: record.occurredAt)
    }

    /// Counts one rating of `cell` that occurred at `occurredAt` (ms since the epoch): one
    /// dictionary update, the daily and site-hour cells being sums of the hourly ones.
    public mutating func add(_ cell: RollupCell, occurredAt: Int64) {
        self.cells[cell, default: 0] += 1
        if self.offset(ofHour: cell.hour) % 3_600 != 0 {
            let day = SiteCell(
                time: self.day(of: occurredAt, hour: cell.hour), site: cell.site, source: cell.source, scale: cell.scale, misuse: cell.misuse
            )
            self.splitDays[day, default: ScoreCounts()].add(1, score: cell.score)
        }
    }

    /// Ratings per daily cell, by score.
    public var days: [SiteCell: ScoreCounts] {
        var days = self.splitDays
        for (cell, count) in self.cells {
            guard let offset = self.offsets[cell.hour], offset % 3_600 == 0 else { continue }
            let day = Self.day(of: cell.hour * RollupCell.hourMilliseconds, offset: offset)
            days[SiteCell(time: day, site: cell.site, source: cell.source, scale: cell.scale, misuse: cell.misuse), default: ScoreCounts()]
                .add(count, score: cell.score)
        }
        return days
    }

    /// Ratings per site-hour cell, by score.
    public var siteHours: [SiteCell: ScoreCounts] {
        var hours: [SiteCell: ScoreCounts] = [:]
        for (cell, count) in self.cells {
            hours[SiteCell(time: cell.hour, site: cell.site, source: cell.source, scale: cell.scale, misuse: cell.misuse), default: ScoreCounts()]
                .add(count, score: cell.score)
        }
        return hours
    }

    /// The local date (days since 1970-01-01) in `zone` of the first instant of UTC hour
    /// `hour`: the date a recount from the hourly rollups gives the hour's ratings.
    public static func day(ofHour hour: Int64, in zone: TimeZone) -> Int64 {
        var counts = RollupCounts(zone: zone)
        return counts.day(of: hour * RollupCell.hourMilliseconds, hour: hour)
    }

    /// The local date, as days since 1970-01-01, of `milliseconds` in ``zone``.
    mutating func day(of milliseconds: Int64, hour: Int64) -> Int64 {
        Self.day(of: milliseconds, offset: self.offset(ofHour: hour))
    }

    /// The zone's offset from UTC at the first instant of UTC hour `hour`, in seconds.
    private mutating func offset(ofHour hour: Int64) -> Int {
        if let known = self.offsets[hour] { return known }
        let offset = self.zone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(hour) * 3_600))
        self.offsets[hour] = offset
        return offset
    }

    /// The local date, as days since 1970-01-01, of `milliseconds` at `offset` seconds from UTC.
    private static func day(of milliseconds: Int64, offset: Int) -> Int64 {
        let local = milliseconds + Int64(offset) * 1000
        return local >= 0 ? local / SiteCell.dayMilliseconds : (local - SiteCell.dayMilliseconds + 1) / SiteCell.dayMilliseconds
    }

    /// The hourly cells in one fixed order (every column, texts by their bytes as the
    /// stores compare them), so concurrent transactions lock the same rows in the same order
    /// and never deadlock. (Swift's `<` on strings would call two canonically equivalent
    /// sites equal and leave their order to the dictionary's per-process seed.)
    public var sorted: [(cell: RollupCell, count: Int64)] {
        self.cells.map { ($0.key, $0.value) }.sorted { a, b in
            let (x, y) = (a.cell, b.cell)
            if x.hour != y.hour { return x.hour < y.hour }
            var order = Self.compare(x.site, y.site)
            if order == 0 { order = Self.compare(x.subject, y.subject) }
            if order == 0 { order = Self.compare(x.channel, y.channel) }
            if order == 0 { order = Self.compare(x.topic, y.topic) }
            if order != 0 { return order < 0 }
            if x.source != y.source { return x.source < y.source }
            order = Self.compare(x.survey, y.survey)
            if order != 0 { return order < 0 }
            return (x.scale, x.score, x.misuse ? 1 : 0) < (y.scale, y.score, y.misuse ? 1 : 0)
        }
    }

    /// The daily cells in one fixed order, for the same reason.
    public var sortedDays: [(cell: SiteCell, counts: ScoreCounts)] { Self.sorted(self.days) }

    /// The site-hour cells in one fixed order, for the same reason.
    public var sortedSiteHours: [(cell: SiteCell, counts: ScoreCounts)] { Self.sorted(self.siteHours) }

    private static func sorted(_ cells: [SiteCell: ScoreCounts]) -> [(cell: SiteCell, counts: ScoreCounts)] {
        cells.map { ($0.key, $0.value) }.sorted { a, b in
            let (x, y) = (a.cell, b.cell)
            if x.time != y.time { return x.time < y.time }
            let order = Self.compare(x.site, y.site)
            if order != 0 { return order < 0 }
            return (x.source, x.scale, x.misuse ? 1 : 0) < (y.source, y.scale, y.misuse ? 1 : 0)
        }
    }

    /// Negative, zero or positive as `a`'s UTF-8 bytes sort before, equal or after `b`'s
    /// (a commit sorts thousands of cells: no allocation, one `memcmp`).
    static func compare(_ a: String, _ b: String) -> Int {
        var a = a
        var b = b
        return a.withUTF8 { x in
            b.withUTF8 { y in
                let common = min(x.count, y.count)
                if common > 0, let p = x.baseAddress, let q = y.baseAddress {
                    let order = memcmp(p, q, common)
                    if order != 0 { return Int(order) }
                }
                return x.count - y.count
            }
        }
    }
}

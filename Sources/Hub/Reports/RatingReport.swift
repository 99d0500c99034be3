import Dispatch
import Foundation
import Synchronization
import Wire

/// A ratings report: statistics per group (site, subject, …) for a period, beside the
/// previous period of the same length, optionally split into time buckets in a time zone.
/// Read from the rollups only (``ReportStore/rollups(_:)``).
public struct RatingReport: Sendable {
    /// How to split a period.
    public enum Bucket: String, Sendable, Hashable, CaseIterable {
        case hour, day, week, month
    }

    /// What is asked.
    public struct Request: Sendable, Hashable {
        /// Start, inclusive (rounded down to its UTC hour).
        public var from: Date
        /// End, exclusive (rounded up to an hour).
        public var to: Date
        /// The zone of the buckets (and of dates given without a time).
        public var timeZone: TimeZone
        /// Dimensions to group by.
        public var groupBy: [RollupQuery.Dimension]
        /// Time buckets within each group; nil for none.
        public var bucket: Bucket?
        /// Equality filters.
        public var filters: [RollupQuery.Dimension: String]
        /// The caller's sites.
        public var scope: SiteScope
        /// Whether the previous period is read too; without it, its statistics are empty (a
        /// chart that shows only this period reads half as much).
        public var comparesPrevious: Bool

        /// Creates a request.
        public init(
            from: Date, to: Date, timeZone: TimeZone, groupBy: [RollupQuery.Dimension] = [], bucket: Bucket? = nil,
            filters: [RollupQuery.Dimension: String] = [:], scope: SiteScope = .any, comparesPrevious: Bool = true
        ) {
            self.comparesPrevious = comparesPrevious
            self.from = from
            self.to = to
            self.timeZone = timeZone
            self.groupBy = groupBy
            self.bucket = bucket
            self.filters = filters
            self.scope = scope
        }

        /// The UTC hours of the period.
        var hours: (from: Int64, to: Int64) {
            let from = RollupCell.hour(of: Int64((self.from.timeIntervalSince1970 * 1000).rounded(.down)))
            let end = Int64((self.to.timeIntervalSince1970 * 1000).rounded(.up))
            let to = RollupCell.hour(of: end - 1) + 1
            return (from, max(to, from + 1))
        }
    }

    /// One group: its values, its statistics now and in the previous period, and its buckets.
    public struct Group: Sendable, Hashable {
        /// The group's values, in ``Request/groupBy`` order.
        public var key: [String]
        /// This period.
        public var current: RatingStatistics
        /// The previous period of the same length.
        public var previous: RatingStatistics
        /// Each bucket's start and statistics, oldest first (only buckets with ratings).
        public var buckets: [(start: Date, statistics: RatingStatistics)]

        public static func == (lhs: Group, rhs: Group) -> Bool {
            lhs.key == rhs.key && lhs.current == rhs.current && lhs.previous == rhs.previous
                && lhs.buckets.map(\.start) == rhs.buckets.map(\.start) && lhs.buckets.map(\.statistics) == rhs.buckets.map(\.statistics)
        }

        public func hash(into hasher: inout Hasher) {
            hasher.combine(self.key)
        }
    }

    /// What was asked, hours rounded.
    public var request: Request
    /// The period actually covered: whole UTC hours.
    public var period: (from: Date, to: Date)
    /// The previous period: as long, just before.
    public var previousPeriod: (from: Date, to: Date)
    /// Groups, most responses first.
    public var groups: [Group]
    /// Every group together.
    public var total: (current: RatingStatistics, previous: RatingStatistics)

    /// Most groups a report holds; a request over more must be narrowed.
    public static let maxGroups = 10_000
    /// Most (group, bucket) cells.
    public static let maxCells = 200_000
    /// The longest period, in hours (three years).
    public static let maxHours: Int64 = 3 * 366 * 24

    /// Why a report cannot be made as asked.
    public struct Refusal: Error, Sendable, Hashable, CustomStringConvertible {
        /// The request parameter at fault.
        public var field: String
        /// What is wrong.
        public var description: String
    }

    /// Reads the rollups of the request's period and the one before it, and folds them.
    ///
    /// A report grouped and filtered by site and source only reads the site rollups: in the
    /// store's report zone and without hourly buckets, the daily ones for the whole local
    /// days of its period and the site-hour ones for the hours before the first and after
    /// the last; otherwise the site-hour ones alone (``Plan``). Any other report reads the
    /// hourly rollups.
    ///
    /// - Throws: ``Refusal`` for a period too long or too many groups; the store's errors.
    public static func make(_ request: Request, from store: any ReportStore) throws -> RatingReport {
        let hours = request.hours
        let length = hours.to - hours.from
        guard length <= Self.maxHours else {
            throw Refusal(field: "from", description: "the period is longer than three years; ask for less")
        }
        if let bucket = request.bucket {
            // Refused before anything is read: at least one bucket per group.
            let hoursPerBucket: Int64 =
                switch bucket {
                case .hour: 1
                case .day: 24
                case .week: 168
                case .month: 672
                }
            guard length / hoursPerBucket <= Int64(Self.maxCells) else {
                throw Refusal(field: "bucket", description: "more than \(Self.maxCells) buckets; use a longer bucket or a shorter period")
            }
        }
        let plan = Plan(request: request, reportZone: store.reportZone)
        // The two periods are read at once, on two threads: the report answers in the time
        // of the longer read, not of both.
        let reads = Mutex<[Int: Result<[(RollupQuery.Resolution, [RollupRow])], any Error>]>([:])
        DispatchQueue.concurrentPerform(iterations: request.comparesPrevious ? 2 : 1) { index in
            let result = Result {
                index == 0
                    ? try plan.rows(hours.from, hours.to, byTime: request.bucket != nil, store)
                    : try plan.rows(hours.from - length, hours.from, byTime: false, store)
            }
            reads.withLock { $0[index] = result }
        }
        let (current, previous): ([(RollupQuery.Resolution, [RollupRow])], [(RollupQuery.Resolution, [RollupRow])])
        do {
            (current, previous) = try reads.withLock { (try $0[0]?.get() ?? [], try $0[1]?.get() ?? []) }
        } catch let error as RollupLimitExceeded {
            throw Refusal(
                field: "groupBy", description: "\(error.description); filter, group by less or ask for a shorter period or longer buckets"
            )
        }
        var tallies: [[String]: Tally] = [:]
        var bucketTallies: [[String]: [Date: Tally]] = [:]
        var totalNow = Tally()
        var totalBefore = Tally()
        var bucketing = request.bucket.map { Bucketing($0, timeZone: request.timeZone) }
        for (resolution, rows) in current {
            for row in rows {
                tallies[row.group, default: Tally()].add(row)
                totalNow.add(row)
                if let time = row.time, let start = bucketing?.start(of: time, resolution) {
                    bucketTallies[row.group, default: [:]][start, default: Tally()].add(row)
                }
            }
        }
        for row in previous.flatMap({ $0.1 }) {
            // Groups of the previous period alone are listed too: a site that went quiet.
            tallies[row.group, default: Tally()].addPrevious(row)
            totalBefore.add(row)
        }
        guard tallies.count <= Self.maxGroups else {
            throw Refusal(field: "groupBy", description: "\(tallies.count) groups, more than \(Self.maxGroups); filter or group by less")
        }
        let cells = bucketTallies.values.reduce(0) { $0 + $1.count }
        guard cells <= Self.maxCells else {
            throw Refusal(field: "bucket", description: "\(cells) group buckets, more than \(Self.maxCells); use a longer bucket or a shorter period")
        }
        let groups = tallies.map { key, tally in
            Group(
                key: key, current: tally.statistics, previous: tally.previousStatistics,
                buckets: (bucketTallies[key] ?? [:]).sorted { $0.key < $1.key }.map { ($0.key, $0.value.statistics) }
            )
        }.sorted { ($0.current.responses, $1.key.joined(separator: "\u{0}")) > ($1.current.responses, $0.key.joined(separator: "\u{0}")) }
        let hour = Double(RollupCell.hourMilliseconds) / 1000
        let from = Date(timeIntervalSince1970: Double(hours.from) * hour)
        let to = Date(timeIntervalSince1970: Double(hours.to) * hour)
        return RatingReport(
            request: request, period: (from, to), previousPeriod: (Date(timeIntervalSince1970: Double(hours.from - length) * hour), from),
            groups: groups, total: (totalNow.statistics, totalBefore.statistics)
        )
    }

    /// Which rollups answer a range of hours.
    struct Plan {
        let request: Request
        let reportZone: TimeZone
        let calendar: Calendar

        init(request: Request, reportZone: TimeZone) {
            self.request = request
            self.reportZone = reportZone
            var calendar = Calendar(identifier: .iso8601)
            calendar.timeZone = reportZone
            self.calendar = calendar
        }

        /// Whether the request groups and filters by site and source only, what the daily
        /// and site-hour rollups keep.
        var fitsSiteRollups: Bool {
            RollupQuery(from: 0, to: 0, groupBy: self.request.groupBy, filters: self.request.filters).fitsDaily
        }

        /// Whether the daily rollups may serve this request at all.
        var usesDays: Bool {
            self.fitsSiteRollups && self.request.bucket != .hour && Self.same(self.request.timeZone, self.reportZone)
        }

        /// Two zones that keep the same dates: the same identifier, or both UTC under two names.
        static func same(_ a: TimeZone, _ b: TimeZone) -> Bool {
            if a.identifier == b.identifier { return true }
            let now = Date()
            return a.secondsFromGMT(for: now) == 0 && b.secondsFromGMT(for: now) == 0 && a.nextDaylightSavingTimeTransition(after: now) == nil
                && b.nextDaylightSavingTimeTransition(after: now) == nil
        }

        /// The rows of hours [`from`, `to`), each part with the resolution its times are in.
        func rows(_ from: Int64, _ to: Int64, byTime: Bool, _ store: any ReportStore) throws -> [(RollupQuery.Resolution, [RollupRow])] {
            func query(_ resolution: RollupQuery.Resolution, _ start: Int64, _ end: Int64) throws -> (RollupQuery.Resolution, [RollupRow]) {
                let query = RollupQuery(
                    resolution, from: start, to: end, groupBy: self.request.groupBy, byTime: byTime, filters: self.request.filters,
                    scope: self.request.scope
                )
                return (resolution, try store.rollups(query))
            }
            let hour = RollupCell.hourMilliseconds
            // Hours by site and source come from the site-hour rollups, any other grouping
            // or filter from the hourly ones.
            let hours: RollupQuery.Resolution = self.fitsSiteRollups ? .siteHour : .hour
            guard self.usesDays else { return [try query(hours, from, to)] }
            var firstDay = self.day(containing: from * hour)
            if self.midnight(of: firstDay) < from * hour { firstDay += 1 }
            let lastDay = self.day(containing: to * hour)
            guard firstDay < lastDay else { return [try query(hours, from, to)] }
            // Hours before the first whole day and after the last. A midnight that is not on
            // a whole UTC hour (a +05:30 zone) cannot be met by hourly cells without losing
            // or doubling the half hour beside it: then the hourly rollups answer alone.
            let (first, last) = (self.midnight(of: firstDay), self.midnight(of: lastDay))
            guard first % hour == 0, last % hour == 0 else { return [try query(hours, from, to)] }
            var parts = [try query(.day, firstDay, lastDay)]
            if from < first / hour { parts.append(try query(hours, from, first / hour)) }
            if last / hour < to { parts.append(try query(hours, last / hour, to)) }
            return parts
        }

        /// The local date (days since 1970-01-01) holding `milliseconds`, in the report zone.
        func day(containing milliseconds: Int64) -> Int64 {
            let offset = Int64(self.reportZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(milliseconds) / 1000))) * 1000
            let local = milliseconds + offset
            return local >= 0 ? local / SiteCell.dayMilliseconds : (local - SiteCell.dayMilliseconds + 1) / SiteCell.dayMilliseconds
        }

        /// The first instant (ms) of local date `day` in the report zone.
        func midnight(of day: Int64) -> Int64 {
            Int64((Bucketing.firstInstant(ofDay: day, calendar: self.calendar).timeIntervalSince1970 * 1000).rounded())
        }
    }

    /// Counts per scale and score, misuse apart.
    struct Tally {
        var counts: [RatingStatistics.ScaleScore: Int64] = [:]
        var misuse: Int64 = 0
        var previousCounts: [RatingStatistics.ScaleScore: Int64] = [:]
        var previousMisuse: Int64 = 0

        mutating func add(_ row: RollupRow) {
            if row.misuse {
                self.misuse += row.count
            } else {
                self.counts[.init(scale: row.scale, score: row.score), default: 0] += row.count
            }
        }

        mutating func addPrevious(_ row: RollupRow) {
            if row.misuse {
                self.previousMisuse += row.count
            } else {
                self.previousCounts[.init(scale: row.scale, score: row.score), default: 0] += row.count
            }
        }

        var statistics: RatingStatistics { RatingStatistics(counts: self.counts, misuse: self.misuse) }
        var previousStatistics: RatingStatistics { RatingStatistics(counts: self.previousCounts, misuse: self.previousMisuse) }
    }

    /// The start of the bucket holding each UTC hour or local day, in the request's zone,
    /// remembered per hour and day.
    struct Bucketing {
        let bucket: Bucket
        let calendar: Calendar
        var starts: [Int64: Date] = [:]
        var dayStarts: [Int64: Date] = [:]

        init(_ bucket: Bucket, timeZone: TimeZone) {
            self.bucket = bucket
            var calendar = Calendar(identifier: .iso8601)
            calendar.timeZone = timeZone
            self.calendar = calendar
        }

        mutating func start(of time: Int64, _ resolution: RollupQuery.Resolution) -> Date {
            switch resolution {
            case .hour, .siteHour:
                if let known = self.starts[time] { return known }
                let start = self.start(containing: Date(timeIntervalSince1970: Double(time) * 3_600))
                self.starts[time] = start
                return start
            case .day:
                if let known = self.dayStarts[time] { return known }
                let start = self.start(containing: Self.firstInstant(ofDay: time, calendar: self.calendar))
                self.dayStarts[time] = start
                return start
            }
        }

        private func start(containing date: Date) -> Date {
            let component: Calendar.Component =
                switch self.bucket {
                case .hour: .hour
                case .day: .day
                case .week: .weekOfYear
                case .month: .month
                }
            return self.calendar.dateInterval(of: component, for: date)?.start ?? date
        }

        /// The first instant of the local date `day` (days since 1970-01-01) in the
        /// calendar's zone: its midnight, or the first hour after it when a clock change
        /// skips midnight.
        static func firstInstant(ofDay day: Int64, calendar: Calendar) -> Date {
            var utc = Calendar(identifier: .iso8601)
            utc.timeZone = .gmt
            let date = utc.dateComponents([.year, .month, .day], from: Date(timeIntervalSince1970: Double(day) * 86_400))
            guard let noon = calendar.date(from: DateComponents(year: date.year, month: date.month, day: date.day, hour: 12)) else {
                return Date(timeIntervalSince1970: Double(day) * 86_400)
            }
            return calendar.startOfDay(for: noon)
        }
    }
}

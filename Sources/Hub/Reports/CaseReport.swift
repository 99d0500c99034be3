import Foundation
import Wire

/// How cases are worked, per site, owner or rule (docs/REPORTS.md, "Cases"): over the cases
/// raised in a period, how many are still open or overdue, how soon someone first acted and
/// how soon they were completed (median and 90th percentile), and the close-the-loop rate —
/// the share of negative ratings' cases completed within their due time, with its Wilson
/// 95 % interval.
///
/// A rating's case counts towards the rate once its outcome is known: completed (in time or
/// late), or past its due time and still not closed. Cancelled cases (a false alarm, a test)
/// and cases not yet due are left out of the rate and counted apart. A case without a due
/// time (a rule without `closeWithin`) is in time when it is completed at all.
public struct CaseReport: Sendable {
    /// What the groups are.
    public enum GroupBy: String, Sendable, CaseIterable {
        case site, owner, rule
    }

    /// Durations in ms: how many, the median and the 90th percentile (nearest rank).
    public struct Durations: Sendable, Hashable {
        public var count: Int
        public var median: Int64?
        public var p90: Int64?

        init(_ values: [Int64]) {
            let sorted = values.sorted()
            self.count = sorted.count
            func rank(_ fraction: Double) -> Int64? {
                sorted.isEmpty ? nil : sorted[max(0, Int((fraction * Double(sorted.count)).rounded(.up)) - 1)]
            }
            self.median = rank(0.5)
            self.p90 = rank(0.9)
        }
    }

    /// The close-the-loop rate of a group.
    public struct Rate: Sendable, Hashable {
        /// Rating cases completed within their due time…
        public var met: Int
        /// …of the rating cases whose outcome is known.
        public var decided: Int
        /// Percent, and its 95 % Wilson interval.
        public var percent: Double
        public var low: Double
        public var high: Double
    }

    /// One group's figures.
    public struct Group: Sendable, Hashable {
        /// The site, owner ("" for nobody) or rule.
        public var key: String
        /// Cases raised in the period.
        public var raised = 0
        /// Of them, still open, in progress or waiting…
        public var notClosed = 0
        /// …and of those, overdue now.
        public var overdue = 0
        public var completed = 0
        public var cancelled = 0
        /// Completed cases whose customer was reached.
        public var customerReached = 0
        /// Rating cases not yet due and not closed: left out of the rate.
        public var pending = 0
        /// From raised to the first action.
        public var firstAction = Durations([])
        /// From raised to completed.
        public var close = Durations([])
        /// Nil when no rating case's outcome is known yet.
        public var closeTheLoop: Rate?
    }

    public var from: Int64
    public var to: Int64
    public var groupBy: GroupBy
    /// Groups by key (bytes), then the whole as `total`.
    public var groups: [Group]
    public var total: Group

    /// Most cases a report reads; a period holding more is refused (narrow it or pick a site).
    public static let maxCases = 200_000

    /// The report over `cases` (those raised in `from`..<`to`), grouped by `groupBy`, as of `now`.
    public init(cases: [Alert], from: Int64, to: Int64, groupBy: GroupBy, now: Int64) {
        self.from = from
        self.to = to
        self.groupBy = groupBy
        var byKey: [[UInt8]: [Alert]] = [:]
        for alert in cases {
            let key =
                switch groupBy {
                case .site: alert.site
                case .owner: alert.owner
                case .rule: alert.rule
                }
            byKey[Array(key.utf8), default: []].append(alert)
        }
        self.groups = byKey.sorted { $0.key.lexicographicallyPrecedes($1.key) }.map { Self.group(String(decoding: $0.key, as: UTF8.self), $0.value, now: now) }
        self.total = Self.group("", cases, now: now)
    }

    static func group(_ key: String, _ cases: [Alert], now: Int64) -> Group {
        var group = Group(key: key)
        var firstActions: [Int64] = []
        var closes: [Int64] = []
        var (met, decided) = (0, 0)
        for alert in cases {
            group.raised += 1
            if let first = alert.firstActionAt { firstActions.append(max(0, first - alert.createdAt)) }
            switch alert.status {
            case .completed:
                group.completed += 1
                if alert.customerReached == true { group.customerReached += 1 }
                if let closed = alert.closedAt { closes.append(max(0, closed - alert.createdAt)) }
            case .cancelled:
                group.cancelled += 1
            case .open, .inProgress, .waiting:
                group.notClosed += 1
                if alert.isOverdue(at: now) { group.overdue += 1 }
            }
            guard alert.kind == "record", alert.status != .cancelled else { continue }
            if alert.status == .completed {
                decided += 1
                if let closed = alert.closedAt, closed <= (alert.dueAt ?? .max) { met += 1 }
            } else if let due = alert.dueAt, due <= now {
                decided += 1
            } else {
                group.pending += 1
            }
        }
        group.firstAction = Durations(firstActions)
        group.close = Durations(closes)
        if decided > 0 {
            let (low, high) = RatingStatistics.wilson(positive: Int64(met), of: Int64(decided))
            group.closeTheLoop = Rate(met: met, decided: decided, percent: Double(met) * 100 / Double(decided), low: low * 100, high: high * 100)
        }
        return group
    }
}

extension CaseReport {
    /// The JSON object the API answers with.
    public var jsonObject: [String: Any] {
        [
            "from": self.from, "to": self.to, "groupBy": self.groupBy.rawValue,
            "groups": self.groups.map { Self.object($0) }, "total": Self.object(self.total),
        ]
    }

    static func object(_ group: Group) -> [String: Any] {
        func durations(_ value: Durations) -> [String: Any] {
            var object: [String: Any] = ["count": value.count]
            if let median = value.median { object["medianMs"] = median }
            if let p90 = value.p90 { object["p90Ms"] = p90 }
            return object
        }
        var object: [String: Any] = [
            "key": group.key, "raised": group.raised, "notClosed": group.notClosed, "overdue": group.overdue, "completed": group.completed,
            "cancelled": group.cancelled, "customerReached": group.customerReached, "pending": group.pending,
            "firstAction": durations(group.firstAction), "close": durations(group.close),
        ]
        if let rate = group.closeTheLoop {
            object["closeTheLoop"] = ["met": rate.met, "decided": rate.decided, "percent": rate.percent, "low": rate.low, "high": rate.high]
        }
        return object
    }

    /// The report as CSV: a header, one line per group, then the total (key `total`).
    public var csv: String {
        let header = [
            self.groupBy.rawValue, "raised", "not_closed", "overdue", "completed", "cancelled", "customer_reached", "pending",
            "first_action_median_s", "first_action_p90_s", "close_median_s", "close_p90_s", "close_the_loop_met", "close_the_loop_decided",
            "close_the_loop_percent", "close_the_loop_low", "close_the_loop_high",
        ]
        func seconds(_ value: Int64?) -> String { value.map { String(format: "%.1f", Double($0) / 1000) } ?? "" }
        func percent(_ value: Double?) -> String { value.map { String(format: "%.1f", $0) } ?? "" }
        func line(_ group: Group, key: String) -> String {
            let rate = group.closeTheLoop
            return [
                key, "\(group.raised)", "\(group.notClosed)", "\(group.overdue)", "\(group.completed)", "\(group.cancelled)",
                "\(group.customerReached)", "\(group.pending)", seconds(group.firstAction.median), seconds(group.firstAction.p90),
                seconds(group.close.median), seconds(group.close.p90), rate.map { "\($0.met)" } ?? "", rate.map { "\($0.decided)" } ?? "",
                percent(rate?.percent), percent(rate?.low), percent(rate?.high),
            ].map(RatingReport.csvField).joined(separator: ",")
        }
        let lines = [header.joined(separator: ",")] + self.groups.map { line($0, key: $0.key) } + [line(self.total, key: "total")]
        return lines.joined(separator: "\r\n") + "\r\n"
    }
}

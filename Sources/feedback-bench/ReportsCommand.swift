import ArgumentParser
import Foundation
import Hub
import Support
import Wire

/// `feedback-bench reports`: fills a store with ratings through the hub's own commit (so the
/// rollups are maintained as in production), then times the console's reports over them.
struct ReportsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reports",
        abstract: "Measures report latency over a store of many ratings (docs/BENCHMARKS.md).",
        discussion: """
            Ratings are spread over --days days before now at --sites branches: kiosk smiley \
            presses (no subject), product NPS popups (one of 12 product areas) and post-call \
            CSAT (one of 10 agents per branch), each with one of 6 topics. They are committed \
            100,000 to a transaction through the store's commit. Then each report runs --runs \
            times and its median, p99 and maximum are printed, with the rollup rows read.
            """
    )

    @Option(help: "The SQLite file to fill (made if missing; ratings already there are kept and added to).")
    var store: String

    @Option(help: "Ratings to add, 0–100000000.")
    var records = 10_000_000

    @Option(help: "Branches, 1–100000.")
    var sites = 200

    @Option(help: "Days the ratings span, 1–1000.")
    var days = 90

    @Option(help: "Runs of each report, 1–10000.")
    var runs = 50

    @Option(help: "Only the reports whose name contains this text (for a profile of one).")
    var only: String?

    func validate() throws {
        try RangeError.check(self.records, 0...100_000_000, "--records")
        try RangeError.check(self.sites, 1...100_000, "--sites")
        try RangeError.check(self.days, 1...1_000, "--days")
        try RangeError.check(self.runs, 1...10_000, "--runs")
    }

    func run() throws {
        let store = try SQLiteStore(path: self.store)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        if self.records > 0 { try self.fill(store, now: now) }
        let day: TimeInterval = 86_400
        let to = Date(timeIntervalSince1970: Double(now) / 1000)
        let midnight = Date(timeIntervalSince1970: (to.timeIntervalSince1970 / day).rounded(.down) * day)
        let reports: [(String, RatingReport.Request)] = [
            ("30 days to now by site", .init(from: to - 30 * day, to: to, timeZone: .gmt, groupBy: [.site])),
            ("30 whole days by site", .init(from: midnight - 30 * day, to: midnight, timeZone: .gmt, groupBy: [.site])),
            ("90 whole days, daily, by source", .init(from: midnight - 90 * day, to: midnight, timeZone: .gmt, groupBy: [.source], bucket: .day)),
            ("30 days by site and subject", .init(from: to - 30 * day, to: to, timeZone: .gmt, groupBy: [.site, .subject])),
            ("7 days, one site, by subject", .init(from: to - 7 * day, to: to, timeZone: .gmt, groupBy: [.subject], filters: [.site: "branch-0007"])),
            (
                "90 days, daily, Europe/Berlin",
                .init(from: to - 90 * day, to: to, timeZone: TimeZone(identifier: "Europe/Berlin") ?? .gmt, bucket: .day)
            ),
            ("30 days by site, weekly", .init(from: to - 30 * day, to: to, timeZone: .gmt, groupBy: [.site], bucket: .week)),
        ]
        let (cells, days) = try store.read { db in
            (try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM rollups") ?? 0, try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM daily_rollups") ?? 0)
        }
        print("store: \(try store.recordCount()) ratings, \(cells) hourly and \(days) daily rollup rows, \(Self.megabytes(self.store)) MiB")
        for (name, request) in reports where self.only.map(name.contains) ?? true {
            var times: [Double] = []
            var reads: [Double] = []
            var groups = 0
            for _ in 0..<self.runs {
                let started = ContinuousClock.now
                let report = try RatingReport.make(request, from: store)
                let read = ContinuousClock.now
                _ = JSONWriter.data(report.jsonObject)
                times.append(Self.milliseconds(ContinuousClock.now - started))
                reads.append(Self.milliseconds(read - started))
                groups = report.groups.count
            }
            times.sort()
            reads.sort()
            let p99 = times[min(times.count - 1, Int((Double(times.count) * 0.99).rounded(.up)) - 1)]
            print(
                String(
                    format: "%-34@ groups %6d  p50 %8.1f ms  p99 %8.1f ms  max %8.1f ms  (p50 of the read and fold alone %.1f ms)", name as NSString,
                    groups, times[times.count / 2], p99, times.last ?? 0, reads[reads.count / 2]
                )
            )
        }
    }

    private func fill(_ store: SQLiteStore, now: Int64) throws {
        let origin = UUID()
        let span = Int64(self.days) * 86_400_000
        var generator = SystemRandomNumberGenerator()
        var ids = UUIDv7()
        let topics = ["billing", "delivery", "staff", "product", "queue", "cleanliness"]
        let started = ContinuousClock.now
        var sequence: UInt64 = 0
        var left = self.records
        while left > 0 {
            var batches: [IncomingBatch] = []
            for _ in 0..<20 where left > 0 {
                let count = min(5_000, left)
                left -= count
                sequence += 1
                var records: [FeedbackRecord] = []
                records.reserveCapacity(count)
                for _ in 0..<count {
                    let occurred = now - Int64.random(in: 0..<span, using: &generator)
                    let site = Int.random(in: 0..<self.sites, using: &generator)
                    let kind = Int.random(in: 0..<3, using: &generator)
                    let (source, scale, score, subject): (FeedbackRecord.Source, FeedbackRecord.Scale, UInt8, String) =
                        switch kind {
                        case 0: (.kiosk, .smiley, UInt8.random(in: 1...4, using: &generator), "")
                        case 1: (.popup, .nps, UInt8.random(in: 0...10, using: &generator), "area-\(Int.random(in: 0..<12, using: &generator))")
                        default: (.call, .csat, UInt8.random(in: 1...5, using: &generator), "agent-\(site)-\(Int.random(in: 0..<10, using: &generator))")
                        }
                    records.append(
                        FeedbackRecord(
                            id: ids.next(milliseconds: occurred), origin: origin, source: source, scale: scale, score: score,
                            occurredAt: occurred, capturedAt: occurred, site: String(format: "branch-%04d", site), channel: source.name,
                            subject: subject, topic: topics[Int.random(in: 0..<topics.count, using: &generator)], survey: "s1", customer: "",
                            comment: "", attributes: [:]
                        )
                    )
                }
                batches.append(IncomingBatch(key: BatchKey(origin: origin, sequence: sequence), records: records, receivedAt: now))
            }
            _ = try store.commit(batches)
        }
        let seconds = Self.milliseconds(ContinuousClock.now - started) / 1000
        print(String(format: "filled %d ratings in %.0f s (%.0f/s)", self.records, seconds, Double(self.records) / seconds))
    }

    static func milliseconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
    }

    static func megabytes(_ path: String) -> Int {
        let sizes = ["", "-wal"].compactMap { try? FileManager.default.attributesOfItem(atPath: path + $0)[.size] as? Int }
        return sizes.reduce(0, +) / 1_048_576
    }
}

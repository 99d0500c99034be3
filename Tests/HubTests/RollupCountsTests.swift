import Foundation
import Hub
import Testing

/// The daily and site-hour counts a commit adds are sums of the hourly cells where an hour
/// holds one local date, and counted rating by rating where a local midnight splits the hour.
@Suite struct RollupCountsTests {
    @Test(arguments: ["UTC", "Europe/Berlin", "America/St_Johns", "Asia/Kolkata", "Asia/Kathmandu", "Pacific/Chatham"])
    func daysAndSiteHoursAreWhatEachRatingSays(_ zoneName: String) throws {
        let zone = try #require(TimeZone(identifier: zoneName))
        var counts = RollupCounts(zone: zone)
        var days: [SiteCell: [Int64]] = [:]
        var hours: [SiteCell: [Int64]] = [:]
        var generator = SystemRandomNumberGenerator()
        // Three days around a clock change in Europe and a range of minutes in every hour.
        let start: Int64 = 1_774_742_400_000  // 2026-03-29T00:00:00Z
        for index in 0..<5_000 {
            let occurredAt = start - 86_400_000 + Int64.random(in: 0..<(3 * 86_400_000), using: &generator)
            let cell = RollupCell(
                hour: RollupCell.hour(of: occurredAt), site: "site-\(index % 3)", subject: "s\(index % 7)", channel: "", topic: "",
                source: UInt8(index % 2 + 1), survey: "", scale: 1, score: UInt8(index % 11), misuse: index % 13 == 0
            )
            counts.add(cell, occurredAt: occurredAt)
            let local = occurredAt + Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(cell.hour) * 3_600))) * 1000
            let day = SiteCell(time: local / 86_400_000, site: cell.site, source: cell.source, scale: cell.scale, misuse: cell.misuse)
            days[day, default: Array(repeating: 0, count: 11)][Int(cell.score)] += 1
            let hour = SiteCell(time: cell.hour, site: cell.site, source: cell.source, scale: cell.scale, misuse: cell.misuse)
            hours[hour, default: Array(repeating: 0, count: 11)][Int(cell.score)] += 1
        }
        #expect(counts.days.mapValues(\.counts) == days)
        #expect(counts.siteHours.mapValues(\.counts) == hours)
        #expect(counts.sortedDays.reduce(0) { $0 + $1.counts.counts.reduce(0, +) } == 5_000)
    }
}

extension RollupCountsTests {
    /// Two sites that differ only in how an accent is written are two rows to the stores:
    /// the commit's lock order keeps them apart, the same in every process.
    @Test func cellsAreOrderedByTheirBytes() {
        var counts = RollupCounts(zone: .gmt)
        let sites = ["caf\u{E9}", "cafe\u{301}", "cafe", "Caf\u{E9}"]
        for site in sites {
            counts.add(
                RollupCell(hour: 1, site: site, subject: "", channel: "", topic: "", source: 1, survey: "", scale: 1, score: 9, misuse: false),
                occurredAt: 3_600_000
            )
        }
        let bytewise = sites.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        #expect(counts.sorted.map { Array($0.cell.site.utf8) } == bytewise.map { Array($0.utf8) })
        #expect(counts.sortedDays.map { Array($0.cell.site.utf8) } == bytewise.map { Array($0.utf8) })
        #expect(counts.sortedSiteHours.count == 4)
    }
}

import Foundation
import GRDB
import Hub
import TestSupport
import Testing
import Wire

/// What every store promises about the rating rollups the reports read.
extension StoreContractTests {
    /// Ratings at two sites over three hours: scores chosen per index, every seventh a
    /// kiosk press flagged as misuse.
    static func reportRecords(_ range: Range<Int>) -> [FeedbackRecord] {
        range.map { index in
            var record = Samples.popupRecord(index)
            record.site = index % 2 == 0 ? "branch-1" : "web-eu"
            record.occurredAt = Samples.baseTime + Int64(index % 3) * RollupCell.hourMilliseconds + 1_000
            record.score = UInt8(index % 11)
            if index % 7 == 0 {
                record.source = .kiosk
                record.scale = .smiley
                record.score = 1
                record.attributes = ["misuse": "true"]
            }
            return record
        }
    }

    @Test(arguments: TestStores.Kind.allCases)
    func rollupsCountEachStoredRatingOnceByHourAndCell(_ kind: TestStores.Kind) throws {
        let opened = try TestStores.open(kind)
        defer { opened.remove() }
        let store = opened.store
        let records = Self.reportRecords(0..<300)
        _ = try store.commit([Self.batch(1, Array(records[0..<200]))])
        // The same batch again, and a new batch repeating 100 stored ratings: counted once.
        _ = try store.commit([Self.batch(1, Array(records[0..<200])), Self.batch(2, Array(records[100..<300]))])
        let hour = RollupCell.hour(of: Samples.baseTime)
        let all = try store.rollups(RollupQuery(from: hour, to: hour + 3, groupBy: [.site]))
        #expect(all.reduce(0) { $0 + $1.count } == 300)
        #expect(all.filter(\.misuse).reduce(0) { $0 + $1.count } == records.filter(\.isFlaggedMisuse).count)
        // Each (site, scale, score, misuse) as counted in Swift.
        var expected: [String: Int64] = [:]
        for record in records { expected["\(record.site)|\(record.scale.rawValue)|\(record.score)|\(record.isFlaggedMisuse)", default: 0] += 1 }
        var got: [String: Int64] = [:]
        for row in all { got["\(row.group[0])|\(row.scale)|\(row.score)|\(row.misuse)", default: 0] += row.count }
        #expect(got == expected)

        // By hour, filtered, scoped.
        let hourly = try store.rollups(RollupQuery(from: hour, to: hour + 3, byTime: true, filters: [.site: "web-eu"]))
        #expect(Set(hourly.compactMap(\.time)) == [hour, hour + 1, hour + 2])
        #expect(hourly.reduce(0) { $0 + $1.count } == 150)
        let scoped = try store.rollups(RollupQuery(from: hour, to: hour + 3, groupBy: [.site, .source], scope: try SiteScope(["branch-*"])))
        #expect(Set(scoped.map { $0.group[0] }) == ["branch-1"] && Set(scoped.map { $0.group[1] }) == ["popup", "kiosk"])
        let kiosk = try store.rollups(RollupQuery(from: hour, to: hour + 1, filters: [.source: "kiosk"]))
        #expect(!kiosk.isEmpty && kiosk.allSatisfy(\.misuse))
        var small = RollupQuery(from: hour, to: hour + 3, groupBy: [.site, .subject, .channel, .topic, .source, .survey], byTime: true)
        small.maxRows = 3
        #expect(throws: RollupLimitExceeded.self, "an answer over its row limit is refused, not gathered") { try store.rollups(small) }
        #expect(try store.rollups(RollupQuery(from: hour + 3, to: hour + 10)).isEmpty, "the range's end is exclusive")
    }

    @Test(arguments: TestStores.Kind.allCases)
    func rollupsAreFilledFromStoredRecordsWhenTheyAreFirstMade(_ kind: TestStores.Kind) throws {
        let opened = try TestStores.open(kind)
        defer { opened.remove() }
        // And one rating an hour for 400 hours after them: PostgreSQL recounts a week of
        // hours per statement, so the recount below spans several statements.
        let later = (0..<400).map { index in
            var record = Self.calm(1_000 + index)
            record.occurredAt = Samples.baseTime + Int64(10 + index) * RollupCell.hourMilliseconds
            return record
        }
        _ = try opened.store.commit([Self.batch(1, Self.reportRecords(0..<120)), Self.batch(2, later)])
        let hour = RollupCell.hour(of: Samples.baseTime)
        let query = RollupQuery(from: hour, to: hour + 3, groupBy: [.site, .subject, .channel, .topic, .source, .survey], byTime: true)
        let before = Set(try opened.store.rollups(query))
        #expect(before.reduce(0) { $0 + $1.count } == 120)
        let dailyBefore = Set(try opened.store.rollups(RollupQuery(.day, from: 0, to: 100_000, groupBy: [.site, .source], byTime: true)))
        let bySite = RollupQuery(.siteHour, from: hour, to: hour + 500, groupBy: [.site, .source], byTime: true)
        let siteHoursBefore = Set(try opened.store.rollups(bySite))
        var hourlyBySite = bySite
        hourlyBySite.resolution = .hour
        #expect(siteHoursBefore == Set(try opened.store.rollups(hourlyBySite)), "the site-hour rollups say what the hourly ones say")
        #expect(siteHoursBefore.reduce(0) { $0 + $1.count } == 520)
        #expect(dailyBefore.reduce(0) { $0 + $1.count } == 520)
        // A store of the release before rollups: the tables and their migration gone.
        switch kind {
        case .sqlite:
            let path = try #require(opened.folder).appendingPathComponent("feedback.sqlite").path
            let database = try DatabaseQueue(path: path)
            try database.write { db in
                try db.execute(
                    sql: """
                        DROP TABLE rollups; DROP TABLE daily_rollups; DROP TABLE report_settings; DROP INDEX records_negative_by_site;
                        DROP TABLE site_hours;
                        DELETE FROM grdb_migrations WHERE identifier IN ('v7-rollups', 'v10-daily-score-columns', 'v11-site-hours')
                        """
                )
            }
            try database.close()
        case .postgres:
            let settings = try #require(opened.settings)
            for statement in [
                "DROP TABLE rollups", "DROP TABLE daily_rollups", "DROP TABLE report_settings", "DROP INDEX records_negative_by_site",
                "DROP TABLE site_hours",
            ] {
                _ = try TestStores.sql(settings, statement)
            }
            _ = try TestStores.sql(settings, "DELETE FROM schema_migrations WHERE version IN ('v3-rollups', 'v6-daily-score-columns', 'v7-site-hours')")
        }
        let reopened = try TestStores.reopen(opened)
        #expect(Set(try reopened.rollups(query)) == before)
        #expect(Set(try reopened.rollups(RollupQuery(.day, from: 0, to: 100_000, groupBy: [.site, .source], byTime: true))) == dailyBefore)
        #expect(Set(try reopened.rollups(bySite)) == siteHoursBefore, "the site-hour rollups counted from the hourly ones")
    }

    @Test(arguments: TestStores.Kind.allCases)
    func dailyRollupsCountLocalDatesAndAreRecountedWhenTheZoneChanges(_ kind: TestStores.Kind) throws {
        let tokyo = try #require(TimeZone(identifier: "Asia/Tokyo"))
        let opened = try TestStores.open(kind, reportZone: tokyo)
        defer { opened.remove() }
        // 10:00–12:00Z is 1 December in Tokyo and in UTC; 15:30Z is 2 December in Tokyo
        // only; 23:30Z on 30 November is 1 December in Tokyo; 10:10Z on 2 December is 2
        // December in both.
        func calm(_ index: Int, at offset: Int64) -> FeedbackRecord {
            var record = Self.calm(index)
            record.occurredAt = Samples.baseTime + offset
            return record
        }
        let hour = RollupCell.hourMilliseconds
        let extra = [calm(500, at: 5 * hour + 1_800_000), calm(501, at: -10 * hour - 1_800_000), calm(502, at: 24 * hour + 600_000)]
        _ = try opened.store.commit([Self.batch(1, Self.reportRecords(0..<60) + extra)])
        let december1: Int64 = 20_058
        func days(_ store: any FeedbackStore) throws -> [Int64: Int64] {
            var days: [Int64: Int64] = [:]
            for row in try store.rollups(RollupQuery(.day, from: december1 - 5, to: december1 + 5, byTime: true)) {
                days[row.time ?? -1, default: 0] += row.count
            }
            return days
        }
        #expect(try days(opened.store) == [december1: 61, december1 + 1: 2])
        // A store of the release before the score columns (a row per score, here one stale
        // row): the migration counts its days again, in the zone the store counted them in.
        let oldTable = "CREATE TABLE daily_rollups (day bigint, site text, source int, scale int, score int, misuse boolean, count bigint)"
        switch kind {
        case .sqlite:
            let database = try DatabaseQueue(path: try #require(opened.folder).appendingPathComponent("feedback.sqlite").path)
            try database.write { db in
                try db.execute(
                    sql: """
                        DROP TABLE daily_rollups; \(oldTable); INSERT INTO daily_rollups VALUES (\(december1), 'stale', 1, 1, 9, 0, 1000);
                        DELETE FROM grdb_migrations WHERE identifier = 'v10-daily-score-columns'
                        """
                )
            }
            try database.close()
        case .postgres:
            let settings = try #require(opened.settings)
            for statement in [
                "DROP TABLE daily_rollups", oldTable, "INSERT INTO daily_rollups VALUES (\(december1), 'stale', 1, 1, 9, false, 1000)",
                "DELETE FROM schema_migrations WHERE version = 'v6-daily-score-columns'",
            ] {
                _ = try TestStores.sql(settings, statement)
            }
        }
        #expect(try days(try TestStores.reopen(opened, reportZone: tokyo)) == [december1: 61, december1 + 1: 2], "counted again by the migration")
        let utc = try TestStores.reopen(opened, reportZone: .gmt)
        #expect(try days(utc) == [december1 - 1: 1, december1: 61, december1 + 1: 1], "recounted in the new zone")
        #expect(throws: StoreError.self) { try utc.rollups(RollupQuery(.day, from: 0, to: 1, groupBy: [.subject])) }
        #expect(throws: StoreError.self) { try utc.rollups(RollupQuery(.siteHour, from: 0, to: 1, filters: [.topic: "billing"])) }

        // A report over whole days in the store's zone (daily rollups and edge hours) says
        // what the same period read from the hourly rollups says.
        let request = RatingReport.Request(
            from: Date(timeIntervalSince1970: Double(Samples.baseTime) / 1000 - 86_400 - 3_600),
            to: Date(timeIntervalSince1970: Double(Samples.baseTime) / 1000 + 86_400 + 1_800), timeZone: .gmt, groupBy: [.site, .source]
        )
        var hourly = request
        hourly.timeZone = tokyo
        let daily = try RatingReport.make(request, from: utc)
        let fromHours = try RatingReport.make(hourly, from: utc)
        #expect(daily.groups.map(\.key) == fromHours.groups.map(\.key))
        #expect(daily.groups.map(\.current) == fromHours.groups.map(\.current) && daily.total.current == fromHours.total.current)
        #expect(daily.total.current.responses + daily.total.current.misuse == 63, "the whole day and both edges")

        // Day buckets and the previous period through the daily rollups, against the same
        // report forced onto the hourly ones (a filter on survey, which only they keep,
        // matching every rating).
        var bucketed = request
        bucketed.bucket = .day
        bucketed.from = request.from.addingTimeInterval(86_400)
        bucketed.to = request.to.addingTimeInterval(86_400)
        var forced = bucketed
        forced.filters = [.survey: "nps-2024q4"]
        let viaDays = try RatingReport.make(bucketed, from: utc)
        let viaHours = try RatingReport.make(forced, from: utc)
        #expect(viaDays.groups == viaHours.groups && viaDays.total.previous == viaHours.total.previous)
        #expect(viaDays.total.current.responses + viaDays.total.current.misuse == 62)
        #expect(viaDays.total.previous.responses + viaDays.total.previous.misuse == 1, "the rating of 30 November")
        #expect(viaDays.groups.contains { $0.buckets.count == 2 }, "1 and 2 December")

        // A zone whose midnights are not on whole UTC hours: the hourly rollups answer
        // alone, so the half hour beside a midnight is neither lost nor counted twice.
        let kolkata = try #require(TimeZone(identifier: "Asia/Kolkata"))
        let india = try TestStores.reopen(opened, reportZone: kolkata)
        var local = request
        local.timeZone = kolkata
        var localForced = local
        localForced.filters = [.survey: "nps-2024q4"]
        #expect(try RatingReport.make(local, from: india).groups == RatingReport.make(localForced, from: india).groups)
    }

    @Test(arguments: TestStores.Kind.allCases)
    func ratingsAreListedNewestFirstByFilterScopeAndCursor(_ kind: TestStores.Kind) throws {
        let opened = try TestStores.open(kind)
        defer { opened.remove() }
        let store = opened.store
        let records = Self.reportRecords(0..<90)
        _ = try store.commit([Self.batch(1, records)])
        let (from, to) = (Samples.baseTime, Samples.baseTime + 3 * RollupCell.hourMilliseconds)
        let order: (FeedbackRecord, FeedbackRecord) -> Bool = { ($0.occurredAt, $0.id.uuidString) > ($1.occurredAt, $1.id.uuidString) }
        let negatives = records.filter { $0.site == "branch-1" && $0.isNegative }.sorted(by: order)
        var pages: [FeedbackRecord] = []
        var cursor: RatingQuery.Cursor?
        repeat {
            let page = try store.ratings(RatingQuery(from: from, to: to, site: "branch-1", negativeOnly: true, limit: 7, after: cursor))
            pages += page
            cursor = page.count == 7 ? page.last.map { .init(occurredAt: $0.occurredAt, id: $0.id) } : nil
        } while cursor != nil
        #expect(pages.map(\.id) == negatives.map(\.id), "every negative once, newest first, across pages")
        #expect(pages.first == negatives.first, "read back whole, attributes included")
        let commented = try store.ratings(RatingQuery(from: from, to: to, withComment: true, limit: 1_000))
        #expect(Set(commented.map(\.id)) == Set(records.filter { !$0.comment.isEmpty }.map(\.id)))
        #expect(try store.ratings(RatingQuery(from: from, to: to, scope: try SiteScope(["web-*"]), limit: 1_000)).allSatisfy { $0.site == "web-eu" })
        #expect(try store.ratings(RatingQuery(from: to, to: to + 1, limit: 10)).isEmpty)
    }

    @Test(arguments: TestStores.Kind.allCases)
    func recordsKeepOnlyTheIndexesTheListingsUse(_ kind: TestStores.Kind) throws {
        // Statistics come from the rollups; every other index on records costs each commit
        // an insert per record (docs/BENCHMARKS.md, issue 17).
        let opened = try TestStores.open(kind)
        defer { opened.remove() }
        let listing = ["records_by_site", "records_by_time", "records_negative_by_site"]
        switch kind {
        case .sqlite:
            let path = try #require(opened.folder).appendingPathComponent("feedback.sqlite").path
            let database = try DatabaseQueue(path: path)
            defer { try? database.close() }
            let (indexes, plan) = try database.read { db in
                (
                    try String.fetchAll(
                        db, sql: "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'records' AND sql IS NOT NULL ORDER BY name"
                    ),
                    try Row.fetchAll(
                        db,
                        sql: """
                            EXPLAIN QUERY PLAN SELECT id FROM records WHERE occurred_at >= 0 AND occurred_at < 1 AND site = 'a' AND negative = 1
                            ORDER BY occurred_at DESC, id DESC LIMIT 50
                            """
                    ).map { $0["detail"] as String? ?? "" }.joined(separator: "; ")
                )
            }
            #expect(indexes == listing)
            #expect(plan.contains("records_negative_by_site"), "a site's negatives are listed from their index: \(plan)")
        case .postgres:
            let settings = try #require(opened.settings)
            let rows = try TestStores.sql(settings, "SELECT indexname FROM pg_indexes WHERE tablename = 'records' ORDER BY indexname")
            #expect(try rows.map { try $0.decode(String.self) } == listing + ["records_pkey"])
        }
    }

    @Test(arguments: TestStores.Kind.allCases)
    func attributesComeBackAsTheyWereSent(_ kind: TestStores.Kind) throws {
        let opened = try TestStores.open(kind)
        defer { opened.remove() }
        var record = Self.calm(900)
        record.attributes = [
            "quote\"key": "back\\slash", "line": "one\ntwo\r\tthree", "control": "\u{1}\u{1F}", "text": "Ёлка 😀 e\u{301}", "empty": "",
        ]
        _ = try opened.store.commit([Self.batch(1, [record])])
        let listed = try opened.store.ratings(RatingQuery(from: record.occurredAt, to: record.occurredAt + 1, limit: 10))
        #expect(listed.map(\.attributes) == [record.attributes])
    }
}


import Foundation
import GRDB
import GRDBSQLite
import Wire

extension SQLiteStore {
    /// Adds `counts` to the hourly rollups, and to the daily and site-hour ones unless
    /// `sites` is false (a migration that makes those later), inside the caller's
    /// transaction.
    static func addRollups(_ counts: RollupCounts, _ db: Database, sites: Bool = true) throws {
        if !counts.cells.isEmpty {
            let statement = try db.cachedStatement(
                sql: """
                    INSERT INTO rollups (hour, site, subject, channel, topic, source, survey, scale, score, misuse, count)
                    VALUES (?, CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), ?, CAST(? AS TEXT), ?, ?, ?, ?)
                    ON CONFLICT (hour, site, subject, channel, topic, source, survey, scale, score, misuse)
                    DO UPDATE SET count = count + excluded.count
                    """
            )
            for (cell, count) in counts.sorted {
                // Texts bound as bytes: a Swift string is bound as a C string, which would end
                // at a NUL kept from before PROTOCOL.md §2.4.
                try statement.execute(arguments: [
                    cell.hour, Data(cell.site.utf8), Data(cell.subject.utf8), Data(cell.channel.utf8), Data(cell.topic.utf8), Int(cell.source),
                    Data(cell.survey.utf8), Int(cell.scale), Int(cell.score), cell.misuse, count,
                ])
            }
        }
        guard sites else { return }
        try Self.addSiteRows(counts.sortedDays, to: "daily_rollups", db)
        try Self.addSiteRows(counts.sortedSiteHours, to: "site_hours", db)
    }

    /// Adds `rows` to a site rollup table (`daily_rollups` or `site_hours`, whose time column
    /// is first in the key).
    private static func addSiteRows(_ rows: [(cell: SiteCell, counts: ScoreCounts)], to table: String, _ db: Database) throws {
        guard !rows.isEmpty else { return }
        let scores = ScoreCounts.columns
        let time = table == "daily_rollups" ? "day" : "hour"
        let statement = try db.cachedStatement(
            sql: """
                INSERT INTO \(table) (\(time), site, source, scale, misuse, \(scores.joined(separator: ", ")))
                VALUES (?, CAST(? AS TEXT), ?, ?, ?, \(scores.map { _ in "?" }.joined(separator: ", ")))
                ON CONFLICT (\(time), site, source, scale, misuse)
                DO UPDATE SET \(scores.map { "\($0) = \($0) + excluded.\($0)" }.joined(separator: ", "))
                """
        )
        for (cell, counts) in rows {
            let key: [any DatabaseValueConvertible] = [cell.time, Data(cell.site.utf8), Int(cell.source), Int(cell.scale), cell.misuse]
            try statement.execute(arguments: StatementArguments(key + counts.counts.map { $0 as any DatabaseValueConvertible }))
        }
    }

    /// Counts the records already stored into the hourly rollups, when they are first made
    /// (the daily ones are counted from these: ``alignReportZone(_:_:)``).
    static func backfillRollups(_ db: Database) throws {
        var counts = RollupCounts(zone: .gmt)
        let rows = try Row.fetchCursor(
            db,
            sql: """
                SELECT occurred_at, CAST(site AS BLOB) AS site_bytes, CAST(subject AS BLOB) AS subject_bytes,
                    CAST(channel AS BLOB) AS channel_bytes, CAST(topic AS BLOB) AS topic_bytes, source,
                    CAST(survey AS BLOB) AS survey_bytes, scale, score, attributes FROM records
                """
        )
        while let row = try rows.next() {
            let occurredAt: Int64 = row["occurred_at"]
            let attributes: String = row["attributes"]
            let cell = RollupCell(
                hour: RollupCell.hour(of: occurredAt), site: Self.text(row, "site"), subject: Self.text(row, "subject"),
                channel: Self.text(row, "channel"), topic: Self.text(row, "topic"), source: UInt8(clamping: row["source"] as Int),
                survey: Self.text(row, "survey"), scale: UInt8(clamping: row["scale"] as Int),
                score: UInt8(clamping: row["score"] as Int), misuse: AttributesJSON.isFlaggedMisuse(attributes)
            )
            counts.add(cell, occurredAt: occurredAt)
            if counts.cells.count >= 100_000 {
                try Self.addRollups(counts, db, sites: false)
                counts = RollupCounts(zone: .gmt)
            }
        }
        try Self.addRollups(counts, db, sites: false)
    }

    /// Makes the daily rollups count dates in `zone` and returns it: when the store last
    /// counted them in another zone (or never), they are counted again, in one transaction,
    /// from the hourly rollups (which outlive the records). Nil keeps the store's zone.
    static func alignReportZone(_ pool: DatabasePool, _ zone: TimeZone?) throws -> TimeZone {
        try pool.write { db in
            let stored = try String.fetchOne(db, sql: "SELECT value FROM report_settings WHERE key = 'timeZone'")
            // Nil keeps the store's zone; a store that never counted its days counts them
            // in UTC, the default, until a hub names its zone.
            if zone == nil, let kept = stored.flatMap(TimeZone.init(identifier:)) { return kept }
            let zone = zone ?? .gmt
            guard stored != zone.identifier else { return zone }
            try Self.countDays(db, in: zone)
            try db.execute(
                sql: "INSERT INTO report_settings (key, value) VALUES ('timeZone', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                arguments: [zone.identifier]
            )
            return zone
        }
    }

    /// Counts the site-hour rollups from the hourly rollups, when they are first made.
    static func countSiteHours(_ db: Database) throws {
        let scores = ScoreCounts.columns
        let sums = scores.indices.map { "SUM(CASE score WHEN \($0) THEN count ELSE 0 END)" }
        try db.execute(
            sql: """
                INSERT INTO site_hours (hour, site, source, scale, misuse, \(scores.joined(separator: ", ")))
                SELECT hour, site, source, scale, misuse, \(sums.joined(separator: ", ")) FROM rollups
                WHERE score <= \(ScoreCounts.maxScore)
                GROUP BY hour, site, source, scale, misuse
                """
        )
    }

    /// Counts the daily rollups again, dates in `zone`, from the hourly rollups, inside the
    /// caller's transaction.
    static func countDays(_ db: Database, in zone: TimeZone) throws {
        try db.execute(sql: "DELETE FROM daily_rollups")
        let hours = try Int64.fetchAll(db, sql: "SELECT DISTINCT hour FROM rollups")
        try db.execute(sql: "CREATE TEMP TABLE hour_days (hour INTEGER PRIMARY KEY, day INTEGER NOT NULL)")
        defer { try? db.execute(sql: "DROP TABLE temp.hour_days") }
        let insert = try db.makeStatement(sql: "INSERT INTO temp.hour_days (hour, day) VALUES (?, ?)")
        for hour in hours { try insert.execute(arguments: [hour, RollupCounts.day(ofHour: hour, in: zone)]) }
        // A score's ratings go to its column (scores beyond the last column, which no valid
        // rating has, are left out, as at commit: ScoreCounts).
        let scores = ScoreCounts.columns
        let sums = scores.indices.map { "SUM(CASE r.score WHEN \($0) THEN r.count ELSE 0 END)" }
        try db.execute(
            sql: """
                INSERT INTO daily_rollups (day, site, source, scale, misuse, \(scores.joined(separator: ", ")))
                SELECT d.day, r.site, r.source, r.scale, r.misuse, \(sums.joined(separator: ", "))
                FROM rollups r JOIN temp.hour_days d ON d.hour = r.hour
                WHERE r.score <= \(ScoreCounts.maxScore)
                GROUP BY d.day, r.site, r.source, r.scale, r.misuse
                """
        )
    }

    /// Rollup rows matching `query`, summed over what it does not group by.
    public func rollups(_ query: RollupQuery) throws -> [RollupRow] {
        if query.resolution != .hour, !query.fitsDaily {
            throw StoreError("the daily and site-hour rollups keep site and source only")
        }
        let (table, time) = query.table
        var conditions = ["\(time) >= ?", "\(time) < ?"]
        var arguments: [any DatabaseValueConvertible] = [query.from, query.to]
        for (dimension, value) in query.filters.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            conditions.append("\(dimension.rawValue) = ?")
            arguments.append(dimension == .source ? Int(FeedbackRecord.Source(name: value)?.rawValue ?? 0) as any DatabaseValueConvertible : value)
        }
        if let (condition, globs) = query.scope.sqliteCondition {
            conditions.append(condition)
            arguments.append(contentsOf: globs.map { $0 as any DatabaseValueConvertible })
        }
        // Summed here rather than by SQL's GROUP BY: the range is read in key order and each
        // row added to a dictionary keyed by small integers (a group's texts interned as
        // they change), which is several times faster than SQLite's sorter over the
        // hundreds of thousands of cells a month of many sites holds. An hourly row counts
        // one score; a daily or site-hour row counts every score, one column each.
        let perScore = query.resolution != .hour
        let counts = perScore ? ScoreCounts.columns : ["score", "count"]
        let columns = query.groupBy.map(\.rawValue) + [time, "scale", "misuse"] + counts
        let sql = "SELECT \(columns.joined(separator: ", ")) FROM \(table) WHERE \(conditions.joined(separator: " AND "))"
        let dimensions = query.groupBy
        let byTime = query.byTime
        let maxRows = query.maxRows
        return try self.pool.read { db in
            let statement = try db.makeStatement(sql: sql)
            try statement.setArguments(StatementArguments(arguments))
            let raw = statement.sqliteStatement
            var interned = [Interner](repeating: Interner(), count: dimensions.count)
            var sums: [RollupKey: ScoreCounts] = [:]
            let first = Int32(dimensions.count)
            while true {
                let step = sqlite3_step(raw)
                if step == SQLITE_DONE { break }
                guard step == SQLITE_ROW else { throw StoreError("SQLite: \(String(cString: sqlite3_errmsg(sqlite3_db_handle(raw))))") }
                var key = RollupKey()
                for (index, dimension) in dimensions.enumerated() {
                    let column = Int32(index)
                    let id =
                        dimension == .source
                        ? Int32(sqlite3_column_int(raw, column)) : interned[index].id(sqlite3_column_text(raw, column), sqlite3_column_bytes(raw, column))
                    key.set(index, id)
                }
                key.time = byTime ? sqlite3_column_int64(raw, first) : 0
                key.scale = UInt8(clamping: sqlite3_column_int(raw, first + 1))
                key.misuse = sqlite3_column_int(raw, first + 2) != 0
                if perScore {
                    sums[key, default: ScoreCounts()].add { score in sqlite3_column_int64(raw, first + 3 + Int32(score)) }
                } else {
                    sums[key, default: ScoreCounts()].add(sqlite3_column_int64(raw, first + 4), score: UInt8(clamping: sqlite3_column_int(raw, first + 3)))
                }
                if sums.count > maxRows { throw RollupLimitExceeded(maxRows: maxRows) }
            }
            var rows: [RollupRow] = []
            for (key, counts) in sums {
                let group = dimensions.enumerated().map { index, dimension in
                    dimension == .source
                        ? (FeedbackRecord.Source(rawValue: UInt8(clamping: key.id(index)))?.name ?? "unknown")
                        : interned[index].texts[Int(key.id(index))]
                }
                for (score, count) in counts.counts.enumerated() where count != 0 {
                    rows.append(
                        RollupRow(group: group, time: byTime ? key.time : nil, scale: key.scale, score: UInt8(score), misuse: key.misuse, count: count)
                    )
                }
                if rows.count > maxRows { throw RollupLimitExceeded(maxRows: maxRows) }
            }
            return rows
        }
    }
}

/// A rollup row's group, time and scale as integers: what ``SQLiteStore/rollups(_:)`` sums
/// by (per score, in the value).
private struct RollupKey: Hashable {
    var ids: (Int32, Int32, Int32, Int32, Int32, Int32) = (0, 0, 0, 0, 0, 0)
    var time: Int64 = 0
    var scale: UInt8 = 0
    var misuse = false

    mutating func set(_ index: Int, _ id: Int32) {
        switch index {
        case 0: self.ids.0 = id
        case 1: self.ids.1 = id
        case 2: self.ids.2 = id
        case 3: self.ids.3 = id
        case 4: self.ids.4 = id
        default: self.ids.5 = id
        }
    }

    func id(_ index: Int) -> Int32 {
        switch index {
        case 0: self.ids.0
        case 1: self.ids.1
        case 2: self.ids.2
        case 3: self.ids.3
        case 4: self.ids.4
        default: self.ids.5
        }
    }

    static func == (a: RollupKey, b: RollupKey) -> Bool {
        a.ids == b.ids && a.time == b.time && a.scale == b.scale && a.misuse == b.misuse
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(self.ids.0)
        hasher.combine(self.ids.1)
        hasher.combine(self.ids.2)
        hasher.combine(self.ids.3)
        hasher.combine(self.ids.4)
        hasher.combine(self.ids.5)
        hasher.combine(self.time)
        hasher.combine(self.scale)
        hasher.combine(self.misuse)
    }
}

/// Small integer ids for the texts of one column, remembering the last text read so a run of
/// rows with the same text (a site's rows of a day) costs a byte comparison each.
private struct Interner {
    var texts: [String] = []
    var ids: [[UInt8]: Int32] = [:]
    var last: [UInt8] = []
    var lastID: Int32 = -1

    mutating func id(_ text: UnsafePointer<UInt8>?, _ count: Int32) -> Int32 {
        let length = Int(count)
        if self.lastID >= 0, self.last.count == length,
            length == 0 || (text.map { pointer in self.last.withUnsafeBufferPointer { $0.elementsEqual(UnsafeBufferPointer(start: pointer, count: length)) } } ?? false)
        {
            return self.lastID
        }
        let bytes = text.map { Array(UnsafeBufferPointer(start: $0, count: length)) } ?? []
        let id: Int32
        if let known = self.ids[bytes] {
            id = known
        } else {
            id = Int32(self.texts.count)
            self.texts.append(String(decoding: bytes, as: UTF8.self))
            self.ids[bytes] = id
        }
        self.last = bytes
        self.lastID = id
        return id
    }
}

extension SQLiteStore {
    public func ratings(_ query: RatingQuery) throws -> [FeedbackRecord] {
        var conditions = ["occurred_at >= ?", "occurred_at < ?"]
        var arguments: [any DatabaseValueConvertible] = [query.from, query.to]
        if let site = query.site {
            conditions.append("site = ?")
            arguments.append(site)
        }
        if query.negativeOnly { conditions.append("negative = 1") }
        if query.withComment { conditions.append("comment <> ''") }
        if let (condition, globs) = query.scope.sqliteCondition {
            conditions.append(condition)
            arguments.append(contentsOf: globs.map { $0 as any DatabaseValueConvertible })
        }
        if let after = query.after {
            conditions.append("(occurred_at, id) < (?, ?)")
            arguments.append(after.occurredAt)
            arguments.append(after.id)
        }
        arguments.append(query.limit)
        let sql = """
            SELECT id, origin, source, scale, score, occurred_at, captured_at, site, channel, subject, topic, survey, customer, comment,
                attributes FROM records
            WHERE \(conditions.joined(separator: " AND "))
            ORDER BY occurred_at DESC, id DESC LIMIT ?
            """
        return try self.pool.read { db in
            try Row.fetchAll(db, sql: sql, arguments: StatementArguments(arguments)).compactMap { row in
                guard let id = row["id"] as UUID?, let origin = row["origin"] as UUID?,
                    let source = FeedbackRecord.Source(rawValue: UInt8(clamping: row["source"] as Int)),
                    let scale = FeedbackRecord.Scale(rawValue: UInt8(clamping: row["scale"] as Int))
                else { return nil }
                return FeedbackRecord(
                    id: id, origin: origin, source: source, scale: scale, score: UInt8(clamping: row["score"] as Int),
                    occurredAt: row["occurred_at"], capturedAt: row["captured_at"], site: row["site"], channel: row["channel"],
                    subject: row["subject"], topic: row["topic"], survey: row["survey"], customer: row["customer"], comment: row["comment"],
                    attributes: AttributesJSON.decode(row["attributes"]) ?? [:]
                )
            }
        }
    }
}

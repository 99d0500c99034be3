import Foundation
import PostgresNIO
import Wire

extension PostgresStore {
    /// Adds `counts` to the hourly rollups, and to the daily and site-hour ones unless
    /// `sites` is false (a migration that makes those later), inside the caller's
    /// transaction, one statement each, rows in ``RollupCounts/sorted`` order (kept with
    /// `WITH ORDINALITY`), so two writers adding to the same cells lock them in one order
    /// and never deadlock.
    static func addRollups(_ counts: RollupCounts, _ session: PostgresSession, sites: Bool = true) throws {
        let rows = counts.sorted
        if !rows.isEmpty {
            let cells = rows.map(\.cell)
            try session.execute(
                """
                INSERT INTO rollups (hour, site, subject, channel, topic, source, survey, scale, score, misuse, count)
                SELECT h, si, su, ch, tp, so, sv, sc, sr, mi, n
                FROM UNNEST(\(cells.map(\.hour))::int8[], \(cells.map(\.site))::text[], \(cells.map(\.subject))::text[],
                    \(cells.map(\.channel))::text[], \(cells.map(\.topic))::text[], \(cells.map { Int16($0.source) })::int2[],
                    \(cells.map(\.survey))::text[], \(cells.map { Int16($0.scale) })::int2[], \(cells.map { Int16($0.score) })::int2[],
                    \(cells.map(\.misuse))::bool[], \(rows.map(\.count))::int8[]) WITH ORDINALITY AS t(h, si, su, ch, tp, so, sv, sc, sr, mi, n, o)
                ORDER BY o
                ON CONFLICT (hour, site, subject, channel, topic, source, survey, scale, score, misuse)
                DO UPDATE SET count = rollups.count + excluded.count
                """
            )
        }
        guard sites else { return }
        try Self.addSiteRows(counts.sortedDays, to: "daily_rollups", session)
        try Self.addSiteRows(counts.sortedSiteHours, to: "site_hours", session)
    }

    /// Adds `rows` to a site rollup table (`daily_rollups` or `site_hours`, whose time column
    /// is first in the key), in their order.
    private static func addSiteRows(_ rows: [(cell: SiteCell, counts: ScoreCounts)], to table: String, _ session: PostgresSession) throws {
        guard !rows.isEmpty else { return }
        let cells = rows.map(\.cell)
        // One int8[] per score column: s0's counts, then s1's, … (names from ScoreCounts,
        // never from a request).
        let scores = ScoreCounts.columns
        let time = table == "daily_rollups" ? "day" : "hour"
        var bindings = PostgresBindings()
        bindings.append(cells.map(\.time))
        bindings.append(cells.map(\.site))
        bindings.append(cells.map { Int16($0.source) })
        bindings.append(cells.map { Int16($0.scale) })
        bindings.append(cells.map(\.misuse))
        for score in scores.indices { bindings.append(rows.map { $0.counts.counts[score] }) }
        let arrays = ["$1::int8[]", "$2::text[]", "$3::int2[]", "$4::int2[]", "$5::bool[]"] + scores.indices.map { "$\($0 + 6)::int8[]" }
        let names = ["t", "si", "so", "sc", "mi"] + scores
        try session.execute(
            PostgresQuery(
                unsafeSQL: """
                    INSERT INTO \(table) (\(time), site, source, scale, misuse, \(scores.joined(separator: ", ")))
                    SELECT \(names.joined(separator: ", "))
                    FROM UNNEST(\(arrays.joined(separator: ", "))) WITH ORDINALITY AS u(\(names.joined(separator: ", ")), o)
                    ORDER BY o
                    ON CONFLICT (\(time), site, source, scale, misuse)
                    DO UPDATE SET \(scores.map { "\($0) = \(table).\($0) + excluded.\($0)" }.joined(separator: ", "))
                    """,
                binds: bindings
            )
        )
    }

    /// Hours of hourly rollups each recount statement reads: a week, so no statement of a
    /// large store's recount runs into the session's 30-second statement timeout.
    static let recountHours = 168

    /// The distinct hours of the hourly rollups, in order.
    private static func rollupHours(_ session: PostgresSession) throws -> [Int64] {
        var hours: [Int64] = []
        for row in try session.query("SELECT DISTINCT hour FROM rollups ORDER BY hour") { hours.append(try row.decode(Int64.self)) }
        return hours
    }

    /// Counts the site-hour rollups from the hourly rollups, when they are first made, a
    /// week of hours per statement.
    static func countSiteHours(_ session: PostgresSession) throws {
        let scores = ScoreCounts.columns
        let sums = scores.indices.map { "SUM(CASE score WHEN \($0) THEN count ELSE 0 END)::int8" }
        let hours = try Self.rollupHours(session)
        for start in stride(from: 0, to: hours.count, by: Self.recountHours) {
            let (first, last) = (hours[start], hours[min(start + Self.recountHours, hours.count) - 1])
            try session.execute(
                PostgresQuery(
                    unsafeSQL: """
                        INSERT INTO site_hours (hour, site, source, scale, misuse, \(scores.joined(separator: ", ")))
                        SELECT hour, site, source, scale, misuse, \(sums.joined(separator: ", ")) FROM rollups
                        WHERE score <= \(ScoreCounts.maxScore) AND hour >= \(first) AND hour <= \(last)
                        GROUP BY hour, site, source, scale, misuse
                        """
                )
            )
        }
    }

    /// Counts the daily rollups again, dates in `zone`, from the hourly rollups, inside the
    /// caller's transaction, a week of hours per statement (a day that two statements
    /// share is added to by the second).
    static func countDays(_ session: PostgresSession, in zone: TimeZone) throws {
        try session.execute("DELETE FROM daily_rollups")
        let allHours = try Self.rollupHours(session)
        // A score's ratings go to its column; scores beyond the last column, which no valid
        // rating has, are left out, as at commit (ScoreCounts).
        let scores = ScoreCounts.columns
        let sums = scores.indices.map { "SUM(CASE r.score WHEN \($0) THEN r.count ELSE 0 END)::int8" }
        for start in stride(from: 0, to: allHours.count, by: Self.recountHours) {
            let hours = Array(allHours[start..<min(start + Self.recountHours, allHours.count)])
            var bindings = PostgresBindings()
            bindings.append(hours)
            bindings.append(hours.map { RollupCounts.day(ofHour: $0, in: zone) })
            try session.execute(
                PostgresQuery(
                    unsafeSQL: """
                        INSERT INTO daily_rollups (day, site, source, scale, misuse, \(scores.joined(separator: ", ")))
                        SELECT d.day, r.site, r.source, r.scale, r.misuse, \(sums.joined(separator: ", "))
                        FROM rollups r JOIN UNNEST($1::int8[], $2::int8[]) AS d(hour, day) ON d.hour = r.hour
                        WHERE r.score <= \(ScoreCounts.maxScore)
                        GROUP BY d.day, r.site, r.source, r.scale, r.misuse
                        ON CONFLICT (day, site, source, scale, misuse)
                        DO UPDATE SET \(scores.map { "\($0) = daily_rollups.\($0) + excluded.\($0)" }.joined(separator: ", "))
                        """,
                    binds: bindings
                )
            )
        }
    }

    /// Counts the records already stored into the hourly rollups when they are first made,
    /// 20,000 at a time in id order (the daily ones are counted from these at start).
    static func backfillRollups(_ session: PostgresSession) throws {
        var after: UUID?
        while true {
            var counts = RollupCounts(zone: .gmt)
            var last: UUID?
            for row in try session.query(
                """
                SELECT id, occurred_at, site, subject, channel, topic, source, survey, scale, score, attributes FROM records
                WHERE \(after)::uuid IS NULL OR id > \(after) ORDER BY id LIMIT 20000
                """
            ) {
                let (id, occurredAt, site, subject, channel, topic, source, survey, scale, score, attributes) =
                    try row.decode((UUID, Int64, String, String, String, String, Int16, String, Int16, Int16, String).self)
                counts.add(
                    RollupCell(
                        hour: RollupCell.hour(of: occurredAt), site: site, subject: subject, channel: channel, topic: topic,
                        source: UInt8(clamping: source), survey: survey, scale: UInt8(clamping: scale), score: UInt8(clamping: score),
                        misuse: AttributesJSON.isFlaggedMisuse(attributes)
                    ),
                    occurredAt: occurredAt
                )
                last = id
            }
            guard let last else { return }
            try Self.addRollups(counts, session, sites: false)
            after = last
        }
    }

    public func rollups(_ query: RollupQuery) throws -> [RollupRow] {
        if query.resolution != .hour, !query.fitsDaily {
            throw StoreError("the daily and site-hour rollups keep site and source only")
        }
        // Table, column and dimension names come from closed enums, never from the request.
        let (table, time) = query.table
        // An hourly row counts one score; a daily or site-hour row every score, one column each.
        let daily = query.resolution != .hour
        let groups = query.groupBy.map(\.rawValue) + (query.byTime ? [time] : []) + ["scale", "misuse"] + (daily ? [] : ["score"])
        let sums = daily ? ScoreCounts.columns.map { "SUM(\($0))::int8" } : ["SUM(count)::int8"]
        var sql = "SELECT \((groups + sums).joined(separator: ", ")) FROM \(table) WHERE \(time) >= $1 AND \(time) < $2"
        var bindings = PostgresBindings()
        bindings.append(query.from)
        bindings.append(query.to)
        for (dimension, value) in query.filters.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            if dimension == .source {
                bindings.append(Int16(FeedbackRecord.Source(name: value)?.rawValue ?? 0))
            } else {
                bindings.append(value)
            }
            sql += " AND \(dimension.rawValue) = $\(bindings.count)"
        }
        if !query.scope.allowsAnySite {
            bindings.append(query.scope.postgresLikePatterns)
            sql += " AND site LIKE ANY ($\(bindings.count)::text[])"
        }
        sql += " GROUP BY \(groups.joined(separator: ", ")) LIMIT \(query.maxRows + 1)"
        let statement = PostgresQuery(unsafeSQL: sql, binds: bindings)
        let rows = try self.pool.withSession { session in
            var rows: [RollupRow] = []
            for row in try session.query(statement) {
                let columns = row.makeRandomAccess()
                var group: [String] = []
                for (index, dimension) in query.groupBy.enumerated() {
                    if dimension == .source {
                        let raw = try columns[index].decode(Int16.self)
                        group.append(FeedbackRecord.Source(rawValue: UInt8(clamping: raw))?.name ?? "unknown")
                    } else {
                        group.append(try columns[index].decode(String.self))
                    }
                }
                var next = query.groupBy.count
                var time: Int64?
                if query.byTime {
                    time = try columns[next].decode(Int64.self)
                    next += 1
                }
                let scale = UInt8(clamping: try columns[next].decode(Int16.self))
                let misuse = try columns[next + 1].decode(Bool.self)
                if daily {
                    for score in ScoreCounts.columns.indices {
                        let count = try columns[next + 2 + score].decode(Int64.self)
                        if count != 0 {
                            rows.append(RollupRow(group: group, time: time, scale: scale, score: UInt8(score), misuse: misuse, count: count))
                        }
                    }
                } else {
                    let score = UInt8(clamping: try columns[next + 2].decode(Int16.self))
                    rows.append(RollupRow(group: group, time: time, scale: scale, score: score, misuse: misuse, count: try columns[next + 3].decode(Int64.self)))
                }
                if rows.count > query.maxRows { throw RollupLimitExceeded(maxRows: query.maxRows) }
            }
            return rows
        }
        return rows
    }
}

extension PostgresStore {
    public func ratings(_ query: RatingQuery) throws -> [FeedbackRecord] {
        let patterns: [String]? = query.scope.allowsAnySite ? nil : query.scope.postgresLikePatterns
        return try self.pool.withSession { session in
            try session.query(
                """
                SELECT id, origin, source, scale, score, occurred_at, captured_at, site, channel, subject, topic, survey, customer, comment,
                    attributes FROM records
                WHERE occurred_at >= \(query.from) AND occurred_at < \(query.to)
                    AND (\(query.site)::text IS NULL OR site = \(query.site))
                    AND (NOT \(query.negativeOnly) OR negative)
                    AND (NOT \(query.withComment) OR comment <> '')
                    AND (\(patterns)::text[] IS NULL OR site LIKE ANY (\(patterns)::text[]))
                    AND (\(query.after?.occurredAt)::int8 IS NULL OR (occurred_at, id) < (\(query.after?.occurredAt), \(query.after?.id)))
                ORDER BY occurred_at DESC, id DESC LIMIT \(Int64(query.limit))
                """
            ).compactMap { row -> FeedbackRecord? in
                let (id, origin, source, scale, score, occurredAt, capturedAt, site, channel, subject, topic, survey, customer, comment, attributes) =
                    try row.decode((UUID, UUID, Int16, Int16, Int16, Int64, Int64, String, String, String, String, String, String, String, String).self)
                guard let source = FeedbackRecord.Source(rawValue: UInt8(clamping: source)),
                    let scale = FeedbackRecord.Scale(rawValue: UInt8(clamping: scale))
                else { return nil }
                return FeedbackRecord(
                    id: id, origin: origin, source: source, scale: scale, score: UInt8(clamping: score), occurredAt: occurredAt,
                    capturedAt: capturedAt, site: site, channel: channel, subject: subject, topic: topic, survey: survey, customer: customer,
                    comment: comment, attributes: AttributesJSON.decode(attributes) ?? [:]
                )
            }
        }
    }
}

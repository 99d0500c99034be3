import Foundation
import PostgresNIO
import Wire

extension PostgresStore {
    /// Adds `counts` to the hourly rollups, and the daily ones unless `daily` is false,
    /// inside the caller's transaction, one statement each, rows in ``RollupCounts/sorted``
    /// order (kept with `WITH ORDINALITY`), so two writers adding to the same cells lock
    /// them in one order and never deadlock.
    static func addRollups(_ counts: RollupCounts, _ session: PostgresSession, daily: Bool = true) throws {
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
        let days = counts.sortedDays
        guard daily, !days.isEmpty else { return }
        let cells = days.map(\.cell)
        try session.execute(
            """
            INSERT INTO daily_rollups (day, site, source, scale, score, misuse, count)
            SELECT d, si, so, sc, sr, mi, n
            FROM UNNEST(\(cells.map(\.day))::int8[], \(cells.map(\.site))::text[], \(cells.map { Int16($0.source) })::int2[],
                \(cells.map { Int16($0.scale) })::int2[], \(cells.map { Int16($0.score) })::int2[], \(cells.map(\.misuse))::bool[],
                \(days.map(\.count))::int8[]) WITH ORDINALITY AS t(d, si, so, sc, sr, mi, n, o)
            ORDER BY o
            ON CONFLICT (day, site, source, scale, score, misuse) DO UPDATE SET count = daily_rollups.count + excluded.count
            """
        )
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
            try Self.addRollups(counts, session, daily: false)
            after = last
        }
    }

    public func rollups(_ query: RollupQuery) throws -> [RollupRow] {
        if query.resolution == .day, !query.fitsDaily {
            throw StoreError("the daily rollups keep site and source only")
        }
        // Table, column and dimension names come from closed enums, never from the request.
        let (table, time) = query.table
        let groups = query.groupBy.map(\.rawValue) + (query.byTime ? [time] : []) + ["scale", "score", "misuse"]
        var sql = "SELECT \(groups.joined(separator: ", ")), SUM(count)::int8 FROM \(table) WHERE \(time) >= $1 AND \(time) < $2"
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
            try session.query(statement).map { row in
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
                return RollupRow(
                    group: group, time: time, scale: UInt8(clamping: try columns[next].decode(Int16.self)),
                    score: UInt8(clamping: try columns[next + 1].decode(Int16.self)), misuse: try columns[next + 2].decode(Bool.self),
                    count: try columns[next + 3].decode(Int64.self)
                )
            }
        }
        guard rows.count <= query.maxRows else { throw RollupLimitExceeded(maxRows: query.maxRows) }
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

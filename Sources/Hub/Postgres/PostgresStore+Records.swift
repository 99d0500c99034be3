import Foundation
import PostgresNIO
import Wire

extension PostgresStore: RecordStore {
    /// One transaction: the batches' keys (`ON CONFLICT DO NOTHING`, so the database decides
    /// which are new, across every hub), the records of the new ones (likewise by id), their
    /// counts, and the alerts the new records raise. Rows go in sorted by key, so two hubs
    /// committing overlapping batches take their locks in one order and never deadlock.
    public func commit(_ batches: [IncomingBatch]) throws -> [CommitOutcome] {
        guard !batches.isEmpty else { return [] }
        let storedAt = Int64(Date().timeIntervalSince1970 * 1000)
        let zone = self.reportZone
        let (outcomes, raised) = try self.pool.transaction { session -> ([CommitOutcome], Int) in
            let keys = batches.map(\.key)
            var newKeys = Set<BatchKey>()
            for row in try session.query(
                """
                INSERT INTO batches (origin, sequence, record_count, stored_records, received_at)
                SELECT o, s, c, 0, r FROM UNNEST(\(keys.map(\.origin))::uuid[], \(keys.map { Int64(bitPattern: $0.sequence) })::int8[],
                    \(batches.map { Int32(clamping: $0.records.count) })::int4[], \(batches.map(\.receivedAt))::int8[]) AS t(o, s, c, r)
                ORDER BY o, s
                ON CONFLICT DO NOTHING
                RETURNING origin, sequence
                """
            ) {
                let (origin, sequence) = try row.decode((UUID, Int64).self)
                newKeys.insert(BatchKey(origin: origin, sequence: UInt64(bitPattern: sequence)))
            }
            // A batch twice in one transaction: its first place stores it.
            var firstPlace: [BatchKey: Int] = [:]
            for (index, key) in keys.enumerated() where newKeys.contains(key) && firstPlace[key] == nil { firstPlace[key] = index }
            let stored = batches.indices.filter { firstPlace[batches[$0].key] == $0 }
            let newIDs = try self.insertRecords(of: stored.map { batches[$0] }, storedAt: storedAt, session)

            var outcomes = [CommitOutcome](repeating: .duplicate, count: batches.count)
            var claimed = newIDs
            // Each new record counts for the first stored batch that holds it.
            let fresh = stored.map { index in (index, batches[index].records.filter { claimed.remove($0.id) != nil }) }
            let ledger = PostgresAlertLedger(session: session)
            if self.evaluator.readsRatings {
                try PostgresAlertLedger.lockWindows(fresh.flatMap { $0.1.flatMap(self.evaluator.windows(of:)) }, session)
            }
            var rollups = RollupCounts(zone: zone)
            for (_, records) in fresh { for record in records { rollups.add(record) } }
            try Self.addRollups(rollups, session)
            var counts: [(key: BatchKey, count: Int32)] = []
            for (index, records) in fresh {
                // Only a record stored for the first time can alert: duplicates never do.
                if self.evaluator.readsRatings {
                    for record in records { try self.evaluator.raise(for: record, now: storedAt, in: ledger) }
                }
                outcomes[index] = .stored(newRecords: records.count)
                counts.append((batches[index].key, Int32(records.count)))
            }
            if !counts.isEmpty {
                try session.execute(
                    """
                    UPDATE batches b SET stored_records = t.n
                    FROM UNNEST(\(counts.map { $0.key.origin })::uuid[], \(counts.map { Int64(bitPattern: $0.key.sequence) })::int8[],
                        \(counts.map { $0.count })::int4[]) AS t(o, s, n)
                    WHERE b.origin = t.o AND b.sequence = t.s
                    """
                )
            }
            return (outcomes, try ledger.flush())
        }
        self.announce(raised)
        return outcomes
    }

    /// Inserts the records of `batches` in one statement (arrays, one per column: a constant
    /// number of parameters whatever the batch size); returns the ids stored for the first time.
    private func insertRecords(of batches: [IncomingBatch], storedAt: Int64, _ session: PostgresSession) throws -> Set<UUID> {
        var columns = RecordColumns()
        for batch in batches {
            for record in batch.records { columns.append(record, sequence: Int64(bitPattern: batch.key.sequence), storedAt: storedAt) }
        }
        guard !columns.id.isEmpty else { return [] }
        var newIDs = Set<UUID>(minimumCapacity: columns.id.count)
        for row in try session.query(
            """
            INSERT INTO records (id, origin, sequence, source, scale, score, negative, occurred_at, captured_at, stored_at,
                site, channel, subject, topic, survey, customer, comment, attributes)
            SELECT * FROM UNNEST(\(columns.id)::uuid[], \(columns.origin)::uuid[], \(columns.sequence)::int8[],
                \(columns.source)::int2[], \(columns.scale)::int2[], \(columns.score)::int2[], \(columns.negative)::bool[],
                \(columns.occurredAt)::int8[], \(columns.capturedAt)::int8[], \(columns.storedAt)::int8[],
                \(columns.site)::text[], \(columns.channel)::text[], \(columns.subject)::text[], \(columns.topic)::text[],
                \(columns.survey)::text[], \(columns.customer)::text[], \(columns.comment)::text[], \(columns.attributes)::text[])
                AS t(id, origin, sequence, source, scale, score, negative, occurred_at, captured_at, stored_at,
                    site, channel, subject, topic, survey, customer, comment, attributes)
            ORDER BY id
            ON CONFLICT (id) DO NOTHING
            RETURNING id
            """
        ) {
            newIDs.insert(try row.decode(UUID.self))
        }
        return newIDs
    }

    public func isCommitted(_ key: BatchKey) throws -> Bool {
        try self.pool.withSession { session in
            try session.query(
                "SELECT EXISTS (SELECT 1 FROM batches WHERE origin = \(key.origin) AND sequence = \(Int64(bitPattern: key.sequence)))"
            ).first?.decode(Bool.self) ?? false
        }
    }

    /// `postgres.commitWriters`: concurrent commits are safe, the unique keys and the window
    /// locks decide between them as they do between hubs.
    public var commitWriters: Int { self.settings.commitWriters }

    public func committedSequence(origin: UUID) throws -> UInt64 {
        try self.pool.withSession { session in
            let value = try session.query("SELECT MAX(sequence) FROM batches WHERE origin = \(origin)").first?.decode(Int64?.self)
            return UInt64(bitPattern: (value ?? nil) ?? 0)
        }
    }

    public func recordCount() throws -> Int {
        try self.pool.withSession { try $0.query("SELECT COUNT(*) FROM records").first?.decode(Int.self) ?? 0 }
    }

    public func batchCount() throws -> Int {
        try self.pool.withSession { try $0.query("SELECT COUNT(*) FROM batches").first?.decode(Int.self) ?? 0 }
    }
}

/// Records as one array per column, for `UNNEST`.
struct RecordColumns {
    var id: [UUID] = []
    var origin: [UUID] = []
    var sequence: [Int64] = []
    var source: [Int16] = []
    var scale: [Int16] = []
    var score: [Int16] = []
    var negative: [Bool] = []
    var occurredAt: [Int64] = []
    var capturedAt: [Int64] = []
    var storedAt: [Int64] = []
    var site: [String] = []
    var channel: [String] = []
    var subject: [String] = []
    var topic: [String] = []
    var survey: [String] = []
    var customer: [String] = []
    var comment: [String] = []
    var attributes: [String] = []

    mutating func append(_ record: FeedbackRecord, sequence: Int64, storedAt: Int64) {
        self.id.append(record.id)
        self.origin.append(record.origin)
        self.sequence.append(sequence)
        self.source.append(Int16(record.source.rawValue))
        self.scale.append(Int16(record.scale.rawValue))
        self.score.append(Int16(record.score))
        self.negative.append(record.isNegative)
        self.occurredAt.append(record.occurredAt)
        self.capturedAt.append(record.capturedAt)
        self.storedAt.append(storedAt)
        self.site.append(record.site)
        self.channel.append(record.channel)
        self.subject.append(record.subject)
        self.topic.append(record.topic)
        self.survey.append(record.survey)
        self.customer.append(record.customer)
        self.comment.append(record.comment)
        self.attributes.append(AttributesJSON.encode(record.attributes))
    }
}

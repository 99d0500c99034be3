import Foundation
import GRDB
import GRDBSQLite
import Support
import Wire

extension SQLiteStore: RecordStore {
    public func commit(_ batches: [IncomingBatch]) throws -> [CommitOutcome] {
        var remaining = batches[...]
        return try self.commit(pulling: { remaining.popFirst() })
    }

    /// True: each batch is stored as the transaction takes it.
    public var takesBatchesAsItGoes: Bool { true }

    public func commit(pulling next: () -> IncomingBatch?) throws -> [CommitOutcome] {
        var storedAt = Int64(Date().timeIntervalSince1970 * 1000)
        let evaluator = self.evaluator
        let zone = self.reportZone
        var raised = 0
        let outcomes = try self.pool.writeWithoutTransaction { db in
            var outcomes: [CommitOutcome] = []
            try db.inTransaction(.immediate) {
                let ledger = SQLiteAlertLedger(db: db)
                var rollups = RollupCounts(zone: zone)
                let connection = db.sqliteConnection
                let insertBatch = try db.cachedStatement(
                    sql: "INSERT OR IGNORE INTO batches (origin, sequence, record_count, stored_records, received_at) VALUES (?, ?, ?, 0, ?)"
                ).sqliteStatement
                let countBatch = try db.cachedStatement(
                    sql: "UPDATE batches SET stored_records = ? WHERE origin = ? AND sequence = ?"
                ).sqliteStatement
                let insertRecord = try db.cachedStatement(sql: Self.insertRecordSQL).sqliteStatement
                while let batch = next() {
                    // A batch taken late in a long transaction is stored (and alerts) at its own time.
                    storedAt = max(storedAt, Int64(Date().timeIntervalSince1970 * 1000))
                    let sequence = Int64(bitPattern: batch.key.sequence)
                    sqlite3_reset(insertBatch)
                    Self.bind(insertBatch, 1, batch.key.origin)
                    sqlite3_bind_int64(insertBatch, 2, sequence)
                    sqlite3_bind_int64(insertBatch, 3, Int64(batch.records.count))
                    sqlite3_bind_int64(insertBatch, 4, batch.receivedAt)
                    try Self.step(insertBatch, connection)
                    guard sqlite3_changes(connection) == 1 else {
                        outcomes.append(.duplicate)
                        continue
                    }
                    var newRecords = 0
                    for record in batch.records {
                        sqlite3_reset(insertRecord)
                        Self.bindRecord(
                            insertRecord, record, sequence: sequence, storedAt: storedAt, attributes: AttributesJSON.encode(record.attributes)
                        )
                        try Self.step(insertRecord, connection)
                        guard sqlite3_changes(connection) == 1 else { continue }
                        newRecords += 1
                        rollups.add(record)
                        // Only a record stored for the first time can alert: duplicates never do.
                        if evaluator.readsRatings {
                            try evaluator.raise(for: record, now: storedAt, in: ledger)
                        }
                    }
                    sqlite3_reset(countBatch)
                    sqlite3_bind_int64(countBatch, 1, Int64(newRecords))
                    Self.bind(countBatch, 2, batch.key.origin)
                    sqlite3_bind_int64(countBatch, 3, sequence)
                    try Self.step(countBatch, connection)
                    outcomes.append(.stored(newRecords: newRecords))
                }
                try Self.addRollups(rollups, db)
                raised = ledger.raised
                return .commit
            }
            return outcomes
        }
        self.announce(raised)
        return outcomes
    }

    public func isCommitted(_ key: BatchKey) throws -> Bool {
        try self.pool.read { db in
            try Bool.fetchOne(
                db, sql: "SELECT EXISTS (SELECT 1 FROM batches WHERE origin = ? AND sequence = ?)",
                arguments: [key.origin, Int64(bitPattern: key.sequence)]
            ) ?? false
        }
    }

    public func committedSequence(origin: UUID) throws -> UInt64 {
        try self.pool.read { db in
            let value = try Int64.fetchOne(db, sql: "SELECT MAX(sequence) FROM batches WHERE origin = ?", arguments: [origin])
            return UInt64(bitPattern: value ?? 0)
        }
    }

    public func recordCount() throws -> Int {
        try self.pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM records") ?? 0 }
    }

    public func batchCount() throws -> Int {
        try self.pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM batches") ?? 0 }
    }

    // SQLite copies bound values (SQLITE_TRANSIENT) before the call returns.
    static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    /// The statement that stores one record, its parameters bound by
    /// ``bindRecord(_:_:sequence:storedAt:attributes:)``: the commit's, and what
    /// `feedback-bench raw-insert` measures without the hub.
    public static let insertRecordSQL = """
        INSERT OR IGNORE INTO records (id, origin, sequence, source, scale, score, negative,
            occurred_at, captured_at, stored_at, site, channel, subject, topic, survey,
            customer, comment, attributes)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """

    /// Binds `record` of batch `sequence`, stored at `storedAt` (ms since the epoch), with
    /// `attributes` as their JSON text, to a prepared ``insertRecordSQL``.
    public static func bindRecord(_ statement: OpaquePointer, _ record: FeedbackRecord, sequence: Int64, storedAt: Int64, attributes: String) {
        Self.bind(statement, 1, record.id)
        Self.bind(statement, 2, record.origin)
        sqlite3_bind_int64(statement, 3, sequence)
        sqlite3_bind_int(statement, 4, Int32(record.source.rawValue))
        sqlite3_bind_int(statement, 5, Int32(record.scale.rawValue))
        sqlite3_bind_int(statement, 6, Int32(record.score))
        sqlite3_bind_int(statement, 7, record.isNegative ? 1 : 0)
        sqlite3_bind_int64(statement, 8, record.occurredAt)
        sqlite3_bind_int64(statement, 9, record.capturedAt)
        sqlite3_bind_int64(statement, 10, storedAt)
        Self.bind(statement, 11, record.site)
        Self.bind(statement, 12, record.channel)
        Self.bind(statement, 13, record.subject)
        Self.bind(statement, 14, record.topic)
        Self.bind(statement, 15, record.survey)
        Self.bind(statement, 16, record.customer)
        Self.bind(statement, 17, record.comment)
        Self.bind(statement, 18, attributes)
    }

    static func bind(_ statement: OpaquePointer, _ index: Int32, _ uuid: UUID) {
        withUnsafeBytes(of: uuid.uuid) { _ = sqlite3_bind_blob(statement, index, $0.baseAddress, 16, Self.transient) }
    }

    static func bind(_ statement: OpaquePointer, _ index: Int32, _ text: String) {
        _ = sqlite3_bind_text(statement, index, text, Int32(text.utf8.count), Self.transient)
    }

    static func step(_ statement: OpaquePointer, _ connection: OpaquePointer?) throws {
        let result = sqlite3_step(statement)
        guard result == SQLITE_DONE else {
            throw StoreError("SQLite: \(String(cString: sqlite3_errmsg(connection)))")
        }
    }
}

/// Attributes as a compact JSON object with sorted keys, for the `attributes` column.
enum AttributesJSON {
    static func encode(_ attributes: [String: String]) -> String {
        if attributes.isEmpty { return "{}" }
        var out: [UInt8] = [UInt8(ascii: "{")]
        out.reserveCapacity(64)
        for (index, key) in attributes.keys.sorted().enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            Self.append(key, to: &out)
            out.append(UInt8(ascii: ":"))
            Self.append(attributes[key] ?? "", to: &out)
        }
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }

    /// The attributes of an `attributes` column; nil if it is not a JSON object of strings.
    static func decode(_ text: String) -> [String: String]? {
        try? JSONDecoder().decode([String: String].self, from: Data(text.utf8))
    }

    /// Whether an `attributes` column flags its record as misuse
    /// (``FeedbackRecord/isFlaggedMisuse(_:)``); decoded only when it names the attribute.
    static func isFlaggedMisuse(_ text: String) -> Bool {
        guard text.contains(FeedbackRecord.misuseAttribute) else { return false }
        return Self.decode(text).map(FeedbackRecord.isFlaggedMisuse) ?? false
    }

    /// Appends `string` as a quoted JSON string (``JSONWriter/append(string:to:)``).
    static func append(_ string: String, to out: inout [UInt8]) {
        JSONWriter.append(string: string, to: &out)
    }

    /// Appends `string` as a quoted JSON string to text.
    static func append(_ string: String, to out: inout String) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(string.utf8.count + 2)
        Self.append(string, to: &bytes)
        out += String(decoding: bytes, as: UTF8.self)
    }
}

import AgentBench
import ArgumentParser
import Foundation
import GRDBSQLite
import Hub
import Support
import Wire

/// `feedback-bench raw-insert`: the storage engine's limit for the hub's ingest. Makes a
/// store with the hub's own schema (``SQLiteStore``'s migrations), closes it, and inserts
/// synthetic ratings with SQLite's C API alone: the hub's statements (a batch row, the
/// records with the commit's own statement and bindings, the batch's count), WAL and
/// `synchronous = FULL` as the hub sets them, the hub's transaction size; no TLS, no
/// decoding, no rollups, no alerts. What the hub's ingest is measured against
/// (`scripts/bench-limit.sh`, docs/BENCHMARKS.md).
struct RawInsertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "raw-insert",
        abstract: "Measures raw inserts into the hub's SQLite schema without the hub (docs/BENCHMARKS.md)."
    )

    @Option(help: "A folder to make the store in (it must not hold one yet).")
    var store: String

    @Option(help: "Ratings to insert, 1–100000000.")
    var records = 2_000_000

    @Option(help: "Ratings per batch, 1–100000 (the hub's load uses 1000).")
    var batchRecords = 1_000

    @Option(help: "Batches per transaction, 1–10000 (what the hub's group commit took on average).")
    var transactionBatches = 50

    func validate() throws {
        try RangeError.check(self.records, 1...100_000_000, "--records")
        try RangeError.check(self.batchRecords, 1...100_000, "--batch-records")
        try RangeError.check(self.transactionBatches, 1...10_000, "--transaction-batches")
    }

    func run() throws {
        let path = URL(fileURLWithPath: self.store).appendingPathComponent("feedback.sqlite").path
        guard !FileManager.default.fileExists(atPath: path) else { throw ValidationError("\(path) exists; name an empty folder") }
        try FileManager.default.createDirectory(atPath: self.store, withIntermediateDirectories: true)
        // The hub's schema, every migration, then closed: what follows is SQLite alone.
        _ = try SQLiteStore(path: path)

        var connection: OpaquePointer?
        guard sqlite3_open_v2(path, &connection, SQLITE_OPEN_READWRITE, nil) == SQLITE_OK, let db = connection else {
            throw ValidationError("cannot open \(path)")
        }
        defer { sqlite3_close_v2(db) }
        func execute(_ sql: String) throws {
            guard sqlite3_exec(db, sql, nil, nil, nil) == SQLITE_OK else { throw ValidationError("SQLite: \(String(cString: sqlite3_errmsg(db)))") }
        }
        func prepare(_ sql: String) throws -> OpaquePointer {
            var statement: OpaquePointer?
            guard sqlite3_prepare_v3(db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil) == SQLITE_OK, let statement else {
                throw ValidationError("SQLite: \(String(cString: sqlite3_errmsg(db)))")
            }
            return statement
        }
        func step(_ statement: OpaquePointer) throws {
            guard sqlite3_step(statement) == SQLITE_DONE else { throw ValidationError("SQLite: \(String(cString: sqlite3_errmsg(db)))") }
            sqlite3_reset(statement)
        }
        try execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL")
        let insertBatch = try prepare(
            "INSERT OR IGNORE INTO batches (origin, sequence, record_count, stored_records, received_at) VALUES (?, ?, ?, 0, ?)"
        )
        let countBatch = try prepare("UPDATE batches SET stored_records = ? WHERE origin = ? AND sequence = ?")
        let insertRecord = try prepare(SQLiteStore.insertRecordSQL)
        defer { [insertBatch, countBatch, insertRecord].forEach { sqlite3_finalize($0) } }
        let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
        func bind(_ statement: OpaquePointer, _ index: Int32, _ uuid: UUID) {
            withUnsafeBytes(of: uuid.uuid) { _ = sqlite3_bind_blob(statement, index, $0.baseAddress, 16, transient) }
        }

        // Every batch made before the clock starts, as the hub's load seals its batches first.
        var ratings = SyntheticRatings(origin: UUID())
        // Attributes as the JSON text the hub stores, made beforehand too.
        var batches: [[(record: FeedbackRecord, attributes: String)]] = []
        var left = self.records
        while left > 0 {
            let records = ratings.next(min(self.batchRecords, left))
            batches.append(records.map { ($0, String(decoding: JSONWriter.encode($0.attributes) ?? Array("{}".utf8), as: UTF8.self)) })
            left -= records.count
        }
        let origin = ratings.origin
        let started = ContinuousClock.now
        var sequence: Int64 = 0
        var transactions = 0
        for group in stride(from: 0, to: batches.count, by: self.transactionBatches) {
            try execute("BEGIN IMMEDIATE")
            let storedAt = Int64(Date().timeIntervalSince1970 * 1000)
            for records in batches[group..<min(group + self.transactionBatches, batches.count)] {
                sequence += 1
                bind(insertBatch, 1, origin)
                sqlite3_bind_int64(insertBatch, 2, sequence)
                sqlite3_bind_int64(insertBatch, 3, Int64(records.count))
                sqlite3_bind_int64(insertBatch, 4, storedAt)
                try step(insertBatch)
                for (record, attributes) in records {
                    SQLiteStore.bindRecord(insertRecord, record, sequence: sequence, storedAt: storedAt, attributes: attributes)
                    try step(insertRecord)
                }
                sqlite3_bind_int64(countBatch, 1, Int64(records.count))
                bind(countBatch, 2, origin)
                sqlite3_bind_int64(countBatch, 3, sequence)
                try step(countBatch)
            }
            try execute("COMMIT")
            transactions += 1
        }
        let seconds = ReportsCommand.milliseconds(ContinuousClock.now - started) / 1000
        print(
            String(
                format: "raw insert: %d records in %d batches of %d, %d transactions of %d batches, %.2f s: %.0f records/s",
                self.records, batches.count, self.batchRecords, transactions, self.transactionBatches, seconds, Double(self.records) / seconds
            )
        )
    }
}

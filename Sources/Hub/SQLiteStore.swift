import Foundation
import GRDB
import GRDBSQLite
import Support
import Synchronization
import Wire

/// The embedded store: one SQLite file in WAL mode with `synchronous = FULL`, so a commit
/// is on disk (the WAL fsync'd) when ``commit(_:)`` returns.
///
/// Records are keyed by their UUIDv7 id in a `WITHOUT ROWID` table, so inserts land at the
/// end of the key order. Secondary indexes serve time, site, subject and score queries.
public final class SQLiteStore: FeedbackStore {
    /// The database file.
    public let path: String
    /// The alert rules evaluated for every record stored for the first time.
    public let alertRules: AlertRules
    let pool: DatabasePool
    let alertsRaised = Mutex<(@Sendable (Int) -> Void)?>(nil)

    /// Opens (creating if needed) the store at `path` and brings its schema up to date.
    /// Records stored for the first time are checked against `alerts`; the alerts they
    /// raise are written in the same transaction.
    public init(path: String, alerts: AlertRules = .none) throws {
        self.path = path
        self.alertRules = alerts
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in
            // FULL: the WAL is fsync'd at every commit, so an acknowledged batch survives
            // power loss, not just a crash of the hub process.
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        try Self.makeOwnerOnly(path)
        do {
            self.pool = try DatabasePool(path: path, configuration: configuration)
            try Self.migrator.migrate(self.pool)
        } catch {
            throw StoreError("cannot open the store at \(path): \(error)")
        }
    }

    /// The store holds customer ids and comments. A new file is created 0600 before SQLite
    /// opens it, so its -wal and -shm (which SQLite creates with the main file's mode) are
    /// 0600 too; an existing store readable by others is restricted to its owner.
    private static func makeOwnerOnly(_ path: String) throws {
        do {
            try SecretFile.write([], to: path, replacing: false)
        } catch where error.code == .exists {
            // An existing store: restricted below.
        } catch {
            throw StoreError("cannot create the store at \(path): \(error)")
        }
        do {
            // A -wal or -shm planted as a link would make SQLite write ratings where its
            // maker reads them.
            for suffix in ["-wal", "-shm"] where SecretFile.isSymbolicLink(path + suffix) {
                throw StoreError("\(path + suffix) is a symbolic link; remove it (SQLite recreates it) and start again")
            }
            for suffix in ["", "-wal", "-shm"] { try SecretFile.restrict(path + suffix) }
        } catch {
            throw StoreError("cannot make the store owner-only: \(error)")
        }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE nodes (
                        node_id BLOB NOT NULL PRIMARY KEY,
                        public_key BLOB NOT NULL,
                        key_id INTEGER NOT NULL,
                        role INTEGER NOT NULL,
                        site TEXT NOT NULL,
                        created_at INTEGER NOT NULL,
                        revoked_at INTEGER
                    ) WITHOUT ROWID;
                    CREATE TABLE enrollment_tokens (
                        token_hash BLOB NOT NULL PRIMARY KEY,
                        site TEXT NOT NULL,
                        role INTEGER NOT NULL,
                        created_at INTEGER NOT NULL,
                        expires_at INTEGER NOT NULL,
                        used_at INTEGER,
                        node_id BLOB
                    ) WITHOUT ROWID;
                    CREATE TABLE batches (
                        origin BLOB NOT NULL,
                        sequence INTEGER NOT NULL,
                        record_count INTEGER NOT NULL,
                        stored_records INTEGER NOT NULL,
                        received_at INTEGER NOT NULL,
                        PRIMARY KEY (origin, sequence)
                    ) WITHOUT ROWID;
                    CREATE TABLE records (
                        id BLOB NOT NULL PRIMARY KEY,
                        origin BLOB NOT NULL,
                        sequence INTEGER NOT NULL,
                        source INTEGER NOT NULL,
                        scale INTEGER NOT NULL,
                        score INTEGER NOT NULL,
                        negative INTEGER NOT NULL,
                        occurred_at INTEGER NOT NULL,
                        captured_at INTEGER NOT NULL,
                        stored_at INTEGER NOT NULL,
                        site TEXT NOT NULL,
                        channel TEXT NOT NULL,
                        subject TEXT NOT NULL,
                        topic TEXT NOT NULL,
                        survey TEXT NOT NULL,
                        customer TEXT NOT NULL,
                        comment TEXT NOT NULL,
                        attributes TEXT NOT NULL
                    ) WITHOUT ROWID;
                    CREATE INDEX records_by_time ON records (occurred_at);
                    CREATE INDEX records_by_site ON records (site, occurred_at);
                    CREATE INDEX records_by_subject ON records (subject, occurred_at);
                    CREATE INDEX records_by_score ON records (scale, score, occurred_at);
                    """
            )
        }
        Self.registerAlertSchema(&migrator)
        migrator.registerMigration("v3-site-scopes") { db in
            // Before scopes a node's site was informational; "" meant none. A node or token
            // with a site is bound to it; one without keeps reporting for any site, so an
            // upgrade refuses none of its ratings (the hub logs how many such nodes there are;
            // `feedback-hub agents sites` narrows them).
            try db.execute(
                sql: """
                    ALTER TABLE nodes ADD COLUMN sites TEXT NOT NULL DEFAULT '*';
                    UPDATE nodes SET sites = site WHERE site <> '';
                    ALTER TABLE nodes DROP COLUMN site;
                    ALTER TABLE enrollment_tokens ADD COLUMN sites TEXT NOT NULL DEFAULT '*';
                    UPDATE enrollment_tokens SET sites = site WHERE site <> '';
                    ALTER TABLE enrollment_tokens DROP COLUMN site;
                    """
            )
        }
        Self.registerFleetStatusSchema(&migrator)
        return migrator
    }

    /// Calls `handler` with the number of alerts raised after each commit that raised some.
    public func onAlertsRaised(_ handler: @escaping @Sendable (Int) -> Void) {
        self.alertsRaised.withLock { $0 = handler }
    }

    public func commit(_ batches: [IncomingBatch]) throws -> [CommitOutcome] {
        let storedAt = Int64(Date().timeIntervalSince1970 * 1000)
        let rules = self.alertRules
        var raised = 0
        let outcomes = try self.pool.writeWithoutTransaction { db in
            var outcomes: [CommitOutcome] = []
            outcomes.reserveCapacity(batches.count)
            try db.inTransaction(.immediate) {
                outcomes.removeAll(keepingCapacity: true)
                raised = 0
                let connection = db.sqliteConnection
                let insertBatch = try db.cachedStatement(
                    sql: "INSERT OR IGNORE INTO batches (origin, sequence, record_count, stored_records, received_at) VALUES (?, ?, ?, 0, ?)"
                ).sqliteStatement
                let countBatch = try db.cachedStatement(
                    sql: "UPDATE batches SET stored_records = ? WHERE origin = ? AND sequence = ?"
                ).sqliteStatement
                let insertRecord = try db.cachedStatement(
                    sql: """
                        INSERT OR IGNORE INTO records (id, origin, sequence, source, scale, score, negative,
                            occurred_at, captured_at, stored_at, site, channel, subject, topic, survey,
                            customer, comment, attributes)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """
                ).sqliteStatement
                for batch in batches {
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
                        Self.bind(insertRecord, 1, record.id)
                        Self.bind(insertRecord, 2, record.origin)
                        sqlite3_bind_int64(insertRecord, 3, sequence)
                        sqlite3_bind_int(insertRecord, 4, Int32(record.source.rawValue))
                        sqlite3_bind_int(insertRecord, 5, Int32(record.scale.rawValue))
                        sqlite3_bind_int(insertRecord, 6, Int32(record.score))
                        sqlite3_bind_int(insertRecord, 7, record.isNegative ? 1 : 0)
                        sqlite3_bind_int64(insertRecord, 8, record.occurredAt)
                        sqlite3_bind_int64(insertRecord, 9, record.capturedAt)
                        sqlite3_bind_int64(insertRecord, 10, storedAt)
                        Self.bind(insertRecord, 11, record.site)
                        Self.bind(insertRecord, 12, record.channel)
                        Self.bind(insertRecord, 13, record.subject)
                        Self.bind(insertRecord, 14, record.topic)
                        Self.bind(insertRecord, 15, record.survey)
                        Self.bind(insertRecord, 16, record.customer)
                        Self.bind(insertRecord, 17, record.comment)
                        Self.bind(insertRecord, 18, AttributesJSON.encode(record.attributes))
                        try Self.step(insertRecord, connection)
                        guard sqlite3_changes(connection) == 1 else { continue }
                        newRecords += 1
                        // Only a record stored for the first time can alert: duplicates never do.
                        if !rules.rules.isEmpty {
                            raised += try self.raiseAlerts(for: record, rules: rules, db: db, now: storedAt)
                        }
                    }
                    sqlite3_reset(countBatch)
                    sqlite3_bind_int64(countBatch, 1, Int64(newRecords))
                    Self.bind(countBatch, 2, batch.key.origin)
                    sqlite3_bind_int64(countBatch, 3, sequence)
                    try Self.step(countBatch, connection)
                    outcomes.append(.stored(newRecords: newRecords))
                }
                return .commit
            }
            return outcomes
        }
        if raised > 0, let handler = self.alertsRaised.withLock({ $0 }) { handler(raised) }
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

    public func nodes() throws -> [RegisteredNode] {
        try self.pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM nodes ORDER BY created_at").compactMap(Self.node)
        }
    }

    public func addNode(_ node: RegisteredNode) throws {
        do {
            try self.pool.write { db in try Self.insert(node, db) }
        } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
            throw StoreError("node \(node.nodeID) is already registered")
        }
    }

    public func revokeNode(_ nodeID: UUID, at time: Int64) throws -> Bool {
        try self.pool.write { db in
            try db.execute(
                sql: "UPDATE nodes SET revoked_at = ? WHERE node_id = ? AND revoked_at IS NULL",
                arguments: [time, nodeID]
            )
            return try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM nodes WHERE node_id = ?", arguments: [nodeID]) == 1
        }
    }

    public func setSites(_ sites: SiteScope, of nodeID: UUID) throws -> Bool {
        try self.pool.write { db in
            try db.execute(sql: "UPDATE nodes SET sites = ? WHERE node_id = ?", arguments: [sites.storedForm, nodeID])
            return db.changesCount == 1
        }
    }

    public func addEnrollmentToken(hash: [UInt8], sites: SiteScope, role: Hello.Role, createdAt: Int64, expiresAt: Int64) throws {
        try self.pool.write { db in
            try db.execute(
                sql: "INSERT INTO enrollment_tokens (token_hash, sites, role, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                arguments: [Data(hash), sites.storedForm, Int(role.rawValue), createdAt, expiresAt]
            )
        }
    }

    public func redeemEnrollmentToken(
        hash: [UInt8],
        node: RegisteredNode,
        at time: Int64
    ) throws -> Result<RegisteredNode, EnrollmentRefusal> {
        try self.pool.write { db in
            guard
                let token = try Row.fetchOne(
                    db,
                    sql: "SELECT sites, role, expires_at, used_at, node_id FROM enrollment_tokens WHERE token_hash = ?",
                    arguments: [Data(hash)]
                )
            else {
                return .failure(.unknownToken)
            }
            if (token["used_at"] as Int64?) != nil {
                // The same node retrying (its first HELLO redeemed the token, the answer was
                // lost or is still on its way): enrolled, not refused for good.
                if (token["node_id"] as UUID?) == node.nodeID,
                    let row = try Row.fetchOne(db, sql: "SELECT * FROM nodes WHERE node_id = ?", arguments: [node.nodeID]),
                    let enrolled = Self.node(row), enrolled.publicKey == node.publicKey, !enrolled.revoked
                {
                    return .success(enrolled)
                }
                return .failure(.alreadyUsed)
            }
            if (token["expires_at"] as Int64) < time { return .failure(.expired) }
            let role = Hello.Role(rawValue: UInt8(token["role"] as Int)) ?? .agent
            if node.role == .relay, role != .relay { return .failure(.relayNotAllowed) }
            if try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM nodes WHERE node_id = ?", arguments: [node.nodeID]) != 0 {
                return .failure(.nodeTaken)
            }
            var enrolled = node
            enrolled.sites = SiteScope(storedFormOrNone: token["sites"])
            enrolled.role = role
            enrolled.createdAt = time
            try Self.insert(enrolled, db)
            try db.execute(
                sql: "UPDATE enrollment_tokens SET used_at = ?, node_id = ? WHERE token_hash = ?",
                arguments: [time, node.nodeID, Data(hash)]
            )
            return .success(enrolled)
        }
    }

    public func recordCount() throws -> Int {
        try self.pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM records") ?? 0 }
    }

    public func batchCount() throws -> Int {
        try self.pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM batches") ?? 0 }
    }

    /// Runs a read-only query; for tests, reports and the command line.
    public func read<T>(_ body: (Database) throws -> T) throws -> T {
        try self.pool.read(body)
    }

    private static func insert(_ node: RegisteredNode, _ db: Database) throws {
        try db.execute(
            sql: """
                INSERT INTO nodes (node_id, public_key, key_id, role, sites, created_at, revoked_at)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                node.nodeID, Data(node.publicKey), Int64(bitPattern: node.keyID.rawValue), Int(node.role.rawValue),
                node.sites.storedForm, node.createdAt, node.revoked ? node.createdAt : nil,
            ]
        )
    }

    static func node(_ row: Row) -> RegisteredNode? {
        guard let nodeID = row["node_id"] as UUID?, let key = row["public_key"] as Data?,
            let role = Hello.Role(rawValue: UInt8(clamping: row["role"] as Int))
        else { return nil }
        return RegisteredNode(
            nodeID: nodeID,
            publicKey: [UInt8](key),
            keyID: KeyID(rawValue: UInt64(bitPattern: row["key_id"] as Int64)),
            role: role,
            sites: SiteScope(storedFormOrNone: row["sites"]),
            revoked: (row["revoked_at"] as Int64?) != nil,
            createdAt: row["created_at"]
        )
    }

    // SQLite copies bound values (SQLITE_TRANSIENT) before the call returns.
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    static func bind(_ statement: OpaquePointer, _ index: Int32, _ uuid: UUID) {
        withUnsafeBytes(of: uuid.uuid) { _ = sqlite3_bind_blob(statement, index, $0.baseAddress, 16, Self.transient) }
    }

    private static func bind(_ statement: OpaquePointer, _ index: Int32, _ text: String) {
        _ = sqlite3_bind_text(statement, index, text, Int32(text.utf8.count), Self.transient)
    }

    private static func step(_ statement: OpaquePointer, _ connection: OpaquePointer?) throws {
        let result = sqlite3_step(statement)
        guard result == SQLITE_DONE else {
            throw StoreError("SQLite: \(String(cString: sqlite3_errmsg(connection)))")
        }
    }
}

/// A store failure, with a message naming what failed.
public struct StoreError: Error, CustomStringConvertible {
    /// What failed.
    public var description: String

    /// Creates an error.
    public init(_ description: String) {
        self.description = description
    }
}

/// Attributes as a compact JSON object with sorted keys, for the `attributes` column.
enum AttributesJSON {
    static func encode(_ attributes: [String: String]) -> String {
        if attributes.isEmpty { return "{}" }
        var out = "{"
        for (index, key) in attributes.keys.sorted().enumerated() {
            if index > 0 { out += "," }
            Self.append(key, to: &out)
            out += ":"
            Self.append(attributes[key] ?? "", to: &out)
        }
        return out + "}"
    }

    /// Appends `string` as a quoted JSON string.
    static func append(_ string: String, to out: inout String) {
        out += "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                out += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count) + String(scalar.value, radix: 16)
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}

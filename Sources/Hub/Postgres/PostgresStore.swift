import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO
import Synchronization
import Wire

/// The shared store: one PostgreSQL database that several hubs use at once (docs/SCALING.md).
///
/// The database decides what several hubs must agree on: its unique keys decide duplicates
/// (the same batch at two hubs at once is stored by one, the other hears `duplicate`), the
/// hub whose insert won raises the alert in the same transaction, deliveries are claimed
/// with `FOR UPDATE SKIP LOCKED` and a lease, escalations likewise, and a window rule's
/// counts are taken under a lock per rule and key. Each commit is durable before it
/// returns (`synchronous_commit` on).
///
/// Every method blocks on the database (``PostgresConnectionPool``): call them where the
/// ``FeedbackStore`` protocols say, never on an event loop or from async code.
public final class PostgresStore: Sendable {
    /// Where the database is and how to reach it.
    public let settings: PostgresSettings
    /// Applies the alert rules to every record stored for the first time, in the commit.
    public let evaluator: AlertEvaluator
    let pool: PostgresConnectionPool
    /// This process, as the holder of delivery claims: a hub that dies loses its claims when
    /// their lease ends.
    let claimant = UUID()
    let alertsRaised = Mutex<(@Sendable (Int) -> Void)?>(nil)
    let logger: Logger
    /// The zone whose dates the daily rollups count (`reports.timeZone`).
    public var reportZone: TimeZone { self.zone.withLock { $0 } }
    private let zone = Mutex<TimeZone>(.gmt)

    /// Connects, applies missing migrations (under an advisory lock, so hubs starting
    /// together migrate once) and makes the record partitions of this month and the next
    /// `settings.partitionsAhead`.
    ///
    /// - Throws: ``StoreError`` or ``PostgresSettingsError`` naming what failed; never the password.
    public init(
        settings: PostgresSettings, alerts: AlertRules = .none, logger: Logger, reportZone: TimeZone? = .gmt,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        now: Int64 = Int64(Date().timeIntervalSince1970 * 1000)
    ) throws {
        try settings.check()
        self.settings = settings
        self.evaluator = AlertEvaluator(rules: alerts)
        self.logger = logger
        var configuration = PostgresConnection.Configuration(
            host: settings.host, port: settings.port, username: settings.user, password: try settings.password(),
            database: settings.database, tls: try Self.tls(settings)
        )
        configuration.options.connectTimeout = .seconds(5)
        // Durable before an ACK whatever the server's default; no statement or idle
        // transaction may hold locks for long (a hub killed mid-transaction is cleaned up).
        configuration.options.additionalStartupParameters = [
            ("application_name", "feedback-hub"), ("synchronous_commit", "on"), ("statement_timeout", "30000"),
            ("lock_timeout", "20000"), ("idle_in_transaction_session_timeout", "60000"),
        ]
        self.pool = PostgresConnectionPool(configuration: configuration, size: settings.poolSize, group: group, logger: logger)
        do {
            try self.migrate()
            let aligned = try self.alignReportZone(reportZone)
            self.zone.withLock { $0 = aligned }
            try self.maintain(now: now)
        } catch {
            self.pool.close()
            throw error
        }
    }

    deinit {
        self.pool.close()
    }

    private static func tls(_ settings: PostgresSettings) throws -> PostgresConnection.Configuration.TLS {
        switch settings.tls {
        case .disable:
            return .disable
        case .require, .verify:
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.minimumTLSVersion = .tlsv12
            if settings.tls == .require {
                tls.certificateVerification = .none
            } else if let caFile = settings.caFile {
                do {
                    tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
                } catch {
                    throw PostgresSettingsError("postgres.caFile: \(caFile) holds no PEM certificate (\(error))")
                }
            }
            return .require(try NIOSSLContext(configuration: tls))
        }
    }

    /// Applies the migrations the database lacks, holding the migration lock.
    private func migrate() throws {
        try self.pool.withSession { session in
            try session.execute("SELECT pg_advisory_lock(\(PostgresSchema.migrationLock))")
            defer { _ = try? session.execute("SELECT pg_advisory_unlock(\(PostgresSchema.migrationLock))") }
            try session.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY, applied_at bigint NOT NULL)"
            )
            var applied = Set<String>()
            for row in try session.query("SELECT version FROM schema_migrations") { applied.insert(try row.decode(String.self)) }
            for migration in PostgresSchema.migrations where !applied.contains(migration.version) {
                try session.execute("BEGIN")
                do {
                    for statement in PostgresSchema.statements(of: migration.sql) {
                        try session.execute(PostgresQuery(unsafeSQL: statement))
                    }
                    try PostgresSchema.backfills[migration.version]?(session)
                    let now = Int64(Date().timeIntervalSince1970 * 1000)
                    try session.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (\(migration.version), \(now))")
                    try session.execute("COMMIT")
                } catch {
                    // The connection goes back to the pool: not inside a failed transaction.
                    _ = try? session.execute("ROLLBACK")
                    throw error
                }
                self.logger.info("store migrated", metadata: ["version": "\(migration.version)"])
            }
        }
    }

    /// Makes the daily rollups count dates in `zone` and returns it: when the database
    /// counted them in another zone (or never), they are counted again from the hourly
    /// rollups (which outlive retention), in one transaction under the migration lock. Nil
    /// keeps the database's zone. Every hub of a database should name the same
    /// `reports.timeZone`, and change it while all are stopped (docs/REPORTS.md).
    private func alignReportZone(_ zone: TimeZone?) throws -> TimeZone {
        try self.pool.withSession { session in
            try session.execute("SELECT pg_advisory_lock(\(PostgresSchema.migrationLock))")
            defer { _ = try? session.execute("SELECT pg_advisory_unlock(\(PostgresSchema.migrationLock))") }
            let stored = try session.query("SELECT value FROM report_settings WHERE key = 'timeZone'").first?.decode(String.self)
            // Nil keeps the database's zone; one that never counted its days counts them in
            // UTC, the default, until a hub names its zone.
            if zone == nil, let kept = stored.flatMap(TimeZone.init(identifier:)) { return kept }
            let zone = zone ?? .gmt
            guard stored != zone.identifier else { return zone }
            try session.execute("BEGIN")
            do {
                try PostgresStore.countDays(session, in: zone)
                try session.execute(
                    """
                    INSERT INTO report_settings (key, value) VALUES ('timeZone', \(zone.identifier))
                    ON CONFLICT (key) DO UPDATE SET value = excluded.value
                    """
                )
                try session.execute("COMMIT")
            } catch {
                _ = try? session.execute("ROLLBACK")
                throw error
            }
            self.logger.notice("daily rollups counted in the report zone", metadata: ["timeZone": "\(zone.identifier)", "was": "\(stored ?? "none")"])
            return zone
        }
    }

    /// Tells the handler of ``onAlertsRaised(_:)`` that a transaction raised `count` alerts.
    func announce(_ count: Int) {
        if count > 0, let handler = self.alertsRaised.withLock({ $0 }) { handler(count) }
    }
}

extension PostgresStore: StoreUpkeep {
    public func ping() throws {
        try self.pool.withSession { try $0.execute("SELECT 1") }
    }

    /// Makes the record partitions of this month and the next `partitionsAhead`, and drops
    /// those wholly older than `retentionMonths`, under the migration lock.
    public func maintain(now: Int64) throws {
        try self.pool.withSession { session in
            try session.execute("SELECT pg_advisory_lock(\(PostgresSchema.migrationLock))")
            defer { _ = try? session.execute("SELECT pg_advisory_unlock(\(PostgresSchema.migrationLock))") }
            let month = RecordPartition.month(containing: now)
            for ahead in 0...self.settings.partitionsAhead {
                try self.makePartition(RecordPartition(monthIndex: month + ahead), session)
            }
            if let months = self.settings.retentionMonths {
                try self.dropPartitions(before: month - months + 1, session)
            }
        }
    }

    public var poolUsage: (inUse: Int, size: Int)? {
        (self.pool.inUse.load(ordering: .relaxed), self.pool.size)
    }

    public var kind: String { "postgres" }

    private func makePartition(_ partition: RecordPartition, _ session: PostgresSession) throws {
        let exists = try session.query("SELECT to_regclass(\(partition.name)) IS NOT NULL").first?.decode(Bool.self) ?? false
        guard !exists else { return }
        let bounds = "FROM ('\(partition.lowerBound)') TO ('\(partition.upperBound)')"
        // Ids of this month may already sit in the default partition (a node whose clock ran
        // ahead): they move into the new partition in the same transaction.
        try session.execute("BEGIN")
        do {
            try session.execute("LOCK TABLE records_default IN ACCESS EXCLUSIVE MODE")
            try session.execute(PostgresQuery(unsafeSQL: "CREATE TABLE \(partition.name) (LIKE records INCLUDING DEFAULTS)"))
            try session.execute(
                PostgresQuery(
                    unsafeSQL: """
                        WITH moved AS (
                            DELETE FROM records_default WHERE id >= '\(partition.lowerBound)' AND id < '\(partition.upperBound)' RETURNING *
                        ) INSERT INTO \(partition.name) SELECT * FROM moved
                        """
                )
            )
            try session.execute(PostgresQuery(unsafeSQL: "ALTER TABLE records ATTACH PARTITION \(partition.name) FOR VALUES \(bounds)"))
            try session.execute("COMMIT")
        } catch {
            _ = try? session.execute("ROLLBACK")
            throw error
        }
        self.logger.info("record partition made", metadata: ["partition": "\(partition.name)"])
    }

    private func dropPartitions(before month: Int, _ session: PostgresSession) throws {
        let rows = try session.query(
            """
            SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'records'::regclass
            """
        )
        for row in rows {
            guard let partition = RecordPartition(name: try row.decode(String.self)), partition.monthIndex < month else { continue }
            // One statement: dropping a partition detaches it, so a hub that dies here leaves
            // the month attached (and dropped next time), never detached and forgotten.
            try session.execute(PostgresQuery(unsafeSQL: "DROP TABLE \(partition.name)"))
            self.logger.notice("record partition dropped by the retention setting", metadata: ["partition": "\(partition.name)"])
        }
    }
}

/// One month of records: the ids whose UUIDv7 time falls in it. Bounds are UUIDs made of
/// the month's first ms (48 bits, big-endian) and zero bytes, so every UUIDv7 of the month
/// sorts inside `[lowerBound, upperBound)`.
struct RecordPartition: Hashable {
    /// Months since January 1970.
    let monthIndex: Int

    init(monthIndex: Int) {
        self.monthIndex = monthIndex
    }

    /// `records_yYYYYmMM`; nil for any other name.
    init?(name: String) {
        let parts = name.split(separator: "_")
        guard parts.count == 2, parts[0] == "records", parts[1].count == 8, parts[1].hasPrefix("y"),
            let year = Int(parts[1].dropFirst().prefix(4)), parts[1].dropFirst(5).hasPrefix("m"),
            let month = Int(parts[1].suffix(2)), (1...12).contains(month), year >= 1970
        else { return nil }
        self.monthIndex = (year - 1970) * 12 + month - 1
    }

    /// The month holding `time` (ms since the epoch), UTC.
    static func month(containing time: Int64) -> Int {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC") ?? calendar.timeZone
        let parts = calendar.dateComponents([.year, .month], from: Date(timeIntervalSince1970: Double(time) / 1000))
        return ((parts.year ?? 1970) - 1970) * 12 + (parts.month ?? 1) - 1
    }

    var name: String {
        let year = 1970 + self.monthIndex / 12
        let month = self.monthIndex % 12 + 1
        return "records_y\(year)m" + (month < 10 ? "0\(month)" : "\(month)")
    }

    var lowerBound: String { Self.bound(monthIndex: self.monthIndex) }
    var upperBound: String { Self.bound(monthIndex: self.monthIndex + 1) }

    /// The first ms of a month as a UUID bound.
    static func bound(monthIndex: Int) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC") ?? calendar.timeZone
        let date = calendar.date(from: DateComponents(year: 1970 + monthIndex / 12, month: monthIndex % 12 + 1, day: 1)) ?? Date(timeIntervalSince1970: 0)
        let ms = UInt64(max(0, date.timeIntervalSince1970 * 1000))
        let hex = String(ms, radix: 16)
        let time = String(repeating: "0", count: max(0, 12 - hex.count)) + hex
        return "\(time.prefix(8))-\(time.suffix(4))-0000-0000-000000000000"
    }
}

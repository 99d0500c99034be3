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
/// The schema and its migrations are ``SQLiteSchema``; each part of ``FeedbackStore`` is
/// implemented in its own extension file.
public final class SQLiteStore: Sendable {
    /// The database file.
    public let path: String
    /// Applies the alert rules to every record stored for the first time, in the commit.
    public let evaluator: AlertEvaluator
    /// The zone whose dates the daily rollups count.
    public let reportZone: TimeZone
    let pool: DatabasePool
    private let checkpointer: WALCheckpointer?
    let alertsRaised = Mutex<(@Sendable (Int) -> Void)?>(nil)

    /// Opens (creating if needed) the store at `path` and brings its schema up to date.
    /// Records stored for the first time are checked against `alerts`; the alerts they
    /// raise are written in the same transaction.
    ///
    /// `reportZone` is the zone whose dates the daily rollups count (`reports.timeZone`);
    /// when the store counted them in another zone, they are counted again at open. Nil
    /// keeps the store's own (what the command line does beside a running hub).
    ///
    /// With `checkpointsInBackground` (the serving hub), a thread of the store's own copies
    /// the WAL into the database file as commits go (``WALCheckpointer``), so commits, and
    /// the fresh alerts waiting for them, seldom wait for that copy.
    public init(path: String, alerts: AlertRules = .none, reportZone: TimeZone? = .gmt, checkpointsInBackground: Bool = false) throws {
        self.path = path
        self.evaluator = AlertEvaluator(rules: alerts)
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
            try SQLiteSchema.migrator.migrate(self.pool)
            self.reportZone = try Self.alignReportZone(self.pool, reportZone)
        } catch {
            throw StoreError("cannot open the store at \(path): \(error)")
        }
        self.checkpointer = checkpointsInBackground ? WALCheckpointer(path: path) : nil
    }

    deinit {
        self.checkpointer?.stop()
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

    /// Runs a read-only query; for tests, reports and the command line.
    public func read<T>(_ body: (Database) throws -> T) throws -> T {
        try self.pool.read(body)
    }

    /// Tells the handler of ``onAlertsRaised(_:)`` that a transaction raised `count` alerts.
    func announce(_ count: Int) {
        if count > 0, let handler = self.alertsRaised.withLock({ $0 }) { handler(count) }
    }
}

extension SQLiteStore: StoreUpkeep {
    public func ping() throws {
        _ = try self.pool.read { db in try Int.fetchOne(db, sql: "SELECT 1") }
    }

    /// Nothing to do: one file, no partitions.
    public func maintain(now: Int64) throws {}

    public var poolUsage: (inUse: Int, size: Int)? { nil }

    public var kind: String { "sqlite" }
}

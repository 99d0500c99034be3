import Foundation
import Hub
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import Wire

/// The stores the store tests run on: a SQLite file in a temporary folder, or a fresh
/// database on the PostgreSQL server `FEEDBACK_TEST_POSTGRES_URL` names (scripts/test.sh
/// starts one). Without that server a PostgreSQL test fails, saying so; it never passes by
/// skipping.
enum TestStores {
    enum Kind: String, CaseIterable, Sendable, CustomStringConvertible {
        case sqlite, postgres
        var description: String { self.rawValue }
    }

    /// The environment variable holding the test server's password.
    static let passwordVariable = "FEEDBACK_TEST_POSTGRES_PASSWORD"

    /// An open store and how to throw it away.
    struct Opened {
        let store: any FeedbackStore
        let settings: PostgresSettings?
        let folder: URL?

        func remove() {
            if let folder { try? FileManager.default.removeItem(at: folder) }
            if let settings { try? TestStores.dropDatabase(settings) }
        }
    }

    static func open(_ kind: Kind, alerts: AlertRules = .none, reportZone: TimeZone = .gmt) throws -> Opened {
        switch kind {
        case .sqlite:
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("store-\(UUID())")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let store = try SQLiteStore(path: folder.appendingPathComponent("feedback.sqlite").path, alerts: alerts, reportZone: reportZone)
            return Opened(store: store, settings: nil, folder: folder)
        case .postgres:
            let settings = try self.makeDatabase()
            let store = try PostgresStore(settings: settings, alerts: alerts, logger: self.logger, reportZone: reportZone)
            return Opened(store: store, settings: settings, folder: nil)
        }
    }

    /// The same store opened again, as a restarted hub would (with another report zone).
    static func reopen(_ opened: Opened, reportZone: TimeZone = .gmt) throws -> any FeedbackStore {
        if let folder = opened.folder {
            return try SQLiteStore(path: folder.appendingPathComponent("feedback.sqlite").path, reportZone: reportZone)
        }
        guard let settings = opened.settings else { throw StoreError("no store to open again") }
        return try PostgresStore(settings: settings, logger: self.logger, reportZone: reportZone)
    }

    static var logger: Logger {
        var logger = Logger(label: "store-tests")
        logger.logLevel = .warning
        return logger
    }

    /// The test server's settings, for its own database.
    static func serverSettings() throws -> PostgresSettings {
        guard let url = ProcessInfo.processInfo.environment["FEEDBACK_TEST_POSTGRES_URL"] else {
            throw StoreError(
                "no PostgreSQL server for the tests: FEEDBACK_TEST_POSTGRES_URL is not set (scripts/test.sh starts one; or source scripts/lib/postgres.sh and run pg_start DIR)"
            )
        }
        var settings = try PostgresSettings(url: url)
        settings.passwordEnv = Self.passwordVariable
        settings.poolSize = 4
        return settings
    }

    /// A new, empty database on the test server, owned by the test role.
    static func makeDatabase() throws -> PostgresSettings {
        var settings = try self.serverSettings()
        let name = "feedback_t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16)
        try self.admin(settings) { connection in
            _ = try connection.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: self.logger).wait()
        }
        settings.database = String(name)
        return settings
    }

    static func dropDatabase(_ settings: PostgresSettings) throws {
        try self.admin(try self.serverSettings()) { connection in
            _ = try connection.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(settings.database) WITH (FORCE)"), logger: self.logger).wait()
        }
    }

    /// Runs `body` on a connection to the server's own database.
    static func admin(_ settings: PostgresSettings, _ body: (PostgresConnection) throws -> Void) throws {
        let configuration = PostgresConnection.Configuration(
            host: settings.host, port: settings.port, username: settings.user, password: try settings.password(), database: settings.database,
            tls: .disable
        )
        let connection = try PostgresConnection.connect(
            on: MultiThreadedEventLoopGroup.singleton.next(), configuration: configuration, id: 0, logger: self.logger
        ).wait()
        defer { _ = try? connection.close().wait() }
        try body(connection)
    }

    /// Runs SQL on the store's own database (checks the store's protocols cannot make).
    static func sql(_ settings: PostgresSettings, _ query: String) throws -> [PostgresRow] {
        var rows: [PostgresRow] = []
        try self.admin(settings) { connection in
            rows = try connection.query(PostgresQuery(unsafeSQL: query), logger: self.logger).wait().rows
        }
        return rows
    }
}

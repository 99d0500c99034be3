import Foundation
import Support

/// How the hub reaches PostgreSQL (`store: postgres://…` and the `postgres:` section of
/// hub.yaml; docs/SCALING.md). The password never appears in the file: it is read from a
/// file (`passwordFile`, which must not be readable by others) or an environment variable
/// (`passwordEnv`), and is never logged.
public struct PostgresSettings: Sendable, Equatable {
    /// How the connection to PostgreSQL is protected.
    public enum TLSMode: String, Sendable, Codable, CaseIterable {
        /// Plain TCP: for a database on the same host or a private link.
        case disable
        /// TLS, the server's certificate not checked (encrypted, not authenticated).
        case require
        /// TLS, the server's certificate checked against `caFile` (or the system's roots) and
        /// its name against the URL's host.
        case verify
    }

    /// Database host.
    public var host: String
    /// Database port.
    public var port: Int
    /// Database user.
    public var user: String
    /// Database name.
    public var database: String
    /// The file holding the password (its first line), if any.
    public var passwordFile: String?
    /// The environment variable holding the password, if any.
    public var passwordEnv: String?
    /// TLS to the database.
    public var tls: TLSMode = .disable
    /// The CA certificate (PEM) that signed the database's certificate, for `tls: verify`.
    public var caFile: String?
    /// Connections this hub opens at most.
    public var poolSize: Int = 8
    /// Group-commit transactions this hub runs at once, each on its own connection; a node's
    /// batches always go to the same one, so each node's stay in order.
    public var commitWriters: Int = 2

    /// The most commit writers `poolSize` connections allow: one connection is left for
    /// everything else, except in a pool of one, which its single writer shares.
    public static func mostCommitWriters(poolSize: Int) -> Int {
        max(1, poolSize - 1)
    }

    /// `commitWriters` when hub.yaml does not set it: 2, or fewer in a pool of 2 or less.
    public static func defaultCommitWriters(poolSize: Int) -> Int {
        min(2, Self.mostCommitWriters(poolSize: poolSize))
    }
    /// Monthly record partitions created ahead of the current month.
    public var partitionsAhead: Int = 2
    /// Months of records kept: partitions wholly older are dropped. Nil keeps everything.
    public var retentionMonths: Int?

    /// Whether `store` names a PostgreSQL database rather than a SQLite file.
    public static func isURL(_ store: String) -> Bool {
        store.hasPrefix("postgres://") || store.hasPrefix("postgresql://")
    }

    /// Reads `postgres://USER@HOST[:PORT]/DATABASE`. A password, query parameters or a
    /// missing part are refused with a sentence naming the problem.
    public init(url: String) throws {
        guard Self.isURL(url), let components = URLComponents(string: url) else {
            throw PostgresSettingsError("store: \"\(Self.redacted(url))\" is not a postgres://USER@HOST:PORT/DATABASE URL")
        }
        guard components.password == nil else {
            throw PostgresSettingsError(
                "store: the URL holds a password; put it in a file named by postgres.passwordFile or a variable named by postgres.passwordEnv"
            )
        }
        guard components.query == nil, components.fragment == nil else {
            throw PostgresSettingsError("store: the URL may not carry parameters; TLS and the pool are set in the postgres section")
        }
        guard let user = components.user, !user.isEmpty else {
            throw PostgresSettingsError("store: the URL names no user (postgres://USER@HOST:PORT/DATABASE)")
        }
        guard let host = components.host, !host.isEmpty else {
            throw PostgresSettingsError("store: the URL names no host (postgres://USER@HOST:PORT/DATABASE)")
        }
        let database = String(components.path.dropFirst())
        guard !database.isEmpty, !database.contains("/") else {
            throw PostgresSettingsError("store: the URL names no database (postgres://USER@HOST:PORT/DATABASE)")
        }
        let port = components.port ?? 5432
        guard (1...65_535).contains(port) else { throw PostgresSettingsError("store: port must be 1–65535, got \(port)") }
        self.host = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        self.port = port
        self.user = user
        self.database = database
    }

    /// The URL as logs may show it: never a password.
    public var redactedURL: String {
        "postgres://\(self.user)@\(self.host.contains(":") ? "[\(self.host)]" : self.host):\(self.port)/\(self.database)"
    }

    private static func redacted(_ url: String) -> String {
        // Whatever sits between "//" and "@" may hold a password: not repeated in errors.
        guard let at = url.lastIndex(of: "@"), let scheme = url.range(of: "//") else { return url }
        return String(url[..<scheme.upperBound]) + "…" + String(url[at...])
    }

    /// Checks the ranges and that exactly one password source is named.
    public func check() throws {
        if self.passwordFile != nil, self.passwordEnv != nil {
            throw PostgresSettingsError("postgres: name passwordFile or passwordEnv, not both")
        }
        if let env = self.passwordEnv, env.isEmpty || env.contains("=") {
            throw PostgresSettingsError("postgres.passwordEnv: \"\(env)\" is not an environment variable name")
        }
        if self.caFile != nil, self.tls != .verify {
            throw PostgresSettingsError("postgres.caFile is read only with tls: verify")
        }
        // The driver checks the certificate's name only for a host name; for an address
        // only the chain is checked, which the system's roots would pass for any public name.
        if self.tls == .verify, self.caFile == nil, self.host.contains(":") || self.host.allSatisfy({ $0.isNumber || $0 == "." }) {
            throw PostgresSettingsError(
                "postgres.tls: verify with an IP address needs postgres.caFile (the CA of the database's certificate): the name cannot be checked"
            )
        }
        do {
            try RangeError.check(self.poolSize, 1...200, "postgres.poolSize")
            try RangeError.check(self.commitWriters, 1...16, "postgres.commitWriters")
            try RangeError.check(self.partitionsAhead, 1...24, "postgres.partitionsAhead")
            if let months = self.retentionMonths { try RangeError.check(months, 1...1_200, "postgres.retentionMonths") }
        } catch {
            throw PostgresSettingsError(error.description)
        }
        guard self.commitWriters <= Self.mostCommitWriters(poolSize: self.poolSize) else {
            throw PostgresSettingsError(
                "postgres.commitWriters (\(self.commitWriters)) must be less than postgres.poolSize (\(self.poolSize)): the alert API, deliveries and enrollments need connections too"
            )
        }
    }

    /// The password from its file or variable; nil when none is named (trust or peer auth).
    ///
    /// - Throws: when the file cannot be read or is readable by others, or the variable is unset.
    public func password(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String? {
        if let name = self.passwordEnv {
            guard let value = environment[name], !value.isEmpty else {
                throw PostgresSettingsError("postgres.passwordEnv: the environment variable \(name) is not set")
            }
            return value
        }
        guard let path = self.passwordFile else { return nil }
        // stat, not lstat: a secret mounted as a symbolic link is judged by what it names.
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw PostgresSettingsError("postgres.passwordFile: \(path) cannot be read (\(String(cString: strerror(errno))))")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            // A FIFO or a device would block the start or never end.
            throw PostgresSettingsError("postgres.passwordFile: \(path) is not a regular file")
        }
        let mode = Int(info.st_mode & 0o777)
        if mode & 0o077 != 0 {
            throw PostgresSettingsError("postgres.passwordFile: \(path) may be read by others (mode \(String(mode, radix: 8))); chmod 600 it")
        }
        let read: [UInt8]?
        do {
            read = try BoundedFile.read(path, maxBytes: 4096)
        } catch {
            throw PostgresSettingsError("postgres.passwordFile: \(error)")
        }
        guard let bytes = read else {
            throw PostgresSettingsError("postgres.passwordFile: \(path) is over 4 KiB; it holds one line, the password")
        }
        let text = String(decoding: bytes, as: UTF8.self)
        // The first line, whatever its ending ("\r\n" is one Character in Swift).
        guard let line = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).first.map({ $0.trimmingCharacters(in: .whitespaces) }),
            !line.isEmpty
        else {
            throw PostgresSettingsError("postgres.passwordFile: \(path) is empty")
        }
        return line
    }
}

/// A PostgreSQL setting that cannot be used, with a sentence naming it.
public struct PostgresSettingsError: Error, CustomStringConvertible {
    /// What is wrong and where.
    public var description: String

    init(_ description: String) {
        self.description = description
    }
}

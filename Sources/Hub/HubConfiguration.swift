import Foundation
import ListenerLimits
import NodeServer
import Support
import Wire

/// Everything `feedback-hub serve` needs, read from a YAML file (see docs/OPERATIONS.md).
/// Relative paths are resolved against the file's folder. Unknown keys are errors.
public struct HubConfiguration: Sendable, Codable, Equatable {
    /// The TLS files (`tls`): the hub's certificate chain and key, and the client CA that
    /// requires mutual TLS.
    public typealias TLS = ServerTLS.Files

    /// Bounds that protect the hub from peers (`limits`): the protocol server's.
    public typealias Limits = NodeServer.Limits

    /// Group commit bounds.
    public struct Commit: Sendable, Codable, Equatable {
        /// Most batches per transaction.
        public var maxBatches: Int = 512
        /// Most records per transaction.
        public var maxRecords: Int = 200_000

        /// The defaults.
        public init() {}

        /// Settings left out keep their defaults.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.maxBatches = try c.decodeIfPresent(Int.self, forKey: .maxBatches) ?? self.maxBatches
            self.maxRecords = try c.decodeIfPresent(Int.self, forKey: .maxRecords) ?? self.maxRecords
        }
    }

    /// How the hub judges its fleet (`fleet`).
    public struct Fleet: Sendable, Codable, Equatable {
        /// A registered, unrevoked node seen before and not seen (no STATUS report, no
        /// committed batch) for this many minutes counts as silent (`feedback_hub_nodes_silent`).
        public var silentAfterMinutes: Int = 15

        /// The defaults.
        public init() {}

        /// Settings left out keep their defaults.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.silentAfterMinutes = try c.decodeIfPresent(Int.self, forKey: .silentAfterMinutes) ?? self.silentAfterMinutes
        }
    }

    /// Who may use the operations port (`operations`): every `/v1` endpoint needs an API
    /// token (`feedback-hub tokens add`); health and metrics are open or need one, by setting.
    public struct Operations: Sendable, Codable, Equatable {
        /// Whether an endpoint is open to anyone who reaches the port or needs a token (of
        /// any role).
        public enum Access: String, Sendable, Codable, Equatable, CaseIterable {
            /// Anyone who reaches the port.
            case open
            /// A valid API token of any role.
            case token
        }

        /// `/metrics`: open by default, for a Prometheus on the same host or network.
        public var metrics: Access = .open
        /// `/healthz` and `/readyz`: open by default, for load balancers and orchestrators.
        public var health: Access = .open
        /// The port's certificate chain and key (PEM): set, it serves HTTPS only (TLS 1.2 or
        /// later), so it may listen beyond loopback. The hub's own `hub.pem` and `hub-key.pem`
        /// do, for the names `init` was given; or the operator's own certificate.
        public var tls: TLSFiles?
        /// Origins besides the port's own (`https://ops.example.com`) whose pages may change
        /// things: the names a TLS proxy in front of the port serves it under.
        public var origins: [String] = []
        /// Host names (no port) requests may name in `Host` besides IP addresses and
        /// `localhost` (and the hosts of ``origins``): the names browsers and Prometheus reach
        /// the port by. Any other name is refused (403 `unknownHost`), so a page whose DNS
        /// name was rebound to the hub's address cannot use the port.
        public var hosts: [String] = []
        /// How long a browser session (a token exchanged for a cookie) lasts, in hours; never
        /// longer than the token itself.
        public var sessionHours = 8

        /// The files of ``tls``.
        public struct TLSFiles: Sendable, Codable, Equatable {
            /// PEM certificate chain.
            public var certificate: String
            /// PEM private key.
            public var privateKey: String

            /// Names the files.
            public init(certificate: String, privateKey: String) {
                self.certificate = certificate
                self.privateKey = privateKey
            }
        }

        enum CodingKeys: String, CodingKey {
            case metrics, health, tls, origins, hosts, sessionHours
        }

        /// The defaults.
        public init() {}

        /// Settings left out keep their defaults.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.metrics = try Self.access(c, .metrics) ?? self.metrics
            self.health = try Self.access(c, .health) ?? self.health
            self.tls = try c.decodeIfPresent(TLSFiles.self, forKey: .tls)
            self.origins = try c.decodeIfPresent([String].self, forKey: .origins) ?? []
            self.hosts = try c.decodeIfPresent([String].self, forKey: .hosts) ?? []
            self.sessionHours = try c.decodeIfPresent(Int.self, forKey: .sessionHours) ?? self.sessionHours
        }

        /// What is wrong with ``origins``, if anything: each must be `http(s)://HOST[:PORT]`.
        var problem: String? {
            for origin in self.origins {
                guard let url = URL(string: origin), ["http", "https"].contains(url.scheme?.lowercased() ?? ""), url.host?.isEmpty == false,
                    url.path.isEmpty, url.query == nil, url.user == nil
                else {
                    return "operations.origins: each must be http(s)://HOST[:PORT] with nothing after, got \(TerminalText.excerpt(origin))"
                }
            }
            for host in self.hosts {
                guard HostNames.isValidName(host) else {
                    return "operations.hosts: each must be a host name such as ops.example.com (no scheme, port or path), got \(TerminalText.excerpt(host))"
                }
            }
            guard (1...168).contains(self.sessionHours) else {
                return "operations.sessionHours must be 1–168, got \(self.sessionHours)"
            }
            return nil
        }

        /// Whether a request naming `authority` in its `Host` header may be served: an IP
        /// address or `localhost` (no DNS name to rebind), a name of ``hosts``, or the host
        /// of one of ``origins``; any port. Compared without case.
        func allowsHost(_ authority: String) -> Bool {
            HostNames.allows(authority, names: self.hosts + self.origins.compactMap { URL(string: $0)?.host })
        }

        private static func access(_ c: KeyedDecodingContainer<CodingKeys>, _ key: CodingKeys) throws -> Access? {
            guard let text = try c.decodeIfPresent(String.self, forKey: key) else { return nil }
            guard let access = Access(rawValue: text) else {
                throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "must be open or token, got \(TerminalText.excerpt(text))")
            }
            return access
        }
    }

    /// Reports (`reports`).
    public struct Reports: Sendable, Codable, Equatable {
        /// The IANA zone whose dates the daily rollups count: reports in this zone over
        /// whole days read them (docs/REPORTS.md). Every hub of a PostgreSQL store should
        /// name the same one; a change recounts the daily rollups at the next start.
        public var timeZone: String = "UTC"

        /// The defaults.
        public init() {}

        /// Settings left out keep their defaults.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.timeZone = try c.decodeIfPresent(String.self, forKey: .timeZone) ?? self.timeZone
        }

        /// The zone ``timeZone`` names; nil for a name that is not an IANA zone.
        public var zone: TimeZone? { TimeZone(identifier: self.timeZone) }
    }

    /// This hub's node id, sent in every CHALLENGE.
    public var hubID: UUID
    /// Whether the file said `hubId: machine` (``hubID`` is then derived from /etc/machine-id).
    public var hubIDFromMachine = false
    /// Protocol listener, `HOST:PORT`.
    public var listen: String = "0.0.0.0:7443"
    /// Operations HTTP listener (metrics, health), `HOST:PORT`.
    public var http: String = "127.0.0.1:7080"
    /// The store: a SQLite file, or a `postgres://USER@HOST:PORT/DATABASE` URL (then
    /// ``postgres`` holds the rest of the connection settings).
    public var store: String = "feedback.sqlite"
    /// The `postgres` section: how to reach the database `store` names. Read only with a
    /// `postgres://` store.
    public var postgresSection = PostgresSection()
    /// TLS files.
    public var tls: TLS
    /// Peer limits.
    public var limits = Limits()
    /// Group commit.
    public var commit = Commit()
    /// The alert rules file (docs/ALERTS.md); nil: no alerts.
    public var alerts: String?
    /// Bounds of the operations HTTP listener (`http`).
    public var httpLimits = HTTPListenerLimits()
    /// Fleet status settings.
    public var fleet = Fleet()
    /// Access to the operations port.
    public var operations = Operations()
    /// Report settings.
    public var reports = Reports()

    /// Creates a configuration with defaults for everything but the identity and TLS files.
    public init(hubID: UUID, tls: TLS) {
        self.hubID = hubID
        self.tls = tls
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case hubID = "hubId", listen, http, store, tls, limits, commit, alerts, httpLimits, fleet, operations, reports
        case postgresSection = "postgres"
    }

    /// The `postgres` section of hub.yaml, as written.
    public struct PostgresSection: Sendable, Codable, Equatable {
        /// A file holding the database password.
        public var passwordFile: String?
        /// An environment variable holding the database password.
        public var passwordEnv: String?
        /// `disable`, `require` or `verify`.
        public var tls: String?
        /// The CA that signed the database's certificate (`tls: verify`).
        public var caFile: String?
        /// Most connections this hub opens.
        public var poolSize: Int?
        /// Commit transactions at once.
        public var commitWriters: Int?
        /// Monthly record partitions made ahead.
        public var partitionsAhead: Int?
        /// Months of records kept; absent: all.
        public var retentionMonths: Int?

        /// Nothing set.
        public init() {}

        static let keys = ["passwordFile", "passwordEnv", "tls", "caFile", "poolSize", "commitWriters", "partitionsAhead", "retentionMonths"]
    }

    /// The PostgreSQL settings when `store` is a `postgres://` URL; nil for a SQLite store.
    ///
    /// - Throws: ``ConfigurationError`` naming the setting that is wrong.
    public func postgres(path: String = "configuration") throws -> PostgresSettings? {
        guard PostgresSettings.isURL(self.store) else {
            if self.postgresSection != PostgresSection() {
                throw ConfigurationError(path: path, "has a postgres section, but store is not a postgres:// URL")
            }
            return nil
        }
        do {
            var settings = try PostgresSettings(url: self.store)
            let section = self.postgresSection
            settings.passwordFile = section.passwordFile
            settings.passwordEnv = section.passwordEnv
            if let tls = section.tls {
                guard let mode = PostgresSettings.TLSMode(rawValue: tls) else {
                    throw PostgresSettingsError("postgres.tls: must be disable, require or verify, got \"\(tls)\"")
                }
                settings.tls = mode
            }
            settings.caFile = section.caFile
            settings.poolSize = section.poolSize ?? settings.poolSize
            settings.commitWriters = section.commitWriters ?? PostgresSettings.defaultCommitWriters(poolSize: settings.poolSize)
            settings.partitionsAhead = section.partitionsAhead ?? settings.partitionsAhead
            settings.retentionMonths = section.retentionMonths
            try settings.check()
            return settings
        } catch let error as PostgresSettingsError {
            throw ConfigurationError(path: path, error.description)
        }
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if let id = try? c.decode(UUID.self, forKey: .hubID) {
            self.hubID = id
        } else if try c.decode(String.self, forKey: .hubID) == "machine" {
            // Resolved by load(from:), which can name the file when the machine id is missing.
            self.hubID = UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
            self.hubIDFromMachine = true
        } else {
            throw DecodingError.dataCorruptedError(
                forKey: .hubID, in: c, debugDescription: "hubId must be a UUID or `machine` (derived from /etc/machine-id)"
            )
        }
        self.listen = try c.decodeIfPresent(String.self, forKey: .listen) ?? self.listen
        self.http = try c.decodeIfPresent(String.self, forKey: .http) ?? self.http
        self.store = try c.decodeIfPresent(String.self, forKey: .store) ?? self.store
        self.tls = try c.decode(TLS.self, forKey: .tls)
        self.limits = try c.decodeIfPresent(Limits.self, forKey: .limits) ?? Limits()
        self.commit = try c.decodeIfPresent(Commit.self, forKey: .commit) ?? Commit()
        self.alerts = try c.decodeIfPresent(String.self, forKey: .alerts)
        self.httpLimits = try c.decodeIfPresent(HTTPListenerLimits.self, forKey: .httpLimits) ?? HTTPListenerLimits()
        self.fleet = try c.decodeIfPresent(Fleet.self, forKey: .fleet) ?? Fleet()
        self.operations = try c.decodeIfPresent(Operations.self, forKey: .operations) ?? Operations()
        self.reports = try c.decodeIfPresent(Reports.self, forKey: .reports) ?? Reports()
        self.postgresSection = try c.decodeIfPresent(PostgresSection.self, forKey: .postgresSection) ?? PostgresSection()
    }

    /// The hub id `hubId: machine` stands for: derived from this machine's id as systemd's
    /// `sd_id128_get_machine_app_specific` derives one (HMAC-SHA256 keyed with the machine id
    /// over an id of FeedbackMesh's, made a version 4 UUID), so a configuration shipped to many
    /// machines (the Debian package's) gives each its own stable id, and the machine id itself
    /// is not disclosed.
    ///
    /// - Parameter machineIDFile: `/etc/machine-id` unless a test names another.
    /// - Throws: ``MachineIDError`` when the file is missing or not 32 hex digits.
    public static func machineHubID(machineIDFile: String = "/etc/machine-id") throws -> UUID {
        guard let data = FileManager.default.contents(atPath: machineIDFile), data.count <= 64,
            let text = String(data: data, encoding: .utf8)
        else { throw MachineIDError(reason: "cannot read \(machineIDFile)") }
        let hex = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard hex.count == 32, let bytes = MachineID.bytes(hex: hex) else { throw MachineIDError(reason: "\(machineIDFile) does not hold 32 hex digits") }
        return MachineID.appSpecific(machine: bytes, app: Self.hubApplicationID)
    }

    /// FeedbackMesh's application id for ``machineHubID(machineIDFile:)``.
    static let hubApplicationID: [UInt8] = [
        0x6f, 0x1c, 0x2e, 0x8a, 0x53, 0x4d, 0x4b, 0x1e, 0x9a, 0x0d, 0x77, 0x3b, 0xc4, 0x15, 0xe2, 0x90,
    ]

    /// The batch limits these settings give.
    public var batchLimits: BatchLimits { self.limits.batchLimits }

    /// What the protocol server runs with: this hub's id, listener, TLS files and limits.
    ///
    /// - Throws: ``ConfigurationError`` when `listen` is not `HOST:PORT`.
    public func serverConfiguration() throws -> NodeServer.Configuration {
        let listen = try HostPort(self.listen, key: "listen")
        return NodeServer.Configuration(name: "hub", nodeID: self.hubID, host: listen.host, port: listen.port, tls: self.tls, limits: self.limits)
    }

    /// Reads and checks a configuration file; relative paths become relative to its folder.
    ///
    /// - Throws: ``ConfigurationError`` naming the file and the key that is wrong.
    public static func load(from path: String) throws -> HubConfiguration {
        var configuration: HubConfiguration
        do {
            let document = try ConfigDocument.read(path)
            try document.check(Self.schema)
            configuration = try document.decode(HubConfiguration.self)
        } catch let error as ConfigFileError {
            throw ConfigurationError(path: path, error.located)
        }
        if configuration.hubIDFromMachine {
            do {
                configuration.hubID = try Self.machineHubID()
            } catch let error as MachineIDError {
                throw ConfigurationError(path: path, error.description)
            }
        }
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        func resolve(_ file: String) -> String {
            file.hasPrefix("/") ? file : folder.appendingPathComponent(file).path
        }
        if !PostgresSettings.isURL(configuration.store) { configuration.store = resolve(configuration.store) }
        configuration.postgresSection.passwordFile = configuration.postgresSection.passwordFile.map(resolve)
        configuration.postgresSection.caFile = configuration.postgresSection.caFile.map(resolve)
        configuration.tls.certificate = resolve(configuration.tls.certificate)
        configuration.tls.privateKey = resolve(configuration.tls.privateKey)
        configuration.tls.clientCA = configuration.tls.clientCA.map(resolve)
        configuration.alerts = configuration.alerts.map(resolve)
        if var files = configuration.operations.tls {
            files.certificate = resolve(files.certificate)
            files.privateKey = resolve(files.privateKey)
            configuration.operations.tls = files
        }
        try configuration.validate(path: path)
        return configuration
    }

    /// Checks values that decode but make no sense.
    public func validate(path: String = "configuration") throws {
        _ = try HostPort(self.listen, key: "listen", path: path)
        _ = try HostPort(self.http, key: "http", path: path)
        // The ranges docs/OPERATIONS.md lists.
        do {
            try self.limits.check(section: "limits")
            try RangeError.check(self.commit.maxBatches, 1...100_000, "commit.maxBatches")
            try RangeError.check(self.commit.maxRecords, 1...10_000_000, "commit.maxRecords")
            try RangeError.check(self.fleet.silentAfterMinutes, 1...10_080, "fleet.silentAfterMinutes")
        } catch {
            throw ConfigurationError(path: path, error.description)
        }
        if let problem = self.httpLimits.problem {
            throw ConfigurationError(path: path, "httpLimits.\(problem)")
        }
        if let problem = self.operations.problem {
            throw ConfigurationError(path: path, problem)
        }
        if self.reports.zone == nil {
            throw ConfigurationError(
                path: path, "reports.timeZone must be an IANA time zone such as Europe/Berlin, got \(TerminalText.excerpt(self.reports.timeZone))"
            )
        }
        _ = try self.postgres(path: path)
    }

    /// The settings hub.yaml may hold; anything else is refused.
    static let schema = ConfigSchema.settings([
        "hubId": .value, "listen": .value, "http": .value, "store": .value, "alerts": .value,
        "httpLimits": .settings(Dictionary(uniqueKeysWithValues: HTTPListenerLimits.settingNames.map { ($0, ConfigSchema.value) })),
        "tls": .keys("certificate", "privateKey", "clientCA"),
        "limits": .settings(Dictionary(uniqueKeysWithValues: NodeServer.Limits.settingNames.map { ($0, ConfigSchema.value) })),
        "commit": .keys("maxBatches", "maxRecords"),
        "fleet": .keys("silentAfterMinutes"),
        "reports": .keys("timeZone"),
        "operations": .settings([
            "metrics": .value, "health": .value, "origins": .value, "hosts": .value, "sessionHours": .value, "tls": .keys("certificate", "privateKey"),
        ]),
        "postgres": .settings(Dictionary(uniqueKeysWithValues: PostgresSection.keys.map { ($0, ConfigSchema.value) })),
    ])
}

/// A configuration problem, naming the file and the setting.
public struct ConfigurationError: Error, CustomStringConvertible {
    /// The file.
    public var path: String
    /// What is wrong.
    public var reason: String

    /// Creates an error.
    public init(path: String, _ reason: String) {
        self.path = path
        self.reason = reason
    }

    /// "configuration file PATH REASON".
    public var description: String { "configuration file \(self.path) \(self.reason)" }
}

/// A `HOST:PORT` pair from configuration or flags.
public struct HostPort: Sendable, Hashable, CustomStringConvertible {
    /// Host name or address.
    public var host: String
    /// Port, 0 for any free port.
    public var port: Int

    /// Parses `HOST:PORT` (`[::1]:7443` for IPv6).
    public init(_ text: String, key: String, path: String = "flags") throws {
        guard let colon = text.lastIndex(of: ":") else {
            throw ConfigurationError(path: path, "\(key) must be HOST:PORT, got \(TerminalText.excerpt(text))")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw ConfigurationError(path: path, "\(key) must be HOST:PORT with a port 0–65535, got \(TerminalText.excerpt(text))")
        }
        self.host = host
        self.port = port
    }

    /// `HOST:PORT`.
    public var description: String { self.host.contains(":") ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)" }
}

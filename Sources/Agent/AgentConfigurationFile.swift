import ListenerLimits
import NIOSSL
import NodeServer
import Support
import Wire

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The agent's configuration file (`agent.yaml`), as `feedback-agent run --config` reads it.
/// Relative paths are relative to the file. Unknown settings are errors.
///
/// ```yaml
/// identity: agent.json            # made by `feedback-agent keygen`
/// hubs: ["hub.example.net:7443"]  # in order of preference
/// ca: ca.pem                      # the hub's CA certificate
/// clientCertificate: node.pem     # optional, both or neither: for hubs that require mutual TLS
/// clientKey: node-key.pem         #   (`feedback-hub certs client`)
/// enrollmentToken: ""             # optional, until the hub knows this agent
/// spool: {directory: spool, fsync: "10", segmentBytes: 8388608, quotaBytes: 1073741824, reserveBytes: 262144}
/// batch: {maxRecords: 1000, maxBytes: 1048576, maxAgeMs: 100}
/// http: {listen: "127.0.0.1:8088", corsOrigins: [], maxBodyBytes: 1048576, onePerCustomerDays: 0,
///        maxConnections: 256, maxConnectionsPerAddress: 32, headerTimeoutMs: 10000,
///        bodyTimeoutMs: 30000, idleTimeoutMs: 60000}   # optional
/// drainTimeoutMs: 10000
/// sites: ["branch-042"]           # optional: the sites this agent is enrolled for (`*` wildcards)
/// sources: [...]                  # optional: kiosk buttons, Asterisk CDR, JSON lines (docs/SOURCES.md)
/// relay:                          # optional: also serve agents below (docs/MESH.md)
///   listen: "0.0.0.0:7443"
///   certificate: relay.pem        # `feedback-hub certs relay`, from the hubs' CA
///   privateKey: relay-key.pem
///   clientCA: ca.pem              # optional: require client certificates (mutual TLS)
///   limits: {maxConnections: 1024, credit: 16, ...}   # as the hub's `limits`
/// ```
public struct AgentConfigurationFile: Sendable, Codable {
    /// Spool settings.
    public struct SpoolSection: Sendable, Codable {
        /// Folder.
        public var directory: String = "spool"
        /// `always`, `never`, or a group interval in milliseconds.
        public var fsync: String = "10"
        /// Segment size.
        public var segmentBytes: Int = 8 << 20
        /// Quota.
        public var quotaBytes: Int = 1 << 30
        /// Disk space kept aside for sealing and acknowledging on a full disk.
        public var reserveBytes: Int = 256 << 10

        init() {}

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.directory = try c.decodeIfPresent(String.self, forKey: .directory) ?? self.directory
            self.fsync = try c.decodeIfPresent(String.self, forKey: .fsync) ?? self.fsync
            self.segmentBytes = try c.decodeIfPresent(Int.self, forKey: .segmentBytes) ?? self.segmentBytes
            self.quotaBytes = try c.decodeIfPresent(Int.self, forKey: .quotaBytes) ?? self.quotaBytes
            self.reserveBytes = try c.decodeIfPresent(Int.self, forKey: .reserveBytes) ?? self.reserveBytes
        }
    }

    /// Batching settings.
    public struct BatchSection: Sendable, Codable {
        /// Most records per batch.
        public var maxRecords: Int = 1_000
        /// Most encoded bytes per batch.
        public var maxBytes: Int = 1 << 20
        /// Longest wait before a record is sealed, ms.
        public var maxAgeMs: Int = 100

        init() {}

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.maxRecords = try c.decodeIfPresent(Int.self, forKey: .maxRecords) ?? self.maxRecords
            self.maxBytes = try c.decodeIfPresent(Int.self, forKey: .maxBytes) ?? self.maxBytes
            self.maxAgeMs = try c.decodeIfPresent(Int.self, forKey: .maxAgeMs) ?? self.maxAgeMs
        }
    }

    /// Local HTTP intake settings.
    public struct HTTPSection: Sendable, Codable {
        /// `HOST:PORT` to listen on; keep it on loopback or a private interface.
        public var listen: String
        /// Browser origins allowed to post (CORS, and enforced on the request); empty: none.
        public var corsOrigins: [String] = []
        /// Names the intake answers to besides IP addresses and `localhost`.
        public var hosts: [String] = []
        /// Largest request body.
        public var maxBodyBytes: Int = 1 << 20
        /// One response per customer per survey within this many days; 0 turns it off.
        public var onePerCustomerDays: Int = 0
        /// Connection cap and timeouts (`maxConnections`, `maxConnectionsPerAddress`,
        /// `headerTimeoutMs`, `bodyTimeoutMs`, `idleTimeoutMs`, in this same section).
        public var limits = HTTPListenerLimits()
        /// Backends' secret keys, by their SHA-256 (`feedback-agent intake-key`).
        public var writeKeys: [WriteKey] = []
        /// Pages' public keys, one survey each.
        public var surveyKeys: [SurveyKey] = []
        /// Ratings per second one client address may submit with a survey key.
        public var ratePerAddress: Double = 1
        /// Ratings one client address may submit at once with a survey key.
        public var addressBurst: Double = 10
        /// How long a request's `Idempotency-Key` is remembered, hours; 0 turns it off.
        public var idempotencyHours: Int = 24
        /// Reverse proxies in front of the intake (IP addresses): the client is then the
        /// last address of their `X-Forwarded-For`.
        public var trustedProxies: [String] = []

        /// A backend's write key.
        public struct WriteKey: Sendable, Codable {
            /// The key's name.
            public var name: String
            /// The hex SHA-256 of the key.
            public var sha256: String
            /// Sites it may submit for (`*` wildcards); absent: the agent's sites.
            public var sites: [String]?
            /// Surveys it may submit for; absent: any.
            public var surveys: [String]?
            /// Ratings per second.
            public var ratePerSecond: Double?
            /// Ratings at once.
            public var burst: Double?
        }

        /// A page's survey key.
        public struct SurveyKey: Sendable, Codable {
            /// The key's name.
            public var name: String
            /// The public key itself.
            public var key: String
            /// Its one survey.
            public var survey: String
            /// Its one site.
            public var site: String
            /// Page origins it may be used from (`https://shop.example.com`).
            public var origins: [String]
            /// Ratings per second.
            public var ratePerSecond: Double?
            /// Ratings at once.
            public var burst: Double?
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.writeKeys = try c.decodeIfPresent([WriteKey].self, forKey: .writeKeys) ?? []
            self.surveyKeys = try c.decodeIfPresent([SurveyKey].self, forKey: .surveyKeys) ?? []
            self.ratePerAddress = try c.decodeIfPresent(Double.self, forKey: .ratePerAddress) ?? self.ratePerAddress
            self.addressBurst = try c.decodeIfPresent(Double.self, forKey: .addressBurst) ?? self.addressBurst
            self.idempotencyHours = try c.decodeIfPresent(Int.self, forKey: .idempotencyHours) ?? self.idempotencyHours
            self.trustedProxies = try c.decodeIfPresent([String].self, forKey: .trustedProxies) ?? []
            self.listen = try c.decode(String.self, forKey: .listen)
            self.corsOrigins = try c.decodeIfPresent([String].self, forKey: .corsOrigins) ?? []
            self.hosts = try c.decodeIfPresent([String].self, forKey: .hosts) ?? []
            self.maxBodyBytes = try c.decodeIfPresent(Int.self, forKey: .maxBodyBytes) ?? self.maxBodyBytes
            self.onePerCustomerDays = try c.decodeIfPresent(Int.self, forKey: .onePerCustomerDays) ?? 0
            self.limits = try HTTPListenerLimits(from: decoder)
        }

        enum CodingKeys: String, CodingKey {
            case listen, corsOrigins, hosts, maxBodyBytes, onePerCustomerDays, writeKeys, surveyKeys, ratePerAddress, addressBurst, idempotencyHours
            case trustedProxies
        }

        /// Default rates: a backend's key 1,000 ratings/s (10,000 at once), a page's key 50/s (200).
        static let writeRate = (rate: 1_000.0, burst: 10_000.0)
        static let surveyRate = (rate: 50.0, burst: 200.0)

        /// The keys as the intake checks them.
        ///
        /// - Throws: a message naming the setting when a key is malformed or named twice.
        public func access() throws -> IntakeAccess {
            var names: Set<String> = []
            func checkName(_ name: String, _ place: String) throws {
                guard (1...64).contains(name.utf8.count), name.utf8.allSatisfy({ Self.nameBytes.contains($0) }) else {
                    throw SettingError("\(place).name must be 1–64 letters, digits, '.', '_' or '-', got \(TerminalText.excerpt(name))")
                }
                guard names.insert(name).inserted else { throw SettingError("\(place).name \(name) is used by another key") }
            }
            func checkRate(_ rate: Double?, _ burst: Double?, _ place: String) throws {
                if let rate, !(0.01...1_000_000).contains(rate) { throw SettingError("\(place).ratePerSecond must be 0.01–1000000, got \(rate)") }
                if let burst, !(1...10_000_000).contains(burst) { throw SettingError("\(place).burst must be 1–10000000, got \(burst)") }
            }
            var writeKeys: [String: IntakeKey] = [:]
            for (index, key) in self.writeKeys.enumerated() {
                let place = "http.writeKeys[\(index + 1)]"
                try checkName(key.name, place)
                let digest = key.sha256.lowercased()
                guard digest.utf8.count == 64, digest.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else {
                    throw SettingError("\(place).sha256 must be the 64 hex digits `feedback-agent intake-key` printed")
                }
                guard writeKeys[digest] == nil else { throw SettingError("\(place).sha256 is the same key as another write key") }
                try checkRate(key.ratePerSecond, key.burst, place)
                let sites: SiteScope
                do { sites = try key.sites.map { try SiteScope($0) } ?? .any } catch let error as WireError {
                    throw SettingError("\(place).sites: \(error.detail)")
                }
                writeKeys[digest] = IntakeKey(
                    name: key.name, kind: .write, sites: sites, surveys: key.surveys.map(Set.init),
                    ratePerSecond: key.ratePerSecond ?? Self.writeRate.rate, burst: key.burst ?? Self.writeRate.burst
                )
            }
            var surveyKeys: [String: IntakeKey] = [:]
            for (index, key) in self.surveyKeys.enumerated() {
                let place = "http.surveyKeys[\(index + 1)]"
                try checkName(key.name, place)
                guard (16...256).contains(key.key.utf8.count), key.key.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
                    throw SettingError("\(place).key must be 16–256 visible ASCII characters (`feedback-agent intake-key --survey` makes one)")
                }
                guard surveyKeys[key.key] == nil else { throw SettingError("\(place).key is the same key as another survey key") }
                guard !key.survey.isEmpty, key.survey.utf8.count <= 128 else { throw SettingError("\(place).survey must be 1–128 bytes") }
                guard !key.site.isEmpty, !key.site.contains("*") else { throw SettingError("\(place).site must be one site, without wildcards") }
                guard !key.origins.isEmpty else { throw SettingError("\(place).origins must list the page origins it is used from") }
                if let bad = key.origins.first(where: { !Self.isOrigin($0) }) {
                    throw SettingError("\(place).origins: each must be scheme://host[:port] like https://shop.example.com, got \(TerminalText.excerpt(bad))")
                }
                try checkRate(key.ratePerSecond, key.burst, place)
                let sites: SiteScope
                do { sites = try SiteScope([key.site]) } catch let error as WireError { throw SettingError("\(place).site: \(error.detail)") }
                surveyKeys[key.key] = IntakeKey(
                    name: key.name, kind: .survey, sites: sites, surveys: [key.survey], origins: Set(key.origins),
                    ratePerSecond: key.ratePerSecond ?? Self.surveyRate.rate, burst: key.burst ?? Self.surveyRate.burst
                )
            }
            return IntakeAccess(writeKeys: writeKeys, surveyKeys: surveyKeys)
        }

        /// The bytes a key's name may hold.
        public static let nameBytes: Set<UInt8> = Set(Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-".utf8))

        /// `http://` or `https://`, a host, an optional port, nothing after: what a browser sends in `Origin`.
        public static func isOrigin(_ value: String) -> Bool {
            for scheme in ["https://", "http://"] where value.hasPrefix(scheme) {
                let authority = value.dropFirst(scheme.count)
                return !authority.isEmpty && !authority.contains("/") && !authority.contains("?") && !authority.contains("#")
                    && !authority.contains("@") && authority.utf8.allSatisfy { (0x21...0x7E).contains($0) }
            }
            return false
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(self.listen, forKey: .listen)
            try c.encode(self.corsOrigins, forKey: .corsOrigins)
            try c.encode(self.hosts, forKey: .hosts)
            try c.encode(self.maxBodyBytes, forKey: .maxBodyBytes)
            try c.encode(self.onePerCustomerDays, forKey: .onePerCustomerDays)
            try c.encode(self.writeKeys, forKey: .writeKeys)
            try c.encode(self.surveyKeys, forKey: .surveyKeys)
            try c.encode(self.ratePerAddress, forKey: .ratePerAddress)
            try c.encode(self.addressBurst, forKey: .addressBurst)
            try c.encode(self.idempotencyHours, forKey: .idempotencyHours)
            try c.encode(self.trustedProxies, forKey: .trustedProxies)
            try self.limits.encode(to: encoder)
        }
    }

    /// The relay's listener: where agents below it connect, its TLS files and limits.
    public struct RelaySection: Sendable, Codable {
        /// `HOST:PORT` to listen on.
        public var listen: String
        /// The relay's server certificate (PEM), issued from the hubs' CA.
        public var certificate: String
        /// Its private key.
        public var privateKey: String
        /// A CA whose client certificates the relay requires (mutual TLS); nil: none.
        public var clientCA: String?
        /// Connection caps, timeouts, credit and batch limits, as the hub's `limits`.
        public var limits = NodeServer.Limits()

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.listen = try c.decode(String.self, forKey: .listen)
            self.certificate = try c.decode(String.self, forKey: .certificate)
            self.privateKey = try c.decode(String.self, forKey: .privateKey)
            self.clientCA = try c.decodeIfPresent(String.self, forKey: .clientCA)
            self.limits = try c.decodeIfPresent(NodeServer.Limits.self, forKey: .limits) ?? NodeServer.Limits()
        }
    }

    /// Identity file.
    public var identity: String
    /// Hubs in order.
    public var hubs: [String]
    /// CA file.
    public var ca: String
    /// Client certificate file, for hubs that require mutual TLS (with ``clientKey``).
    public var clientCertificate: String?
    /// The client certificate's private key file.
    public var clientKey: String?
    /// Optional enrollment token.
    public var enrollmentToken: String = ""
    /// Spool.
    public var spool = SpoolSection()
    /// Batching.
    public var batch = BatchSection()
    /// HTTP intake (optional).
    public var http: HTTPSection?
    /// Shutdown wait for acknowledgements, ms.
    public var drainTimeoutMs: Int = 10_000
    /// The sites the agent is enrolled for; ratings for others are refused at capture.
    public var sites: [String]?
    /// Edge sources (read from the YAML tree, not decoded).
    public var sources: [SourceConfiguration] = []
    /// The relay listener, when this agent relays for others.
    public var relay: RelaySection?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case identity, hubs, ca, clientCertificate, clientKey, enrollmentToken, spool, batch, http, drainTimeoutMs, sites, relay
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.identity = try c.decode(String.self, forKey: .identity)
        self.hubs = try c.decode([String].self, forKey: .hubs)
        self.ca = try c.decode(String.self, forKey: .ca)
        self.clientCertificate = try c.decodeIfPresent(String.self, forKey: .clientCertificate)
        self.clientKey = try c.decodeIfPresent(String.self, forKey: .clientKey)
        self.enrollmentToken = try c.decodeIfPresent(String.self, forKey: .enrollmentToken) ?? ""
        self.spool = try c.decodeIfPresent(SpoolSection.self, forKey: .spool) ?? SpoolSection()
        self.batch = try c.decodeIfPresent(BatchSection.self, forKey: .batch) ?? BatchSection()
        self.http = try c.decodeIfPresent(HTTPSection.self, forKey: .http)
        self.drainTimeoutMs = try c.decodeIfPresent(Int.self, forKey: .drainTimeoutMs) ?? 10_000
        self.sites = try c.decodeIfPresent([String].self, forKey: .sites)
        self.relay = try c.decodeIfPresent(RelaySection.self, forKey: .relay)
    }

    /// The settings agent.yaml may hold; anything else is refused.
    static let schema = ConfigSchema.settings([
        "identity": .value, "hubs": .value, "ca": .value, "clientCertificate": .value, "clientKey": .value,
        "enrollmentToken": .value, "drainTimeoutMs": .value, "sites": .value,
        "spool": .keys("directory", "fsync", "segmentBytes", "quotaBytes", "reserveBytes"),
        "batch": .keys("maxRecords", "maxBytes", "maxAgeMs"),
        "http": .settings(
            Dictionary(
                uniqueKeysWithValues: (["listen", "corsOrigins", "hosts", "maxBodyBytes", "onePerCustomerDays", "ratePerAddress", "addressBurst", "idempotencyHours", "trustedProxies"]
                    + HTTPListenerLimits.settingNames.sorted()).map { ($0, ConfigSchema.value) }
            ).merging([
                "writeKeys": .list(.keys("name", "sha256", "sites", "surveys", "ratePerSecond", "burst")),
                "surveyKeys": .list(.keys("name", "key", "survey", "site", "origins", "ratePerSecond", "burst")),
            ]) { $1 }
        ),
        "sources": SourceConfiguration.schema,
        "relay": .settings([
            "listen": .value, "certificate": .value, "privateKey": .value, "clientCA": .value,
            "limits": .settings(Dictionary(uniqueKeysWithValues: NodeServer.Limits.settingNames.map { ($0, ConfigSchema.value) })),
        ]),
    ])

    /// Reads and checks `path`; relative paths become relative to its folder.
    ///
    /// - Throws: ``AgentConfigurationError`` naming the file and the setting.
    public static func load(from path: String) throws -> AgentConfigurationFile {
        let document: ConfigDocument
        var file: AgentConfigurationFile
        do {
            document = try ConfigDocument.read(path)
            try document.check(Self.schema)
            file = try document.decode(AgentConfigurationFile.self)
        } catch let error as ConfigFileError {
            throw AgentConfigurationError(path: path, error.located)
        }
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        func resolve(_ file: String) -> String { file.hasPrefix("/") ? file : folder.appendingPathComponent(file).path }
        file.identity = resolve(file.identity)
        file.ca = resolve(file.ca)
        file.clientCertificate = file.clientCertificate.map(resolve)
        file.clientKey = file.clientKey.map(resolve)
        file.spool.directory = resolve(file.spool.directory)
        if var relay = file.relay {
            relay.certificate = resolve(relay.certificate)
            relay.privateKey = resolve(relay.privateKey)
            relay.clientCA = relay.clientCA.map(resolve)
            file.relay = relay
        }
        file.sources = try SourceConfiguration.parse((document.tree as? [String: Any])?["sources"], path: path, resolve: resolve)
        try file.validate(path: path)
        return file
    }

    func validate(path: String) throws {
        guard !self.hubs.isEmpty else { throw AgentConfigurationError(path: path, "hubs must list at least one HOST:PORT") }
        for hub in self.hubs {
            do { _ = try HubAddress(parsing: hub) } catch let error as HubAddressError {
                throw AgentConfigurationError(path: path, "hubs: \(error.description)")
            }
        }
        guard (self.clientCertificate == nil) == (self.clientKey == nil) else {
            throw AgentConfigurationError(path: path, "clientCertificate and clientKey go together: set both or neither")
        }
        _ = try self.fsyncPolicy(path: path)
        // The ranges docs/AGENT.md lists.
        do {
            try RangeError.check(self.spool.segmentBytes, 4_096...(1 << 30), "spool.segmentBytes")
            try RangeError.check(self.spool.quotaBytes, 4_096...(1 << 50), "spool.quotaBytes")
            try RangeError.check(self.spool.reserveBytes, 0...(1 << 30), "spool.reserveBytes")
            // 10,000 records and 8 MiB are the protocol's batch limits.
            try RangeError.check(self.batch.maxRecords, 1...10_000, "batch.maxRecords")
            try RangeError.check(self.batch.maxBytes, 1_024...(8 << 20), "batch.maxBytes")
            try RangeError.check(self.batch.maxAgeMs, 1...3_600_000, "batch.maxAgeMs")
            try RangeError.check(self.drainTimeoutMs, 1...600_000, "drainTimeoutMs")
            if let http = self.http {
                // 8 MiB of JSON decodes to some 100 MB at most; more per request buys nothing but memory.
                try RangeError.check(http.maxBodyBytes, 1_024...(8 << 20), "http.maxBodyBytes")
                try RangeError.check(http.onePerCustomerDays, 0...3_650, "http.onePerCustomerDays")
                try RangeError.check(http.idempotencyHours, 0...720, "http.idempotencyHours")
                guard (0.01...1_000_000).contains(http.ratePerAddress) else { throw SettingError("http.ratePerAddress must be 0.01–1000000, got \(http.ratePerAddress)") }
                guard (1...10_000_000).contains(http.addressBurst) else { throw SettingError("http.addressBurst must be 1–10000000, got \(http.addressBurst)") }
                let access = try http.access()
                if let bad = http.trustedProxies.first(where: { HTTPIntake.canonicalIP($0) == nil }) {
                    throw SettingError("http.trustedProxies: each must be an IP address, got \(TerminalText.excerpt(bad))")
                }
                if !access.requiresKey, let address = try? HubAddress(parsing: http.listen), !HostNames.isLoopback(address.host) {
                    throw SettingError(
                        "http.listen \(http.listen) is beyond loopback, so the intake needs keys: add http.writeKeys (backends) or http.surveyKeys (pages), see docs/AGENT.md"
                    )
                }
            }
        } catch {
            throw AgentConfigurationError(path: path, "\(error)")
        }
        _ = try self.siteScope(path: path)
        if let problem = self.http?.limits.problem {
            throw AgentConfigurationError(path: path, "http.\(problem)")
        }
        if let http = self.http {
            if let bad = http.hosts.first(where: { !HostNames.isValidName($0) }) {
                throw AgentConfigurationError(
                    path: path,
                    "http.hosts: each must be a host name such as feedback.shop.example.com (no scheme, port or path), got \(TerminalText.excerpt(bad))"
                )
            }
            do { _ = try HubAddress(parsing: http.listen) } catch {
                throw AgentConfigurationError(path: path, "http.listen must be HOST:PORT, got \(TerminalText.excerpt(http.listen))")
            }
            if (!http.hosts.isEmpty || !http.trustedProxies.isEmpty), http.writeKeys.isEmpty, http.surveyKeys.isEmpty {
                throw AgentConfigurationError(
                    path: path,
                    "http.hosts and http.trustedProxies mean the intake is reached from other machines (through a proxy), so it needs keys: add http.writeKeys or http.surveyKeys, see docs/AGENT.md"
                )
            }
        }
        if let relay = self.relay {
            do { _ = try HubAddress(parsing: relay.listen) } catch {
                throw AgentConfigurationError(path: path, "relay.listen must be HOST:PORT, got \(TerminalText.excerpt(relay.listen))")
            }
            do {
                try relay.limits.check(section: "relay.limits")
                // A relay must not take a batch a hub refuses for its size: it acknowledged it
                // already. Hubs take at least the protocol's defaults, so a relay takes at most them.
                let protocolLimits = BatchLimits()
                try RangeError.check(relay.limits.maxCompressedBytes, 1024...protocolLimits.maxCompressedBytes, "relay.limits.maxCompressedBytes")
                try RangeError.check(relay.limits.maxUncompressedBytes, 1024...protocolLimits.maxUncompressedBytes, "relay.limits.maxUncompressedBytes")
                try RangeError.check(relay.limits.maxBatchRecords, 1...protocolLimits.maxRecords, "relay.limits.maxBatchRecords")
            } catch {
                throw AgentConfigurationError(path: path, error.description)
            }
        }
    }

    /// ``clientCertificate`` and ``clientKey``, when set.
    public var clientCertificateFiles: HubConnection.ClientCertificate? {
        guard let certificate = self.clientCertificate, let key = self.clientKey else { return nil }
        return HubConnection.ClientCertificate(certificate: certificate, privateKey: key)
    }

    func fsyncPolicy(path: String) throws -> Spool.FsyncPolicy {
        switch self.spool.fsync {
        case "always": return .always
        case "never": return .never
        default:
            guard let ms = Int(self.spool.fsync), (1...10_000).contains(ms) else {
                throw AgentConfigurationError(path: path, "spool.fsync must be always, never or 1–10000 (ms), got \(TerminalText.excerpt(self.spool.fsync))")
            }
            return .interval(.milliseconds(ms))
        }
    }

    /// The agent settings this file describes: loads the identity, the CA and the client
    /// certificate.
    ///
    /// - Throws: ``AgentConfigurationError`` when the identity or a TLS file cannot be used.
    public func agentConfiguration(path: String) throws -> FeedbackAgent.Configuration {
        let identity: AgentIdentity
        do {
            identity = try AgentIdentity.load(from: self.identity)
        } catch let error as AgentIdentityError {
            throw AgentConfigurationError(path: path, "identity: \(error.description)")
        }
        let tls: NIOSSLContext
        do {
            tls = try HubConnection.tlsContext(trusting: self.ca, clientCertificate: self.clientCertificateFiles)
        } catch let error as FileError {
            throw AgentConfigurationError(path: path, "names a TLS file that cannot be used: \(error.description)")
        }
        var configuration = FeedbackAgent.Configuration(
            identity: identity, hubs: try self.hubs.map { try HubAddress(parsing: $0) }, tls: tls, spoolDirectory: self.spool.directory
        )
        configuration.spool.fsync = try self.fsyncPolicy(path: path)
        configuration.spool.segmentBytes = self.spool.segmentBytes
        configuration.spool.quotaBytes = self.spool.quotaBytes
        configuration.spool.reserveBytes = self.spool.reserveBytes
        configuration.batching.maxRecords = self.batch.maxRecords
        configuration.batching.maxBytes = self.batch.maxBytes
        configuration.batching.maxAge = .milliseconds(self.batch.maxAgeMs)
        configuration.enrollmentToken = self.enrollmentToken
        configuration.drainTimeout = .milliseconds(self.drainTimeoutMs)
        configuration.sources = self.sources
        configuration.sites = try self.siteScope(path: path)
        if let relay = self.relay {
            let address = try HubAddress(parsing: relay.listen)
            var server = NodeServer.Configuration(
                name: "relay", nodeID: identity.nodeID, host: address.host, port: address.port,
                tls: ServerTLS.Files(certificate: relay.certificate, privateKey: relay.privateKey, clientCA: relay.clientCA),
                limits: relay.limits
            )
            server.maxIncomingHops = ForwardedBatch.maxHops - 1
            configuration.relay = server
        }
        return configuration
    }

    private func siteScope(path: String) throws -> SiteScope {
        guard let sites = self.sites else { return .any }
        do {
            return try SiteScope(sites)
        } catch let error as WireError {
            throw AgentConfigurationError(path: path, "sites: \(error.detail)")
        }
    }
}

/// A setting's problem, as a sentence naming it.
struct SettingError: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) {
        self.description = description
    }
}

/// A configuration problem, naming the file and the setting.
public struct AgentConfigurationError: Error, Sendable, CustomStringConvertible {
    /// The file.
    public var path: String
    /// What is wrong.
    public var reason: String

    init(path: String, _ reason: String) {
        self.path = path
        self.reason = reason
    }

    /// "configuration file PATH REASON".
    public var description: String { "configuration file \(self.path) \(self.reason)" }
}

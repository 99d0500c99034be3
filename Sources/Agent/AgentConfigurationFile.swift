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

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.listen = try c.decode(String.self, forKey: .listen)
            self.corsOrigins = try c.decodeIfPresent([String].self, forKey: .corsOrigins) ?? []
            self.hosts = try c.decodeIfPresent([String].self, forKey: .hosts) ?? []
            self.maxBodyBytes = try c.decodeIfPresent(Int.self, forKey: .maxBodyBytes) ?? self.maxBodyBytes
            self.onePerCustomerDays = try c.decodeIfPresent(Int.self, forKey: .onePerCustomerDays) ?? 0
            self.limits = try HTTPListenerLimits(from: decoder)
        }

        enum CodingKeys: String, CodingKey {
            case listen, corsOrigins, hosts, maxBodyBytes, onePerCustomerDays
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(self.listen, forKey: .listen)
            try c.encode(self.corsOrigins, forKey: .corsOrigins)
            try c.encode(self.hosts, forKey: .hosts)
            try c.encode(self.maxBodyBytes, forKey: .maxBodyBytes)
            try c.encode(self.onePerCustomerDays, forKey: .onePerCustomerDays)
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
            Dictionary(uniqueKeysWithValues: (["listen", "corsOrigins", "hosts", "maxBodyBytes", "onePerCustomerDays"] + HTTPListenerLimits.settingNames.sorted()).map { ($0, ConfigSchema.value) })
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
                try RangeError.check(http.maxBodyBytes, 1_024...(64 << 20), "http.maxBodyBytes")
                try RangeError.check(http.onePerCustomerDays, 0...3_650, "http.onePerCustomerDays")
            }
        } catch {
            throw AgentConfigurationError(path: path, error.description)
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

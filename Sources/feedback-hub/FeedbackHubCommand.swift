import ArgumentParser
import Foundation
import Hub
import ListenerLimits
import Logging
import ServiceLifecycle
import Support
import Wire

@main
struct FeedbackHubCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "feedback-hub",
        abstract: "Receives, verifies and stores FeedbackMesh ratings.",
        subcommands: [Init.self, Serve.self, Agents.self, Tokens.self, Certs.self, Alerts.self, Report.self, Inspect.self]
    )
}

/// Runs `body`, turning the library's errors into one-line CLI errors.
func reporting<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as ConfigurationError {
        throw CLIError(error.description)
    } catch let error as StoreError {
        throw CLIError(error.description)
    } catch let error as AlertRulesError {
        throw CLIError(error.description)
    }
}

/// Writes `text` to `path`, replacing what is there; secrets get mode 0600.
func writeFile(_ path: String, _ text: String, isSecret: Bool) throws {
    if isSecret {
        // 0600 from the first open: no moment at which another user could read the key.
        do {
            try SecretFile.write(Data(text.utf8), to: path, replacing: true)
        } catch {
            throw CLIError("cannot write \(error)")
        }
        return
    }
    let manager = FileManager.default
    try? manager.removeItem(atPath: path)
    guard manager.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o644]) else {
        throw CLIError("cannot write \(path)")
    }
}

struct ConfigOption: ParsableArguments {
    @Option(name: .shortAndLong, help: "The hub configuration file made by `feedback-hub init`.")
    var config: String = "hub/hub.yaml"

    func load() throws -> HubConfiguration {
        try reporting { try HubConfiguration.load(from: self.config) }
    }

    /// Opens the configured store (SQLite or PostgreSQL), which running hubs may share.
    func openStore() throws -> any FeedbackStore {
        let configuration = try self.load()
        var logger = Logger(label: "feedback-hub")
        logger.logLevel = .warning
        return try reporting { try Hub.openStore(configuration, alerts: .none, logger: logger, keepReportZone: true) }
    }
}

/// The sites an enrollment or an API token allows, from `--site` (repeatable) or `--any-site`.
struct SiteOptions: ParsableArguments {
    @Option(
        name: .customLong("site"),
        help: "A site it may report for or see (repeatable); `*` matches any run of characters, as in `branch-*`."
    )
    var sites: [String] = []

    @Flag(help: "Every site (a product backend serving every site, an operations team).")
    var anySite = false

    /// The scope; `what` names what it is for in the error ("the node may report for").
    func scope(_ what: String = "the node may report for") throws -> SiteScope {
        switch (self.sites.isEmpty, self.anySite) {
        case (true, false): throw CLIError("say which sites \(what): --site NAME (repeatable, `*` as a wildcard) or --any-site")
        case (false, true): throw CLIError("--any-site and --site exclude each other")
        case (true, true): return .any
        case (false, false):
            do { return try SiteScope(self.sites) } catch let error as WireError { throw CLIError("--site: \(error.detail)") }
        }
    }
}

struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Creates what a first run needs: a private CA, a server certificate, a configuration and an empty store."
    )

    @Argument(help: "The folder to create.")
    var directory: String

    @Option(name: .customLong("hostname"), help: "A name or address agents use to reach the hub (repeatable).")
    var hostnames: [String] = ["localhost", "127.0.0.1", "::1"]

    @Option(help: "Protocol listener, HOST:PORT.")
    var listen = "0.0.0.0:7443"

    @Option(help: "Operations HTTP listener (metrics, health), HOST:PORT.")
    var http = "127.0.0.1:7080"

    @Flag(help: "Overwrite an existing configuration and certificates (the store is kept).")
    var force = false

    func validate() throws {
        _ = try reporting { try HostPort(self.listen, key: "--listen") }
        _ = try reporting { try HostPort(self.http, key: "--http") }
    }

    func run() throws {
        let manager = FileManager.default
        let folder = URL(fileURLWithPath: self.directory)
        let configPath = folder.appendingPathComponent("hub.yaml").path
        if manager.fileExists(atPath: configPath), !self.force {
            throw CLIError("\(configPath) already exists; use --force to replace the configuration and certificates")
        }
        do {
            // A folder init makes holds the CA key and the store: owner-only.
            try SecretFile.checkOwnFolder(folder.path)
            try SecretFile.createDirectory(folder.path)
        } catch {
            throw CLIError("cannot create \(self.directory): \(error.reason)")
        }
        let files = try HubCertificates.make(hostnames: self.hostnames)
        func write(_ name: String, _ text: String, isSecret: Bool) throws {
            try writeFile(folder.appendingPathComponent(name).path, text, isSecret: isSecret)
        }
        try write("ca.pem", files.caCertificate, isSecret: false)
        try write("ca-key.pem", files.caPrivateKey, isSecret: true)
        try write("hub.pem", files.serverCertificate, isSecret: false)
        try write("hub-key.pem", files.serverPrivateKey, isSecret: true)
        let yaml = """
            # FeedbackMesh hub configuration (docs/OPERATIONS.md). Paths are relative to this file.
            hubId: \(UUID().uuidString)
            listen: "\(self.listen)"
            http: "\(self.http)"
            store: feedback.sqlite
            tls:
              certificate: hub.pem
              privateKey: hub-key.pem
              # clientCA: ca.pem   # set to require client certificates (mutual TLS): feedback-hub certs client
            limits:
              maxConnections: 1024
              maxHandshakes: 256
              maxHandshakesPerAddress: 32
              maxBatchRecords: 10000
              maxCompressedBytes: 4194304
              maxUncompressedBytes: 8388608
              maxCompressionRatio: 200
              credit: 16
              handshakeTimeoutMs: 10000
              idleTimeoutMs: 60000
              drainTimeoutMs: 10000
            commit:
              maxBatches: 512
              maxRecords: 200000
            httpLimits:
              maxConnections: 256
              maxConnectionsPerAddress: 32
              headerTimeoutMs: 10000
              bodyTimeoutMs: 30000
              idleTimeoutMs: 60000
            fleet:
              silentAfterMinutes: 15   # feedback_hub_nodes_silent counts nodes not seen for this long
            # alerts: alerts.yaml   # alert rules, targets and routing (docs/ALERTS.md); see alerts.example.yaml

            """
        try write("hub.yaml", yaml, isSecret: false)
        try write("alerts.example.yaml", AlertRules.example, isSecret: false)
        let configuration = try reporting { try HubConfiguration.load(from: configPath) }
        _ = try reporting { try SQLiteStore(path: configuration.store) }
        print("created \(self.directory): ca.pem (give it to agents), ca-key.pem (keep offline), hub.pem, hub-key.pem, hub.yaml, alerts.example.yaml, feedback.sqlite")
        print("next: feedback-hub serve --config \(configPath)")
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Runs the hub until SIGTERM or SIGINT, then drains and exits.")

    @OptionGroup var config: ConfigOption

    @Option(help: "Overrides the protocol listener, HOST:PORT.")
    var listen: String?

    @Option(help: "Overrides the operations HTTP listener, HOST:PORT.")
    var http: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func run() async throws {
        var configuration = try self.config.load()
        if let listen { configuration.listen = listen }
        if let http { configuration.http = http }
        try reporting { try configuration.validate(path: self.config.config) }
        guard let level = Logger.Level(rawValue: self.logLevel) else {
            throw CLIError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
        LoggingSystem.bootstrap { TerminalSafeLogHandler.standardError(label: $0, level: level) }
        let logger = Logger(label: "feedback-hub")
        // Connections on every listener count against it; the hub warns if its caps exceed it.
        OpenFileLimit.raiseToHardLimit()
        let hub = try reporting { try Hub(configuration: configuration, logger: logger) }
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: try hub.application())],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
    }
}

struct Agents: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manages the registry of agent and relay keys.",
        subcommands: [Add.self, List.self, Revoke.self, Token.self, Sites.self]
    )

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Registers a node's public key.")
        @OptionGroup var config: ConfigOption
        @Option(help: "The node id (from `feedback-agent keygen`).") var nodeId: String
        @Option(help: "The node's public key, base64 of 32 bytes.") var publicKey: String
        @OptionGroup var sites: SiteOptions
        @Flag(help: "Register a relay, which may forward other agents' batches.") var relay = false

        func run() throws {
            guard let nodeID = UUID(uuidString: self.nodeId) else { throw CLIError("--node-id is not a UUID") }
            guard let raw = Data(base64Encoded: self.publicKey), raw.count == 32,
                let key = try? RegisteredNode.keyID(ofPublicKey: raw)
            else {
                throw CLIError("--public-key is not the base64 of a 32-byte Ed25519 public key")
            }
            let store = try self.config.openStore()
            try reporting {
                try store.addNode(
                    RegisteredNode(
                        nodeID: nodeID, publicKey: [UInt8](raw), keyID: key, role: self.relay ? .relay : .agent,
                        sites: try self.sites.scope(), revoked: false, createdAt: Int64(Date().timeIntervalSince1970 * 1000)
                    )
                )
            }
            print("registered \(nodeID) (key \(key))")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Lists registered nodes: role, whether revoked, when last seen, their latest status report, sites."
        )
        @OptionGroup var config: ConfigOption
        @Flag(help: "Print a JSON array instead: one object per node, with its whole latest status report.") var json = false

        func run() throws {
            let store = try self.config.openStore()
            let fleet = try reporting { try store.fleet() }
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            if self.json {
                print(try Self.json(fleet))
                return
            }
            var rows = [
                ["node id", "key id", "role", "status", "last seen", "version", "upstream", "backlog", "oldest", "source errors", "via", "sites"]
            ]
            for entry in fleet {
                let node = entry.node
                // Report fields come from the network: shown escaped, and measured as shown.
                let status = entry.status?.status
                let errors = status.map { status in
                    let failing = status.sources.filter { $0.errors > 0 }.map { "\(TerminalText.escape($0.name)):\($0.errors)" }
                    return failing.isEmpty ? "none" : failing.joined(separator: ",")
                }
                rows.append([
                    "\(node.nodeID)", "\(node.keyID)", node.role == .relay ? "relay" : "agent", node.revoked ? "revoked" : "active",
                    entry.lastSeenAt.map { Self.age(now - $0) + " ago" } ?? "never",
                    status.map { TerminalText.escape($0.version) } ?? "-",
                    status?.upstream.map { TerminalText.escape($0) } ?? "-",
                    status.map { "\($0.backlogRecords)/\($0.backlogBatches)" } ?? "-",
                    status?.oldestPendingAt.map { Self.age(now - $0) } ?? "-",
                    errors ?? "-",
                    entry.status?.via.map { "\($0)" } ?? "-",
                    TerminalText.escape(node.sites.description),
                ])
            }
            for line in textTable(rows) { print(line) }
            print("\(fleet.count) node(s); backlog is records/batches not yet acknowledged upstream, oldest the age of the oldest of them")
        }

        /// `12s`, `5m`, `3h`, `2d`: the largest unit that fits, rounded down.
        static func age(_ milliseconds: Int64) -> String {
            let seconds = max(0, milliseconds) / 1000
            switch seconds {
            case ..<60: return "\(seconds)s"
            case ..<3_600: return "\(seconds / 60)m"
            case ..<172_800: return "\(seconds / 3_600)h"
            default: return "\(seconds / 86_400)d"
            }
        }

        static func json(_ fleet: [FleetNode]) throws -> String {
            let nodes: [[String: Any]] = fleet.map { entry in
                let node = entry.node
                var object: [String: Any] = [
                    "nodeId": node.nodeID.uuidString.lowercased(), "keyId": "\(node.keyID)", "role": node.role == .relay ? "relay" : "agent",
                    "revoked": node.revoked, "sites": node.sites.patterns,
                ]
                if let seen = entry.lastSeenAt { object["lastSeenAt"] = seen }
                if let kept = entry.status {
                    // The report as the node signed it; unknown keys of later versions included.
                    object["status"] = (try? JSONSerialization.jsonObject(with: Data(kept.body.utf8))) ?? kept.body
                    object["statusSentAt"] = kept.sentAt
                    object["statusReceivedAt"] = kept.receivedAt
                    if let via = kept.via { object["via"] = via.uuidString.lowercased() }
                }
                return object
            }
            let data = try JSONSerialization.data(withJSONObject: nodes, options: [.sortedKeys, .prettyPrinted])
            return String(decoding: data, as: UTF8.self)
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revokes a node's key: it is refused at its next HELLO and its batches are refused within a second."
        )
        @OptionGroup var config: ConfigOption
        @Argument(help: "The node id.") var nodeId: String

        func run() throws {
            guard let nodeID = UUID(uuidString: self.nodeId) else { throw CLIError("\(self.nodeId) is not a UUID") }
            let store = try self.config.openStore()
            guard try store.revokeNode(nodeID, at: Int64(Date().timeIntervalSince1970 * 1000)) else {
                throw CLIError("node \(nodeID) is not registered")
            }
            print("revoked \(nodeID)")
        }
    }

    struct Sites: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Replaces the sites a node may report for; a running hub applies it within a second."
        )
        @OptionGroup var config: ConfigOption
        @Argument(help: "The node id.") var nodeId: String
        @OptionGroup var sites: SiteOptions

        func run() throws {
            guard let nodeID = UUID(uuidString: self.nodeId) else { throw CLIError("\(self.nodeId) is not a UUID") }
            let scope = try self.sites.scope()
            let store = try self.config.openStore()
            guard try store.setSites(scope, of: nodeID) else { throw CLIError("node \(nodeID) is not registered") }
            print("node \(nodeID) may report for: \(scope)")
        }
    }

    struct Token: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Creates one-time enrollment tokens; an agent redeems one with `feedback-agent enroll`."
        )
        @OptionGroup var config: ConfigOption
        @OptionGroup var sites: SiteOptions
        @Option(help: "How many tokens to make, 1–10000.") var count = 1
        @Option(help: "Hours until the tokens expire, 1–8760 (a year).") var ttlHours = 72
        @Flag(help: "The token enrolls a relay.") var relay = false

        func validate() throws {
            try RangeError.check(self.count, 1...10_000, "--count")
            try RangeError.check(self.ttlHours, 1...8_760, "--ttl-hours")
        }

        func run() throws {
            let sites = try self.sites.scope()
            let store = try self.config.openStore()
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            for _ in 0..<self.count {
                let token = EnrollmentToken.generate()
                try store.addEnrollmentToken(
                    hash: NodeRegistry.tokenHash(token), sites: sites, role: self.relay ? .relay : .agent,
                    createdAt: now, expiresAt: now + Int64(self.ttlHours) * 3_600_000
                )
                print(token)
            }
        }
    }
}

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Prints what the store holds: ratings, negatives and NPS per site, and the batches received."
    )

    @OptionGroup var config: ConfigOption

    func run() throws {
        let store = try self.config.openStore()
        let sites = try reporting { try store.siteSummaries() }
        let batches = try reporting { try store.batchCount() }
        let total = sites.reduce(0) { $0 + $1.responses }
        print("\(total) ratings stored from \(batches) batches")
        guard !sites.isEmpty else { return }
        // Sites are stored text: shown escaped, and measured as shown.
        let names = sites.map { $0.site.isEmpty ? "(none)" : TerminalText.escape($0.site) }
        var rows = [["site", "ratings", "negative", "NPS"]]
        for (site, name) in zip(sites, names) {
            let nps = site.nps.map { String(format: "%+.0f (%d answers)", $0, site.npsResponses) } ?? "-"
            rows.append([name, String(site.responses), String(site.negatives), nps])
        }
        for line in textTable(rows) { print(line) }
    }
}


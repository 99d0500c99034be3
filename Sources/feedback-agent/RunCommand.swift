import Agent
import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import ServiceLifecycle
import Support
import Wire

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Runs the agent: spool, batching, forwarding and the local HTTP intake, until SIGTERM or SIGINT."
    )

    @Option(name: .shortAndLong, help: "The agent configuration file (docs/AGENT.md).")
    var config = "agent.yaml"

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    func run() async throws {
        guard let level = Logger.Level(rawValue: self.logLevel) else {
            throw CLIError("--log-level must be one of trace, debug, info, notice, warning, error, critical; got '\(self.logLevel)'")
        }
        let file: AgentConfigurationFile
        let configuration: FeedbackAgent.Configuration
        do {
            file = try AgentConfigurationFile.load(from: self.config)
            configuration = try file.agentConfiguration(path: self.config)
        } catch let error as AgentConfigurationError {
            throw CLIError(error.description)
        }
        LoggingSystem.bootstrap { TerminalSafeLogHandler.standardError(label: $0, level: level) }
        let logger = Logger(label: "feedback-agent")
        let agent: FeedbackAgent
        do {
            agent = try FeedbackAgent(configuration: configuration, logger: logger)
        } catch let error as SpoolError {
            throw CLIError(error.description)
        }
        var services: [any Service] = [agent]
        if let http = file.http {
            var intake = HTTPIntake.Configuration(listen: try HubAddress(parsing: http.listen))
            intake.corsOrigins = Set(http.corsOrigins)
            intake.hosts = Set(http.hosts)
            intake.maxBodyBytes = http.maxBodyBytes
            intake.limits = http.limits
            do {
                intake.access = try http.access()
            } catch {
                throw CLIError("configuration file \(self.config) \(error)")
            }
            intake.perAddress = (http.ratePerAddress, http.addressBurst)
            intake.trustedProxies = Set(http.trustedProxies.compactMap(HTTPIntake.canonicalIP))
            if http.idempotencyHours > 0 {
                do {
                    intake.idempotency = try IdempotencyMemory(
                        path: file.spool.directory + "/idempotency.log", window: .seconds(http.idempotencyHours * 3_600)
                    )
                } catch let error as SpoolError {
                    throw CLIError(error.description)
                }
            }
            if http.onePerCustomerDays > 0 {
                do {
                    intake.responseLimiter = try ResponseLimiter(
                        path: file.spool.directory + "/responses.log", window: .seconds(http.onePerCustomerDays * 86_400)
                    )
                } catch let error as SpoolError {
                    throw CLIError(error.description)
                }
            }
            services.append(
                HTTPIntake(agent: agent, configuration: intake, logger: logger).application { port in
                    logger.info("http intake listening", metadata: ["port": "\(port)"])
                }
            )
        }
        let group = ServiceGroup(
            configuration: .init(
                services: services.map { .init(service: $0) },
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        logger.info("agent starting", metadata: ["node": "\(configuration.identity.nodeID)", "hubs": "\(file.hubs.joined(separator: ","))"])
        try await group.run()
    }
}

struct Enroll: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Registers this agent's key with a hub by redeeming a one-time token (`feedback-hub agents token`)."
    )

    @Option(help: "The agent identity file made by keygen.")
    var identity = "agent.json"

    @Option(help: "The hub, HOST:PORT.")
    var hub: String

    @Option(help: "The hub's CA certificate (PEM).")
    var ca: String

    @Option(help: "A file holding the one-time enrollment token (`feedback-hub agents token > FILE`); - reads it from standard input.")
    var tokenFile: String?

    @Option(help: "The one-time enrollment token. Every user of the machine sees it in ps: prefer --token-file.")
    var token: String?

    func validate() throws {
        switch (self.tokenFile, self.token) {
        case (nil, nil): throw CLIError("give the one-time token with --token-file FILE (or - for standard input)")
        case (_?, _?): throw CLIError("give the token with --token-file or --token, not both")
        default: break
        }
    }

    /// The token from --token or the file; a token is one short line.
    private func enrollmentToken() throws -> String {
        if let token = self.token { return token }
        let path = self.tokenFile ?? "-"
        let name = path == "-" ? "- (standard input)" : path
        let read: [UInt8]?
        do {
            read = try BoundedFile.read(path, maxBytes: 4_096)
        } catch {
            throw CLIError("cannot read the token file \(path == "-" ? name : path): \(error.cause)")
        }
        guard let data = read else { throw CLIError("the token file \(name) is larger than 4 KiB; it should hold one token") }
        let token = String(decoding: data, as: UTF8.self).trimmingWhitespace()
        guard !token.isEmpty else { throw CLIError("the token file \(name) holds no token") }
        guard !token.contains(where: \.isWhitespace) else { throw CLIError("the token file \(name) should hold one token on one line") }
        return token
    }

    @Option(help: "The client certificate (PEM) for a hub that requires mutual TLS (`feedback-hub certs client`).")
    var clientCertificate: String?

    @Option(help: "The client certificate's private key (PEM).")
    var clientKey: String?

    func run() async throws {
        let clientCertificate: HubConnection.ClientCertificate?
        switch (self.clientCertificate, self.clientKey) {
        case (nil, nil): clientCertificate = nil
        case (let certificate?, let key?): clientCertificate = HubConnection.ClientCertificate(certificate: certificate, privateKey: key)
        case (nil, _?), (_?, nil): throw CLIError("--client-certificate and --client-key go together: give both or neither")
        }
        let address: HubAddress
        let identity: AgentIdentity
        do {
            address = try HubAddress(parsing: self.hub)
            identity = try AgentIdentity.load(from: self.identity)
        } catch let error as HubAddressError {
            throw CLIError("--hub: \(error.description)")
        } catch let error as AgentIdentityError {
            throw CLIError(error.description)
        }
        let token = try self.enrollmentToken()
        do {
            let connection = try await HubConnection.connect(
                host: address.host, port: address.port,
                tls: try HubConnection.tlsContext(trusting: self.ca, clientCertificate: clientCertificate), identity: identity,
                enrollmentToken: token
            )
            await connection.close()
        } catch let error as FileError {
            throw CLIError(error.description)
        } catch let error as ConnectionError {
            throw CLIError("enrollment failed: \(error.description)")
        }
        print("enrolled \(identity.nodeID) (key \(identity.keyID)) with \(address)")
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Shows a running agent's spool depth, oldest pending rating and connected hub (from its HTTP intake)."
    )

    @Option(name: .shortAndLong, help: "The agent configuration file; its http.listen is asked.")
    var config = "agent.yaml"

    func run() async throws {
        let file: AgentConfigurationFile
        do {
            file = try AgentConfigurationFile.load(from: self.config)
        } catch let error as AgentConfigurationError {
            throw CLIError(error.description)
        }
        guard let http = file.http, let address = try? HubAddress(parsing: http.listen) else {
            throw CLIError("status asks the running agent over HTTP; set http.listen in \(self.config)")
        }
        let host = address.host == "0.0.0.0" ? "127.0.0.1" : address.host
        let url = "http://\(host.contains(":") ? "[\(host)]" : host):\(address.port)/status"
        let data: [UInt8]
        do {
            data = try await StatusClient.get(host: host, port: address.port, path: "/status")
        } catch {
            throw CLIError("the agent at \(url) does not answer (is `feedback-agent run` running?): \(error)")
        }
        guard let object = try? JSONDecoder().decode(AgentStatusReply.self, from: Data(data)) else {
            throw CLIError("the agent at \(url) answered something that is not its status")
        }
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let oldest = object.oldestPendingCapturedAt.map { "\(Double(now - $0) / 1000) s ago" } ?? "none"
        // The answer comes over the network: its text is shown escaped.
        print("connected hub:        \(TerminalText.escape(object.connectedHub ?? "none"))")
        if let error = object.lastConnectionError {
            print("last connect error:   \(TerminalText.escape(error))")
        }
        print("unsealed records:     \(object.unsealedRecords ?? 0)")
        print("unacknowledged:       \(object.unacknowledgedRecords ?? 0) records in \(object.unacknowledgedBatches ?? 0) batches")
        print("oldest pending:       \(oldest)")
        print("spool bytes:          \(object.spoolBytes ?? 0)")
        print("acknowledged batches: \(object.batchesAcknowledged ?? 0) (dead letters: \(object.batchesDeadLettered ?? 0))")
    }
}

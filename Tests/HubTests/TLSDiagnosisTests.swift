import Agent
import Foundation
import Hub
import Logging
import NIOConcurrencyHelpers
import TestSupport
import Testing
import Wire

/// Real TLS handshakes against certificates made to fail one check each: the agent says
/// which check failed and what to do. And the hub's own certificate expiry: logged at
/// start, warned about within 30 days, exported as a metric.
@Suite(.serialized) struct TLSDiagnosisTests {
    static let agentBinary = CrashTests.root.appendingPathComponent(".build/debug/feedback-agent").path

    /// Whole seconds: certificates keep no fractions, and messages print seconds.
    static func date(_ offset: TimeInterval) -> Date {
        Date(timeIntervalSince1970: (Date().timeIntervalSince1970 + offset).rounded(.down))
    }

    /// A hub folder with a fresh CA (`ca.pem`, `ca-key.pem`) and a server certificate made
    /// for the test (`hub.pem`, `hub-key.pem`).
    static func hubFolder(names: [String] = ["localhost", "127.0.0.1"], from: Date, until: Date) throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("hub-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let files = try HubCertificates.make(hostnames: ["unused"])
        try files.caCertificate.write(to: folder.appendingPathComponent("ca.pem"), atomically: true, encoding: .utf8)
        try files.caPrivateKey.write(to: folder.appendingPathComponent("ca-key.pem"), atomically: true, encoding: .utf8)
        let authority = try CertificateAuthority.load(
            certificate: folder.appendingPathComponent("ca.pem").path, privateKey: folder.appendingPathComponent("ca-key.pem").path
        )
        let server = try authority.issue(.server(hostnames: names), notValidBefore: from, notValidAfter: until)
        try server.certificate.write(to: folder.appendingPathComponent("hub.pem"), atomically: true, encoding: .utf8)
        try server.privateKey.write(to: folder.appendingPathComponent("hub-key.pem"), atomically: true, encoding: .utf8)
        return folder
    }

    /// Connects as a stock agent would and returns the check and the message it reports.
    private func refusal(
        _ hub: HubHarness, host: String = "127.0.0.1", ca: String? = nil, clientCertificate: HubConnection.ClientCertificate? = nil
    ) async throws -> (check: TLSFailure.Check?, message: String) {
        do {
            let connection = try await HubConnection.connect(
                host: host, port: hub.port,
                tls: try HubConnection.tlsContext(trusting: ca ?? hub.caPath, clientCertificate: clientCertificate),
                identity: AgentIdentity.generate()
            )
            await connection.close()
            Issue.record("the handshake succeeded")
            return (nil, "")
        } catch let error as ConnectionError {
            return (error.tls?.check, error.description)
        }
    }

    @Test func anExpiredHubCertificateIsReportedWithItsDate() async throws {
        let until = Self.date(-86_400)
        let hub = try await HubHarness.start(folder: try Self.hubFolder(from: Self.date(-30 * 86_400), until: until))
        let (check, message) = try await self.refusal(hub)
        #expect(check == .hubExpired)
        #expect(message.contains("expired"), "\(message)")
        #expect(message.contains(until.formatted(.iso8601)), "\(message)")
        #expect(message.contains("renew"), "says what to do: \(message)")
        try await hub.stopAndRemove()
    }

    @Test func aHubCertificateNotYetValidIsReportedWithItsDateAndTheClock() async throws {
        let from = Self.date(2 * 86_400)
        let hub = try await HubHarness.start(folder: try Self.hubFolder(from: from, until: Self.date(30 * 86_400)))
        let (check, message) = try await self.refusal(hub)
        #expect(check == .hubNotYetValid)
        #expect(message.contains("not valid before \(from.formatted(.iso8601))"), "\(message)")
        #expect(message.contains("clock"), "says what to check: \(message)")
        try await hub.stopAndRemove()
    }

    @Test func aHubCertificateForAnotherNameIsReportedWithTheNamesItHolds() async throws {
        let hub = try await HubHarness.start(
            folder: try Self.hubFolder(names: ["hub.example.net", "10.9.8.7"], from: Self.date(-3_600), until: Self.date(86_400))
        )
        for host in ["localhost", "127.0.0.1"] {
            let (check, message) = try await self.refusal(hub, host: host)
            #expect(check == .hubName)
            #expect(message.contains("name"), "\(message)")
            #expect(message.contains(host), "\(message)")
            #expect(message.contains("hub.example.net") && message.contains("10.9.8.7"), "names what the certificate holds: \(message)")
            #expect(message.contains("--hostname"), "says what to do: \(message)")
        }
        try await hub.stopAndRemove()
    }

    @Test func aHubCertificateFromAnotherCAIsReportedAsNotSignedByTheTrustedCA() async throws {
        let hub = try await HubHarness.start()
        let otherCA = hub.folder.appendingPathComponent("other-ca.pem").path
        try HubCertificates.make(hostnames: ["localhost"]).caCertificate.write(toFile: otherCA, atomically: true, encoding: .utf8)
        let (check, message) = try await self.refusal(hub, ca: otherCA)
        #expect(check == .hubUnknownCA)
        #expect(message.contains("not signed by"), "\(message)")
        #expect(message.contains("CA"), "\(message)")
        try await hub.stopAndRemove()
    }

    @Test func aHubRefusingTheClientCertificateIsReportedWithTheCheck() async throws {
        let hub = try await HubHarness.start(adjust: { configuration in
            configuration.tls.clientCA = URL(fileURLWithPath: configuration.tls.certificate).deletingLastPathComponent()
                .appendingPathComponent("ca.pem").path
        })
        let none = try await self.refusal(hub)
        #expect(none.check == .clientCertificateRequired)
        #expect(none.message.contains("requires a client certificate"), "\(none)")

        func client(_ caFolder: URL, from: Date, until: Date, name: String) throws -> HubConnection.ClientCertificate {
            let authority = try CertificateAuthority.load(
                certificate: caFolder.appendingPathComponent("ca.pem").path, privateKey: caFolder.appendingPathComponent("ca-key.pem").path
            )
            let issued = try authority.issue(.client(nodeID: UUID()), notValidBefore: from, notValidAfter: until)
            let files = HubConnection.ClientCertificate(
                certificate: hub.folder.appendingPathComponent("\(name).pem").path, privateKey: hub.folder.appendingPathComponent("\(name)-key.pem").path
            )
            try issued.certificate.write(toFile: files.certificate, atomically: true, encoding: .utf8)
            try issued.privateKey.write(toFile: files.privateKey, atomically: true, encoding: .utf8)
            return files
        }
        let otherCA = hub.folder.appendingPathComponent("other")
        try FileManager.default.createDirectory(at: otherCA, withIntermediateDirectories: true)
        let other = try HubCertificates.make(hostnames: ["localhost"])
        try other.caCertificate.write(to: otherCA.appendingPathComponent("ca.pem"), atomically: true, encoding: .utf8)
        try other.caPrivateKey.write(to: otherCA.appendingPathComponent("ca-key.pem"), atomically: true, encoding: .utf8)
        let foreign = try await self.refusal(hub, clientCertificate: try client(otherCA, from: Self.date(-3_600), until: Self.date(86_400), name: "foreign"))
        #expect(foreign.check == .clientCertificateUnknownCA)
        #expect(foreign.message.contains("client certificate") && foreign.message.contains("not signed by"), "\(foreign)")

        let until = Self.date(-60)
        let expired = try await self.refusal(hub, clientCertificate: try client(hub.folder, from: Self.date(-86_400), until: until, name: "expired"))
        #expect(expired.check == .clientCertificateExpired)
        #expect(expired.message.contains("client certificate") && expired.message.contains("expired"), "\(expired)")
        #expect(expired.message.contains(until.formatted(.iso8601)), "\(expired)")
        try await hub.stopAndRemove()
    }

    @Test func enrollRunAndStatusNameTheFailedCheck() async throws {
        let until = Self.date(-86_400)
        let hub = try await HubHarness.start(folder: try Self.hubFolder(from: Self.date(-30 * 86_400), until: until))
        let (folder, _) = try hub.agentFolder("agent")

        let enroll = try await runToEnd(
            Self.agentBinary,
            ["enroll", "--identity", folder + "/agent.json", "--hub", "127.0.0.1:\(hub.port)", "--ca", hub.caPath, "--token", "fmt_unused"]
        )
        #expect(enroll.status != 0)
        #expect(enroll.output.contains("expired") && enroll.output.contains(until.formatted(.iso8601)), "\(enroll.output)")

        let httpPort = try CrashTests.freePort()
        try """
            identity: agent.json
            hubs: ["127.0.0.1:\(hub.port)"]
            ca: \(hub.caPath)
            spool: {directory: spool}
            http: {listen: "127.0.0.1:\(httpPort)"}
            """.write(toFile: folder + "/agent.yaml", atomically: true, encoding: .utf8)
        let log = folder + "/agent.log"
        let agent = try launch(Self.agentBinary, ["run", "--config", folder + "/agent.yaml"], log: log)
        defer { if agent.isRunning { kill(agent.processIdentifier, SIGKILL) } }
        let logged = await eventually {
            ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("expired on \(until.formatted(.iso8601))")
        }
        #expect(logged, "the agent's log names the check: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        var status = ""
        for _ in 0..<100 {
            status = try await runToEnd(Self.agentBinary, ["status", "--config", folder + "/agent.yaml"]).output
            if status.contains("connected hub") { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(status.contains("expired on \(until.formatted(.iso8601))"), "\(status)")
        kill(agent.processIdentifier, SIGTERM)
        await waitForExit(agent)
        try await hub.stopAndRemove()
    }

    @Test func theHubWarnsAboutACertificateExpiringWithin30DaysAndExportsItsExpiry() async throws {
        for (days, warns) in [(10.0, true), (400.0, false)] {
            let until = Self.date(days * 86_400)
            let folder = try Self.hubFolder(from: Self.date(-86_400), until: until)
            var configuration = HubConfiguration(
                hubID: UUID(),
                tls: .init(certificate: folder.appendingPathComponent("hub.pem").path, privateKey: folder.appendingPathComponent("hub-key.pem").path)
            )
            configuration.store = folder.appendingPathComponent("feedback.sqlite").path
            let capture = LogCapture()
            let hub = try Hub(configuration: configuration, logger: Logger(label: "test-hub") { _ in capture })
            let metrics = String(decoding: hub.prometheus.emitToBuffer(), as: UTF8.self)
            let line = metrics.split(separator: "\n").first { $0.hasPrefix("feedback_hub_tls_certificate_expiry_timestamp_seconds ") }
            let value = line.flatMap { Double($0.split(separator: " ").last ?? "") }
            #expect(value == until.timeIntervalSince1970, "\(metrics)")
            let entries = capture.entries
            let warning = entries.first { $0.level == .warning && $0.metadata.contains(until.formatted(.iso8601)) }
            #expect((warning != nil) == warns, "\(days) days: \(entries)")
            #expect(entries.contains { $0.metadata.contains(until.formatted(.iso8601)) }, "the expiry is logged at start: \(entries)")
            try? FileManager.default.removeItem(at: folder)
        }
    }
}

/// Keeps what is logged, for tests that assert on a log line.
final class LogCapture: LogHandler, Sendable {
    struct Entry: Sendable, CustomStringConvertible {
        var level: Logger.Level
        var message: String
        var metadata: String
        var description: String { "[\(self.level)] \(self.message) \(self.metadata)" }
    }

    private let box = NIOLockedValueBox<[Entry]>([])
    var entries: [Entry] { self.box.withLockedValue { $0 } }

    var logLevel: Logger.Level {
        get { .trace }
        set {}
    }

    var metadata: Logger.Metadata {
        get { [:] }
        set {}
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { nil }
        set {}
    }

    func log(event: LogEvent) {
        let metadata = (event.metadata ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        self.box.withLockedValue { $0.append(Entry(level: event.level, message: "\(event.message)", metadata: metadata)) }
    }
}

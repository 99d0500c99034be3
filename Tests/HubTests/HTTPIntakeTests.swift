import Agent
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Hub
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle
import TestSupport
import Testing
import Wire

/// The agent's HTTP intake over real HTTP on loopback, with a real hub behind it.
@Suite(.serialized) struct HTTPIntakeTests {
    struct Intake {
        let agent: FeedbackAgent
        let group: ServiceGroup
        let task: Task<Void, any Error>
        let base: String
        let folder: String

        static func start(
            hub: HubHarness, quotaBytes: Int = 1 << 30, maxBodyBytes: Int = 4_096, onePerCustomerDays: Int = 0,
            sites: SiteScope = .any, sources: [SourceConfiguration] = [], hosts: Set<String> = [],
            configure: (_ settings: inout HTTPIntake.Configuration, _ folder: String) throws -> Void = { _, _ in }
        ) async throws -> Intake {
            let identity = AgentIdentity.generate()
            try hub.register(identity, sites: sites)
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("intake-\(UUID())").path
            var configuration = FeedbackAgent.Configuration(
                identity: identity, hubs: [HubAddress(host: "127.0.0.1", port: hub.port)],
                tls: try HubConnection.tlsContext(trusting: hub.caPath), spoolDirectory: folder
            )
            configuration.spool.quotaBytes = quotaBytes
            configuration.drainTimeout = .milliseconds(500)
            configuration.batching.maxAge = .milliseconds(20)
            configuration.sites = sites
            configuration.sources = sources
            var logger = Logger(label: "test-intake")
            logger.logLevel = .critical
            let agent = try FeedbackAgent(configuration: configuration, logger: logger)
            var settings = HTTPIntake.Configuration(listen: HubAddress(host: "127.0.0.1", port: 0))
            settings.corsOrigins = ["https://shop.example.com"]
            settings.hosts = hosts
            settings.maxBodyBytes = maxBodyBytes
            if onePerCustomerDays > 0 {
                settings.responseLimiter = try ResponseLimiter(
                    path: folder + "/responses.log", window: .seconds(onePerCustomerDays * 86_400)
                )
            }
            try configure(&settings, folder)
            let bound = PortBox()
            let http = HTTPIntake(agent: agent, configuration: settings, logger: logger).application { bound.set($0) }
            let group = ServiceGroup(configuration: .init(services: [agent, http], logger: logger))
            let task = Task { try await group.run() }
            #expect(await eventually { bound.get() != 0 })
            return Intake(agent: agent, group: group, task: task, base: "http://127.0.0.1:\(bound.get())", folder: folder)
        }

        func stop() async throws {
            await self.group.triggerGracefulShutdown()
            try await self.task.value
            try? FileManager.default.removeItem(atPath: self.folder)
        }

        func request(
            _ method: String, _ path: String, body: String? = nil, headers: [String: String] = [:]
        ) async throws -> (status: Int, json: [String: Any], headers: [AnyHashable: Any]) {
            var request = URLRequest(url: URL(string: self.base + path)!)
            request.httpMethod = method
            request.httpBody = body.map { Data($0.utf8) }
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
            let (data, response) = try await URLSession.shared.data(for: request)
            let http = try #require(response as? HTTPURLResponse)
            let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
            return (http.statusCode, json, http.allHeaderFields)
        }
    }

    private func errorCode(_ json: [String: Any]) -> String? { (json["error"] as? [String: Any])?["code"] as? String }
    private func errorField(_ json: [String: Any]) -> String? { (json["error"] as? [String: Any])?["field"] as? String }

    @Test func goodRatingsAreAcceptedAndReachTheHub() async throws {
        let hub = try await HubHarness.start()
        let intake = try await Intake.start(hub: hub)
        let one = try await intake.request("POST", "/v1/feedback", body: #"{"source":"popup","scale":"nps","score":3,"site":"web-eu","customer":"c-1"}"#)
        #expect(one.status == 202)
        #expect(one.json["accepted"] as? Int == 1)
        let many = try await intake.request(
            "POST", "/v1/feedback",
            body: #"[{"source":"kiosk","scale":"smiley","score":1},{"source":"kiosk","scale":"smiley","score":4}]"#
        )
        #expect(many.status == 202)
        #expect((many.json["ids"] as? [String])?.count == 2)
        #expect(await intake.agent.flush(timeout: .seconds(20)))
        #expect(try hub.recordCount == 3)
        try await intake.stop()
        try await hub.stopAndRemove()
    }

    @Test func eachBadRequestGetsItsStatusAndAClearMessage() async throws {
        let hub = try await HubHarness.start()
        let intake = try await Intake.start(hub: hub)

        let notJSON = try await intake.request("POST", "/v1/feedback", body: "{score: 3")
        #expect(notJSON.status == 400)
        #expect(self.errorCode(notJSON.json) == "invalidJSON")

        let missing = try await intake.request("POST", "/v1/feedback", body: #"{"source":"popup","score":3}"#)
        #expect(missing.status == 400)
        #expect(self.errorField(missing.json) == "scale")

        let badScore = try await intake.request(
            "POST", "/v1/feedback", body: #"[{"source":"popup","scale":"nps","score":7},{"source":"popup","scale":"nps","score":11}]"#
        )
        #expect(badScore.status == 400)
        #expect(self.errorCode(badScore.json) == "invalidRecord")
        #expect(self.errorField(badScore.json) == "score")
        #expect(((badScore.json["error"] as? [String: Any])?["message"] as? String)?.contains("0–10") == true)

        let empty = try await intake.request("POST", "/v1/feedback", body: "[]")
        #expect(empty.status == 400)

        // A score is an integer literal: 3.0, 1e1 and -0 are refused naming it, not taken as
        // 3, 10 and 0; a number too large for a double names its field, not "invalid JSON".
        for score in ["3.0", "1e1", "-0", "07", "3E0"] {
            let odd = try await intake.request("POST", "/v1/feedback", body: #"{"source":"popup","scale":"nps","score":\#(score)}"#)
            #expect(odd.status == 400 && self.errorCode(odd.json) == "invalidNumber" && self.errorField(odd.json) == "score", "\(score)")
        }
        let inArray = try await intake.request(
            "POST", "/v1/feedback", body: #"[{"source":"popup","scale":"nps","score":7},{"source":"popup","scale":"nps","score":7.5}]"#
        )
        #expect(self.errorCode(inArray.json) == "invalidNumber" && self.errorField(inArray.json) == "score")
        let huge = try await intake.request("POST", "/v1/feedback", body: #"{"source":"popup","scale":"nps","score":3,"occurredAt":1e309}"#)
        #expect(huge.status == 400 && self.errorCode(huge.json) == "invalidNumber" && self.errorField(huge.json) == "occurredAt")

        // Control characters (here ESC, which drives terminals) are refused, naming the field.
        let escape = try await intake.request(
            "POST", "/v1/feedback", body: #"{"source":"popup","scale":"nps","score":3,"site":"web\u001b[2Jeu"}"#
        )
        #expect(escape.status == 400)
        #expect(self.errorCode(escape.json) == "invalidRecord")
        #expect(self.errorField(escape.json) == "site")

        let big = "[" + Array(repeating: #"{"source":"popup","scale":"nps","score":7}"#, count: 200).joined(separator: ",") + "]"
        let tooLarge = try await intake.request("POST", "/v1/feedback", body: big)
        #expect(tooLarge.status == 413)
        #expect(self.errorCode(tooLarge.json) == "tooLarge")

        // Nothing of a refused request was kept.
        #expect(intake.agent.status.submitted == 0)
        // Numbers in texts and ordinary integers are untouched.
        let fine = try await intake.request("POST", "/v1/feedback", body: #"{"source":"popup","scale":"nps","score":0,"comment":"score: 3.0"}"#)
        #expect(fine.status == 202 && intake.agent.status.submitted == 1)
        try await intake.stop()
        try await hub.stopAndRemove()
    }

    @Test func aFullSpoolAnswers503() async throws {
        let hub = try await HubHarness.start()
        try await hub.stop()  // nothing drains the spool
        let intake = try await Intake.start(hub: hub, quotaBytes: 1_000)
        var statuses: [Int] = []
        for _ in 0..<20 {
            statuses.append(try await intake.request("POST", "/v1/feedback", body: #"{"source":"kiosk","scale":"smiley","score":2}"#).status)
        }
        #expect(statuses.first == 202)
        #expect(statuses.last == 503)
        let full = try await intake.request("POST", "/v1/feedback", body: #"{"source":"kiosk","scale":"smiley","score":2}"#)
        #expect(self.errorCode(full.json) == "spoolFull")
        try await intake.stop()
        try? FileManager.default.removeItem(at: hub.folder)
    }

    @Test func browsersFromAllowedOriginsMayPostAndOtherPagesAreRefused() async throws {
        let hub = try await HubHarness.start()
        let intake = try await Intake.start(hub: hub, hosts: ["feedback.shop.example.com"])
        let preflight = try await intake.request(
            "OPTIONS", "/v1/feedback", headers: ["Origin": "https://shop.example.com", "Access-Control-Request-Method": "POST"]
        )
        #expect(preflight.status == 204)
        #expect(preflight.headers["Access-Control-Allow-Origin"] as? String == "https://shop.example.com")
        // A foreign page's "simple" POST (text/plain, no preflight) is refused on the request
        // itself, not only hidden from the page: nothing is stored.
        let other = try await intake.request(
            "POST", "/v1/feedback", body: #"{"source":"popup","scale":"nps","score":9}"#,
            headers: ["Origin": "https://evil.example", "Content-Type": "text/plain"]
        )
        #expect(other.status == 403 && self.errorCode(other.json) == "foreignOrigin" && other.headers["Access-Control-Allow-Origin"] == nil)
        #expect(try await intake.request("POST", "/v1/feedback", body: "{}", headers: ["Origin": "null"]).status == 403, "a sandboxed page")
        #expect(intake.agent.status.submitted == 0)
        let allowed = try await intake.request(
            "POST", "/v1/feedback", body: #"{"source":"popup","scale":"nps","score":9}"#, headers: ["Origin": "https://shop.example.com"]
        )
        #expect(allowed.status == 202 && allowed.headers["Access-Control-Allow-Origin"] as? String == "https://shop.example.com")
        #expect(try await intake.request("POST", "/v1/feedback", body: #"{"source":"api","scale":"nps","score":7}"#).status == 202, "a backend sends no Origin")

        // DNS rebinding: a page whose name now points at the agent names itself in Host.
        let port = try #require(URL(string: intake.base)?.port)
        func status(_ host: String) async throws -> String {
            try await CLIRun.run(
                "/usr/bin/curl",
                ["-sS", "--max-time", "20", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: \(host)", "-H", "Content-Type: application/json",
                 "-d", #"{"source":"api","scale":"nps","score":7}"#, "http://127.0.0.1:\(port)/v1/feedback"]
            ).output
        }
        for host in ["attacker.example:\(port)", "feedback.shop.example.com.attacker.example", "[::1]evil"] {
            #expect(try await status(host) == "403", "\(host)")
        }
        for host in ["127.0.0.1:\(port)", "localhost", "FEEDBACK.shop.example.com:\(port)", "[::1]:\(port)"] {
            #expect(try await status(host) == "202", "\(host)")
        }
        #expect(intake.agent.status.submitted == 6)
        let metrics = try await intake.request("GET", "/healthz")
        #expect(metrics.status == 200)
        try await intake.stop()
        try await hub.stopAndRemove()
    }

    @Test func aCustomersSecondAnswerToASurveyIsRefusedWith409() async throws {
        let hub = try await HubHarness.start()
        let intake = try await Intake.start(hub: hub, onePerCustomerDays: 30)
        let rating = #"{"source":"popup","scale":"nps","score":2,"customer":"c-7","survey":"nps-q4"}"#
        #expect(try await intake.request("POST", "/v1/feedback", body: rating).status == 202)
        let again = try await intake.request("POST", "/v1/feedback", body: rating)
        #expect(again.status == 409)
        #expect(self.errorCode(again.json) == "alreadyAnswered")
        #expect(self.errorField(again.json) == "customer")
        let otherSurvey = #"{"source":"popup","scale":"nps","score":2,"customer":"c-7","survey":"nps-q1"}"#
        #expect(try await intake.request("POST", "/v1/feedback", body: otherSurvey).status == 202)
        // A refused rating (score off its scale) does not use up the customer's answer.
        let invalid = #"{"source":"popup","scale":"nps","score":12,"customer":"c-8","survey":"nps-q4"}"#
        #expect(try await intake.request("POST", "/v1/feedback", body: invalid).status == 400)
        #expect(try await intake.request("POST", "/v1/feedback", body: #"{"source":"popup","scale":"nps","score":9,"customer":"c-8","survey":"nps-q4"}"#).status == 202)
        #expect(intake.agent.status.submitted == 3)
        try await intake.stop()
        try await hub.stopAndRemove()
    }

    @Test func aRatingForASiteOutsideTheAgentsEnrollmentIsRefusedAtCapture() async throws {
        let hub = try await HubHarness.start()
        let intake = try await Intake.start(hub: hub, sites: try SiteScope(["branch-042"]))
        let inside = try await intake.request("POST", "/v1/feedback", body: #"{"source":"kiosk","scale":"smiley","score":1,"site":"branch-042"}"#)
        #expect(inside.status == 202)
        // Refused here, with the field named, rather than spoiling a batch the hub would refuse whole.
        let outside = try await intake.request(
            "POST", "/v1/feedback",
            body: #"[{"source":"kiosk","scale":"smiley","score":4,"site":"branch-042"},{"source":"popup","scale":"nps","score":2,"site":"web-eu"}]"#
        )
        #expect(outside.status == 400)
        #expect(self.errorCode(outside.json) == "invalidRecord")
        #expect(self.errorField(outside.json) == "site")
        #expect(await intake.agent.flush())
        #expect(try hub.recordCount == 1)
        try await intake.stop()
        try await hub.stopAndRemove()
    }

}

/// The bound port, set from the server's callback.
final class PortBox: Sendable {
    private let value = NIOLockedValueBox(0)
    func set(_ port: Int) { self.value.withLockedValue { $0 = port } }
    func get() -> Int { self.value.withLockedValue { $0 } }}


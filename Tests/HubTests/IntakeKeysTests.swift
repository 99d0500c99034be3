import Agent
import Crypto
import Foundation
import GRDB
import Support
import TestSupport
import Testing
import Wire

/// The HTTP intake's keys, rate limits and idempotency, over real HTTP on loopback with a
/// real hub behind the agent.
@Suite(.serialized) struct IntakeKeysTests {
    typealias Intake = HTTPIntakeTests.Intake

    static let writeKey = "fmw_test-backend-key-0123456789abcdef"
    static let surveyKey = "fms_onboarding-public-key-0123"
    static let app = "https://app.example.com"

    /// A write key for sites `web-*` and survey `checkout`, a survey key for `onboarding` on
    /// `web` from ``app``; `rates` tunes (survey key, per address).
    static func access(surveyRate: (Double, Double) = (50, 200)) -> IntakeAccess {
        let digest = Array(SHA256.hash(data: Array(Self.writeKey.utf8))).hexString
        return IntakeAccess(
            writeKeys: [
                digest: IntakeKey(name: "backend", kind: .write, sites: try! SiteScope(["web-*"]), surveys: ["checkout"], ratePerSecond: 1_000, burst: 1_000)
            ],
            surveyKeys: [
                Self.surveyKey: IntakeKey(
                    name: "onboarding", kind: .survey, sites: try! SiteScope(["web"]), surveys: ["onboarding"], origins: [Self.app],
                    ratePerSecond: surveyRate.0, burst: surveyRate.1
                )
            ]
        )
    }

    private func code(_ json: [String: Any]) -> String? { (json["error"] as? [String: Any])?["code"] as? String }
    private func field(_ json: [String: Any]) -> String? { (json["error"] as? [String: Any])?["field"] as? String }

    @Test func onceKeysAreSetEveryPostNeedsOneAndEachKeySubmitsOnlyWhatItMay() async throws {
        let hub = try await HubHarness.start()
        let intake = try await Intake.start(hub: hub, maxBodyBytes: 1 << 20) { settings, _ in settings.access = Self.access() }
        let rating = #"{"source":"api","scale":"nps","score":2,"site":"web-eu","survey":"checkout"}"#
        let bearer = ["Authorization": "Bearer \(Self.writeKey)"]

        let none = try await intake.request("POST", "/v1/feedback", body: rating)
        #expect(none.status == 401 && self.code(none.json) == "unauthenticated")
        let challenge = none.headers.first { ($0.key as? String)?.lowercased() == "www-authenticate" }?.value as? String
        #expect(challenge?.hasPrefix("Bearer") == true)
        let wrong = try await intake.request("POST", "/v1/feedback", body: rating, headers: ["Authorization": "Bearer fmw_guess"])
        #expect(wrong.status == 401)
        let malformed = try await intake.request("POST", "/v1/feedback", body: rating, headers: ["Authorization": Self.writeKey])
        #expect(malformed.status == 401)

        let backend = try await intake.request("POST", "/v1/feedback", body: rating, headers: bearer)
        #expect(backend.status == 202)
        // A request holds at most a batch's worth of ratings: 10,001 is refused whole.
        let many = "[" + Array(repeating: rating, count: 10_001).joined(separator: ",") + "]"
        let tooMany = try await intake.request("POST", "/v1/feedback", body: many, headers: bearer)
        #expect(tooMany.status == 413 && self.code(tooMany.json) == "tooManyRatings")
        let otherSite = try await intake.request(
            "POST", "/v1/feedback", body: #"{"source":"api","scale":"nps","score":2,"site":"branch-1","survey":"checkout"}"#, headers: bearer
        )
        #expect(otherSite.status == 403 && self.code(otherSite.json) == "outsideKey" && self.field(otherSite.json) == "site")
        let otherSurvey = try await intake.request(
            "POST", "/v1/feedback", body: #"{"source":"api","scale":"nps","score":2,"site":"web-eu","survey":"payroll"}"#, headers: bearer
        )
        #expect(otherSurvey.status == 403 && self.field(otherSurvey.json) == "survey")
        // A write key from a page has leaked: refused even from an allowed origin.
        let leaked = try await intake.request("POST", "/v1/feedback", body: rating, headers: bearer.merging(["Origin": Self.app]) { $1 })
        #expect(leaked.status == 403 && self.code(leaked.json) == "writeKeyInBrowser")

        // The survey key: only from its origins; its survey and site filled in.
        let page = ["Authorization": "Bearer \(Self.surveyKey)", "Origin": Self.app]
        let answer = try await intake.request("POST", "/v1/feedback", body: #"{"source":"popup","scale":"nps","score":3,"comment":"slow"}"#, headers: page)
        #expect(answer.status == 202)
        #expect(answer.headers["Access-Control-Allow-Origin"] as? String == Self.app)
        let noOrigin = try await intake.request("POST", "/v1/feedback", body: #"{"source":"popup","scale":"nps","score":3}"#, headers: ["Authorization": "Bearer \(Self.surveyKey)"])
        #expect(noOrigin.status == 403 && self.code(noOrigin.json) == "foreignOrigin")
        let foreign = try await intake.request(
            "POST", "/v1/feedback", body: #"{"source":"popup","scale":"nps","score":3}"#,
            headers: ["Authorization": "Bearer \(Self.surveyKey)", "Origin": "https://evil.example"]
        )
        #expect(foreign.status == 403 && self.code(foreign.json) == "foreignOrigin")
        let otherSurveyByPage = try await intake.request(
            "POST", "/v1/feedback", body: #"{"source":"popup","scale":"nps","score":3,"survey":"checkout"}"#, headers: page
        )
        #expect(otherSurveyByPage.status == 403 && self.field(otherSurveyByPage.json) == "survey")
        // A public key sets nothing a page has no business setting, and answers one rating at a time.
        for (body, field) in [
            (#"{"source":"popup","scale":"nps","score":3,"id":"0190a5b0-7a1e-7c3d-8e4f-5a6b7c8d9e0f"}"#, "id"),
            (#"{"source":"popup","scale":"nps","score":3,"attributes":{"misuse":"true"}}"#, "attributes"),
            (#"{"source":"popup","scale":"nps","score":3,"occurredAt":1000}"#, "occurredAt"),
            (#"{"source":"kiosk","scale":"nps","score":3}"#, "source"),
        ] {
            let refused = try await intake.request("POST", "/v1/feedback", body: body, headers: page)
            #expect(refused.status == 403 && self.code(refused.json) == "outsideKey" && self.field(refused.json) == field, "\(body)")
        }
        let two = try await intake.request(
            "POST", "/v1/feedback", body: #"[{"source":"popup","scale":"nps","score":3},{"source":"popup","scale":"nps","score":4}]"#, headers: page
        )
        #expect(two.status == 403 && self.code(two.json) == "outsideKey")
        let big = try await intake.request(
            "POST", "/v1/feedback", body: #"{"source":"popup","scale":"nps","score":3,"comment":""# + String(repeating: "x", count: 20_000) + #""}"#, headers: page
        )
        #expect(big.status == 413, "a page's body is one rating's size")

        #expect(await intake.agent.flush(timeout: .seconds(20)))
        let stored = try hub.hub.sqlite.read { db in
            try Row.fetchAll(db, sql: "SELECT site, survey, comment FROM records ORDER BY site").map { "\($0["site"] as String)|\($0["survey"] as String)|\($0["comment"] as String)" }
        }
        #expect(stored == ["web|onboarding|slow", "web-eu|checkout|"], "only the two admitted ratings, the page's with its key's survey and site")
        try await intake.stop()
        try await hub.stopAndRemove()
    }

    @Test func aClientOverItsRateGets429WithRetryAfterAndOthersGoOn() async throws {
        let hub = try await HubHarness.start()
        let intake = try await Intake.start(hub: hub) { settings, _ in
            // Rates far below the test's own pace, so a loaded machine cannot refill them meanwhile
            // (refilling is checked on a clock of its own in IntakeRateLimiterTests).
            settings.access = Self.access(surveyRate: (0.01, 3))
            settings.perAddress = (1_000, 1_000)
        }
        let page = ["Authorization": "Bearer \(Self.surveyKey)", "Origin": Self.app]
        for _ in 0..<3 {
            #expect(try await intake.request("POST", "/v1/feedback", body: #"{"source":"popup","scale":"nps","score":9}"#, headers: page).status == 202)
        }
        let fourth = try await intake.request("POST", "/v1/feedback", body: #"{"source":"popup","scale":"nps","score":9}"#, headers: page)
        #expect(fourth.status == 429 && self.code(fourth.json) == "rateLimited")
        let wait = Int(fourth.headers["Retry-After"] as? String ?? "") ?? 0
        #expect((1...100).contains(wait), "the 0.01/s bucket refills one rating in 100 s: \(wait)")
        // Another key has its own budget.
        let backend = try await intake.request(
            "POST", "/v1/feedback", body: #"{"source":"api","scale":"nps","score":9,"site":"web-1","survey":"checkout"}"#,
            headers: ["Authorization": "Bearer \(Self.writeKey)"]
        )
        #expect(backend.status == 202)
        try await intake.stop()

        // One address is held to its own rate whatever the key allows.
        let perAddress = try await Intake.start(hub: hub) { settings, _ in
            settings.access = Self.access(surveyRate: (1_000, 1_000))
            settings.perAddress = (0.01, 2)
        }
        var statuses: [Int] = []
        for _ in 0..<3 {
            statuses.append(try await perAddress.request("POST", "/v1/feedback", body: #"{"source":"popup","scale":"nps","score":9}"#, headers: page).status)
        }
        #expect(statuses == [202, 202, 429])
        try await perAddress.stop()

        // Behind a trusted proxy, each forwarded client has its own bucket; status is not for them.
        let proxied = try await Intake.start(hub: hub) { settings, _ in
            settings.access = Self.access(surveyRate: (1_000, 1_000))
            settings.perAddress = (0.01, 1)
            settings.trustedProxies = ["127.0.0.1"]
        }
        func via(_ client: String) -> [String: String] { page.merging(["X-Forwarded-For": "198.51.100.1, \(client)"]) { $1 } }
        let body = #"{"source":"popup","scale":"nps","score":9}"#
        #expect(try await proxied.request("POST", "/v1/feedback", body: body, headers: via("203.0.113.7")).status == 202)
        #expect(try await proxied.request("POST", "/v1/feedback", body: body, headers: via("203.0.113.7")).status == 429)
        #expect(try await proxied.request("POST", "/v1/feedback", body: body, headers: via("203.0.113.8")).status == 202, "another customer")
        let outside = try await proxied.request("GET", "/status", headers: ["X-Forwarded-For": "203.0.113.7"])
        #expect(outside.status == 403 && self.code(outside.json) == "localOnly")
        #expect(try await proxied.request("GET", "/metrics", headers: ["X-Forwarded-For": "203.0.113.7"]).status == 403)
        #expect(try await proxied.request("GET", "/status", headers: ["X-Forwarded-For": "203.0.113.7", "Authorization": "Bearer \(Self.writeKey)"]).status == 200)
        #expect(try await proxied.request("GET", "/status").status == 200, "this machine")
        try await proxied.stop()
        try await hub.stopAndRemove()
    }

    @Test func aRetryWithTheSameIdempotencyKeyOrRecordIdsStoresNothingNewAndGetsTheFirstAnswer() async throws {
        let hub = try await HubHarness.start()
        let intake = try await Intake.start(hub: hub) { settings, folder in
            settings.idempotency = try IdempotencyMemory(path: folder + "/idempotency.log")
        }
        let body = #"[{"source":"api","scale":"nps","score":1,"site":"web"},{"source":"api","scale":"nps","score":10,"site":"web"}]"#
        let key = ["Idempotency-Key": "order-7731-feedback"]
        let first = try await intake.request("POST", "/v1/feedback", body: body, headers: key)
        #expect(first.status == 202)
        let retry = try await intake.request("POST", "/v1/feedback", body: body, headers: key)
        #expect(retry.status == 202)
        #expect(retry.json["ids"] as? [String] == first.json["ids"] as? [String])
        #expect(retry.headers["Idempotent-Replayed"] as? String == "true")
        #expect(first.headers["Idempotent-Replayed"] == nil)
        let changed = try await intake.request("POST", "/v1/feedback", body: body.replacingOccurrences(of: "10", with: "9"), headers: key)
        #expect(changed.status == 422 && self.code(changed.json) == "idempotencyKeyReused" && self.field(changed.json) == "Idempotency-Key")
        let badKey = try await intake.request("POST", "/v1/feedback", body: body, headers: ["Idempotency-Key": "has space"])
        #expect(badKey.status == 400 && self.code(badKey.json) == "invalidIdempotencyKey")

        // Record ids chosen by the caller: a retry is recognised by them.
        var generator = UUIDv7()
        let id = generator.next(milliseconds: Int64(Date().timeIntervalSince1970 * 1000)).uuidString.lowercased()
        let withID = #"{"id":"\#(id)","source":"api","scale":"csat","score":2,"site":"web"}"#
        let once = try await intake.request("POST", "/v1/feedback", body: withID)
        let twice = try await intake.request("POST", "/v1/feedback", body: withID)
        #expect(once.status == 202 && twice.status == 202)
        #expect(once.json["ids"] as? [String] == [id] && twice.json["ids"] as? [String] == [id])
        #expect(twice.headers["Idempotent-Replayed"] as? String == "true")
        let notV7 = try await intake.request("POST", "/v1/feedback", body: #"{"id":"\#(UUID().uuidString)","source":"api","scale":"csat","score":2}"#)
        #expect(notV7.status == 400 && self.field(notV7.json) == "id")
        let notUUID = try await intake.request("POST", "/v1/feedback", body: #"{"id":"x-1","source":"api","scale":"csat","score":2}"#)
        #expect(notUUID.status == 400 && self.field(notUUID.json) == "id")
        let twiceInOne = try await intake.request("POST", "/v1/feedback", body: "[\(withID),\(withID)]")
        #expect(twiceInOne.status == 400 && self.code(twiceInOne.json) == "duplicateID")

        #expect(await intake.agent.flush(timeout: .seconds(20)))
        #expect(try hub.recordCount == 3, "two ratings once, and the one with its id once")
        try await intake.stop()
        try await hub.stopAndRemove()
    }
}

/// The intake's listener limits against slow and greedy clients.
@Suite(.serialized) struct IntakeListenerTests {
    @Test func aClientThatSendsItsRequestSlowlyIsCutOffAndOneAddressCannotTakeEveryConnection() async throws {
        let hub = try await HubHarness.start()
        let intake = try await HTTPIntakeTests.Intake.start(hub: hub) { settings, _ in
            settings.limits.headerTimeoutMs = 500
            settings.limits.bodyTimeoutMs = 500
            settings.limits.maxConnectionsPerAddress = 4
        }
        let port = try #require(Int(intake.base.split(separator: ":").last ?? ""))
        // Ten connections from one address, each sending a request head that never ends.
        let slow = RawSockets()
        try await offThePool { slow.open(10, from: ["127.0.0.7"], to: port) }
        _ = slow.send(Array("POST /v1/feedback HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 40\r\n".utf8))
        // Those over the address's share are closed at once, the rest at the header deadline.
        #expect(await eventually(seconds: 20) { slow.closedByPeer() == 10 }, "every slow connection closed")
        slow.closeAll()
        // Meanwhile and after, a normal client is served.
        let answer = try await intake.request("POST", "/v1/feedback", body: #"{"source":"api","scale":"nps","score":9}"#)
        #expect(answer.status == 202)
        try await intake.stop()
        try await hub.stopAndRemove()
    }
}

/// `feedback-agent intake-key`: a key printed once, the configuration line that takes it.
@Suite struct IntakeKeyCommandTests {
    @Test func aWriteKeyIsPrintedOnceWithTheHashTheConfigurationKeeps() async throws {
        let run = try await CLIRun.run(CLIRun.agent, ["intake-key", "--name", "shop-backend"], timeout: 30)
        #expect(run.status == 0)
        let key = try #require(run.output.split(separator: "\n").first { $0.hasPrefix("write key: ") }?.dropFirst("write key: ".count))
        #expect(key.hasPrefix("fmw_") && key.count >= 40)
        let digest = Array(SHA256.hash(data: Array(key.utf8))).hexString
        #expect(run.output.contains("sha256: \"\(digest)\""), "the line for agent.yaml holds the key's SHA-256")
        let again = try await CLIRun.run(CLIRun.agent, ["intake-key", "--name", "shop-backend"], timeout: 30)
        #expect(!again.output.contains(String(key)), "a new key each time")

        let survey = try await CLIRun.run(CLIRun.agent, ["intake-key", "--name", "popup", "--survey", "q1", "--site", "web"], timeout: 30)
        #expect(survey.status != 0 && survey.output.contains("--origin"))
        let badOrigin = try await CLIRun.run(
            CLIRun.agent, ["intake-key", "--name", "popup", "--survey", "q1", "--site", "web", "--origin", "app.example.com"], timeout: 30
        )
        #expect(badOrigin.status != 0 && badOrigin.output.contains("scheme://host"))
        let good = try await CLIRun.run(
            CLIRun.agent, ["intake-key", "--name", "popup", "--survey", "q1", "--site", "web", "--origin", "https://app.example.com"], timeout: 30
        )
        #expect(good.status == 0 && good.output.contains("key: \"fms_") && good.output.contains("origins: [\"https://app.example.com\"]"))
    }
}

import Foundation
import Hub
import TestSupport
import Testing
import Wire

/// Who may do what on the operations port: every `/v1` endpoint against every kind of
/// caller, over real HTTP to a real hub, and the attacks the port must refuse.
@Suite struct AccessTests {
    /// Two open alerts (web-eu and branch-042) and a token of each kind.
    struct Fixture {
        let setup: AlertTests.Setup
        let client: OperationsClient
        let webAlert: String
        let branchAlert: String
        let secrets: [String: String]
        let tokens: [String: APIToken]

        static func start(adjust: @escaping (inout HubConfiguration) -> Void = { _ in }) async throws -> Fixture {
            let setup = try await AlertTests.Setup.start(adjust: adjust)
            #expect(setup.isAcknowledged(try await setup.send([setup.record(1, score: 2), setup.record(2, score: 1, site: "branch-042")], sequence: 1)))
            let store = setup.hub.hub.store
            #expect(await eventually { (try? store.alerts(status: .open, site: nil, within: .any, overdueAt: nil, limit: 10).count) == 2 })
            let alerts = try store.alerts(status: .open, site: nil, within: .any, overdueAt: nil, limit: 10)
            let web = try #require(alerts.first { $0.site == "web-eu" }).id.uuidString.lowercased()
            let branch = try #require(alerts.first { $0.site == "branch-042" }).id.uuidString.lowercased()
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            let made: [(String, APIToken.Role, SiteScope, Int64?)] = [
                ("viewer", .viewer, .any, nil), ("manager", .manager, .any, nil), ("admin", .admin, .any, nil),
                ("branchManager", .manager, try SiteScope(["branch-*"]), nil), ("webViewer", .viewer, try SiteScope(["web-eu"]), nil),
                ("expired", .admin, .any, now - 1), ("revoked", .admin, .any, nil),
                // The command line makes no such token; a store might hold one.
                ("branchAdmin", .admin, try SiteScope(["branch-*"]), nil),
            ]
            var secrets: [String: String] = [:]
            var tokens: [String: APIToken] = [:]
            for (name, role, sites, expiry) in made {
                let (secret, token) = try OperationsClient.token(in: store, role: role, sites: sites, name: name, expiresAt: expiry)
                secrets[name] = secret
                tokens[name] = token
            }
            #expect(try store.revokeAPIToken(try #require(tokens["revoked"]).id, at: now, by: .commandLine))
            secrets["unknown"] = APIToken.newSecret()
            secrets["malformed"] = "letmein"
            return Fixture(
                setup: setup, client: try OperationsClient(setup.hub.hub), webAlert: web, branchAlert: branch, secrets: secrets, tokens: tokens
            )
        }

        func call(_ caller: String?, _ method: String, _ path: String, body: String? = nil, headers: [String: String] = [:]) async throws
            -> OperationsClient.Answer
        {
            try await self.client.call(method, path, token: caller.flatMap { self.secrets[$0] }, body: body, headers: headers)
        }

        func status(of alert: String) throws -> Alert.Status? {
            try self.setup.hub.hub.store.alert(try #require(UUID(uuidString: alert)))?.status
        }
    }

    @Test func everyEndpointAnswersEachCallerAsItsRoleAndSitesAllow() async throws {
        let fixture = try await Fixture.start()
        let (web, branch) = (fixture.webAlert, fixture.branchAlert)
        let strangers: [String?] = [nil, "malformed", "unknown", "expired", "revoked"]
        // (endpoint, expected status per caller); strangers always get 401.
        let reads: [(String, String, [String: Int])] = [
            ("GET", "/v1/me", ["viewer": 200, "manager": 200, "admin": 200, "branchManager": 200, "webViewer": 200, "branchAdmin": 200]),
            ("GET", "/v1/alerts", ["viewer": 200, "manager": 200, "admin": 200, "branchManager": 200, "webViewer": 200]),
            ("GET", "/v1/alerts/\(branch)", ["viewer": 200, "manager": 200, "admin": 200, "branchManager": 200, "webViewer": 404, "branchAdmin": 200]),
            ("GET", "/v1/alerts/\(web)", ["viewer": 200, "manager": 200, "admin": 200, "branchManager": 404, "webViewer": 200, "branchAdmin": 404]),
            ("GET", "/v1/alerts/\(web)/history", ["viewer": 200, "manager": 200, "admin": 200, "branchManager": 404, "webViewer": 200]),
            ("GET", "/v1/reports/ratings", ["viewer": 200, "manager": 200, "admin": 200, "branchManager": 200, "webViewer": 200, "branchAdmin": 200]),
            ("GET", "/v1/ratings", ["viewer": 200, "manager": 200, "admin": 200, "branchManager": 200, "webViewer": 200, "branchAdmin": 200]),
            ("GET", "/v1/reports/cases", ["viewer": 200, "manager": 200, "admin": 200, "branchManager": 200, "webViewer": 200, "branchAdmin": 200]),
            ("GET", "/v1/tokens", ["viewer": 403, "manager": 403, "admin": 200, "branchManager": 403, "webViewer": 403, "branchAdmin": 403]),
            ("GET", "/v1/audit", ["viewer": 403, "manager": 403, "admin": 200, "branchManager": 403, "webViewer": 403, "branchAdmin": 403]),
            // Acting: viewers are refused by role; a manager outside the alert's sites does
            // not learn that it exists.
            ("POST", "/v1/alerts/\(web)/acknowledge", ["viewer": 403, "webViewer": 403, "branchManager": 404, "branchAdmin": 404]),
            ("POST", "/v1/alerts/\(branch)/cancel", ["viewer": 403, "webViewer": 403]),
            ("POST", "/v1/alerts/\(web)/wait", ["viewer": 403, "webViewer": 403, "branchManager": 404, "branchAdmin": 404]),
            ("POST", "/v1/alerts/\(branch)/assign", ["viewer": 403, "webViewer": 403, "branchManager": 400]),
        ]
        var wrong: [String] = []
        for (method, path, expected) in reads {
            for caller in strangers {
                let answer = try await fixture.call(caller, method, path, body: method == "POST" ? #"{"note":"x"}"# : nil)
                if answer.status != 401 || answer.errorCode != "unauthenticated" || answer.headers["www-authenticate"]?.hasPrefix("Bearer") != true {
                    wrong.append("\(caller ?? "no token") \(method) \(path): \(answer.status) \(answer.body)")
                }
            }
            for (caller, status) in expected.sorted(by: { $0.key < $1.key }) {
                let answer = try await fixture.call(caller, method, path, body: method == "POST" ? #"{"note":"x"}"# : nil)
                if answer.status != status { wrong.append("\(caller) \(method) \(path): \(answer.status), expected \(status): \(answer.body)") }
            }
        }
        #expect(wrong.isEmpty, "\(wrong.joined(separator: "\n"))")
        // Nothing above changed an alert.
        #expect(try fixture.status(of: web) == .open)
        #expect(try fixture.status(of: branch) == .open)

        // Lists hold only the caller's sites.
        func sites(_ caller: String) async throws -> [String] {
            let answer = try await fixture.call(caller, "GET", "/v1/alerts")
            return ((answer.json["alerts"] as? [[String: Any]]) ?? []).compactMap { $0["site"] as? String }.sorted()
        }
        #expect(try await sites("viewer") == ["branch-042", "web-eu"])
        #expect(try await sites("branchManager") == ["branch-042"])
        #expect(try await sites("webViewer") == ["web-eu"])
        #expect(((try await fixture.call("branchManager", "GET", "/v1/alerts?site=web-eu")).json["alerts"] as? [Any])?.isEmpty == true)
        // The case report too: another site's cases are not counted, even when asked for.
        func reported(_ caller: String, _ query: String = "") async throws -> [String] {
            let answer = try await fixture.call(caller, "GET", "/v1/reports/cases?from=2020-01-01" + query)
            return ((answer.json["groups"] as? [[String: Any]]) ?? []).compactMap { $0["key"] as? String }.sorted()
        }
        #expect(try await reported("viewer") == ["branch-042", "web-eu"])
        #expect(try await reported("branchManager") == ["branch-042"])
        #expect(try await reported("branchManager", "&site=web-eu").isEmpty)
        #expect(try await reported("webViewer", "&groupBy=owner") == [""])
        let me = try await fixture.call("branchManager", "GET", "/v1/me").json
        #expect(me["role"] as? String == "manager" && me["sites"] as? [String] == ["branch-*"] && me["name"] as? String == "branchManager")
        try await fixture.setup.stop()
    }

    @Test func aManagerActsWithinItsSitesAndTheAuditTrailSaysWhoDidWhat() async throws {
        let fixture = try await Fixture.start()
        let started = try await fixture.call("branchManager", "POST", "/v1/alerts/\(fixture.branchAlert)/start", body: #"{"note":"calling"}"#)
        #expect(started.status == 200 && started.json["status"] as? String == "inProgress")
        let completed = try await fixture.call(
            "manager", "POST", "/v1/alerts/\(fixture.branchAlert)/complete", body: #"{"note":"refund issued","customerReached":true}"#
        )
        #expect(completed.status == 200 && completed.json["status"] as? String == "completed")

        let history = try await fixture.call("webViewer", "GET", "/v1/alerts/\(fixture.webAlert)/history")
        #expect(history.status == 200 && (history.json["history"] as? [Any])?.isEmpty == true)
        let trail = try #require(try await fixture.call("viewer", "GET", "/v1/alerts/\(fixture.branchAlert)/history").json["history"] as? [[String: Any]])
        #expect(trail.count == 2)
        let (last, first) = (trail[0], trail[1])
        #expect(first["action"] as? String == "case.inProgress" && first["from"] as? String == "open" && first["to"] as? String == "inProgress")
        #expect(first["note"] as? String == "calling")
        #expect((first["actor"] as? [String: Any])?["name"] as? String == "branchManager")
        #expect((first["actor"] as? [String: Any])?["tokenId"] as? String == fixture.tokens["branchManager"]?.id.uuidString.lowercased())
        #expect(last["action"] as? String == "case.completed" && last["from"] as? String == "inProgress" && last["to"] as? String == "completed")
        #expect((last["actor"] as? [String: Any])?["name"] as? String == "manager")

        // The admin's trail holds the tokens made (the fixture's eight and the setup's
        // manager) and revoked too.
        let audit = try #require(try await fixture.call("admin", "GET", "/v1/audit?limit=1000").json["audit"] as? [[String: Any]])
        #expect(audit.filter { $0["action"] as? String == "token.added" }.count == 9)
        #expect(audit.filter { $0["action"] as? String == "token.revoked" }.count == 1)
        #expect(audit.filter { ($0["action"] as? String)?.hasPrefix("case.") == true }.count == 2)
        let tokens = try #require(try await fixture.call("admin", "GET", "/v1/tokens").json["tokens"] as? [[String: Any]])
        #expect(tokens.count == 9 && tokens.contains { $0["name"] as? String == "revoked" && $0["revokedAt"] != nil })
        #expect(!(try await fixture.call("admin", "GET", "/v1/tokens")).body.contains("fma_"), "no secret is ever shown again")

        // Revoked: refused from the next request on.
        #expect(try fixture.setup.hub.hub.store.revokeAPIToken(try #require(fixture.tokens["manager"]).id, at: 0, by: .commandLine))
        #expect(try await fixture.call("manager", "GET", "/v1/alerts").status == 401)
        try await fixture.setup.stop()
    }

    @Test func aForeignPageCannotActOnAnAlertWithOrWithoutAToken() async throws {
        let fixture = try await Fixture.start()
        let path = "/v1/alerts/\(fixture.webAlert)/acknowledge"
        // The attack once seen: a text/plain form post from another site, no credentials.
        let anonymous = try await fixture.call(
            nil, "POST", path, body: #"{"note":"x"}"#, headers: ["Content-Type": "text/plain", "Origin": "http://evil.example"]
        )
        #expect(anonymous.status == 403 && anonymous.errorCode == "foreignOrigin")
        // Even with a manager's token, a request from a foreign origin is refused.
        for origin in ["http://evil.example", "null", "https://127.0.0.1:\(fixture.client.port)", "http://127.0.0.1:1"] {
            let answer = try await fixture.call("manager", "POST", path, body: #"{"note":"x"}"#, headers: ["Origin": origin])
            #expect(answer.status == 403 && answer.errorCode == "foreignOrigin", "Origin \(origin)")
        }
        #expect(try fixture.status(of: fixture.webAlert) == .open)
        // Its own origin (the dashboard's pages) and no Origin at all (curl, scripts) may act.
        let same = try await fixture.call("manager", "POST", path, body: #"{"note":"x"}"#, headers: ["Origin": "http://127.0.0.1:\(fixture.client.port)"])
        #expect(same.status == 200)
        let cancelled = try await fixture.call("manager", "POST", "/v1/alerts/\(fixture.webAlert)/cancel", body: #"{"note":"duplicate"}"#)
        #expect(cancelled.status == 200)
        // Reads need a token whatever the Origin.
        #expect(try await fixture.call(nil, "GET", "/v1/alerts", headers: ["Origin": "http://127.0.0.1:\(fixture.client.port)"]).status == 401)
        try await fixture.setup.stop()
    }

    @Test func oddPathsAndMethodsFailClosed() async throws {
        let fixture = try await Fixture.start { $0.operations.metrics = .token }
        let odd: [(String, String)] = [
            ("GET", "/v1/alerts/"), ("GET", "//v1/alerts"), ("GET", "/V1/alerts"), ("GET", "/%761/alerts"), ("GET", "/v1/./alerts"),
            ("GET", "/v1/nothing"), ("HEAD", "/v1/alerts"), ("PUT", "/v1/alerts"), ("DELETE", "/v1/alerts/\(fixture.webAlert)"),
            ("GET", "/v1/alerts/\(fixture.webAlert)/"), ("GET", "/metrics/"), ("GET", "//metrics"), ("GET", "/v1"),
            ("GET", "/assets/../v1/alerts"), ("GET", "/login/../v1/alerts"),
        ]
        // `/` is the dashboard: it sends a browser to sign in (DashboardTests), never serves data.
        for (method, path) in odd {
            let answer = try await fixture.call(nil, method, path)
            #expect(answer.status == 401, "\(method) \(path): \(answer.status)")
        }
        #expect(try fixture.status(of: fixture.webAlert) == .open)
        try await fixture.setup.stop()
    }

    @Test func aPathServedWithAnotherMethodAnswers405WithAllow() async throws {
        let fixture = try await Fixture.start()
        let cases: [(String?, String, String, String?)] = [
            ("manager", "DELETE", "/v1/alerts/\(fixture.webAlert)", "GET"), ("manager", "GET", "/v1/alerts/\(fixture.webAlert)/complete", "POST"),
            ("viewer", "POST", "/v1/reports/cases", "GET"), (nil, "TRACE", "/metrics", "GET"), (nil, "PUT", "/healthz", "GET"),
            // A stranger learns nothing of /v1 routes; unknown paths stay 404.
            (nil, "DELETE", "/v1/alerts/\(fixture.webAlert)", nil), ("manager", "DELETE", "/v1/nothing", nil),
            ("manager", "GET", "/v1/alerts/\(fixture.webAlert)/reopen", nil),
        ]
        for (caller, method, path, allow) in cases {
            let answer = try await fixture.call(caller, method, path)
            switch allow {
            case let allow?:
                #expect(answer.status == 405 && answer.headers["allow"] == allow && answer.errorCode == "methodNotAllowed", "\(method) \(path)")
            case nil:
                #expect(answer.status == (caller == nil ? 401 : 404), "\(method) \(path): \(answer.status)")
            }
        }
        let null = try await fixture.call("manager", "POST", "/v1/alerts/\(fixture.webAlert)/start", body: #"{"note":null}"#)
        #expect(null.status == 400 && null.json["error"].flatMap { ($0 as? [String: Any])?["field"] as? String } == "note")
        #expect(try fixture.status(of: fixture.webAlert) == .open)
        try await fixture.setup.stop()
    }

    @Test func originsAProxyServesThePortUnderMayAct() async throws {
        let fixture = try await Fixture.start { $0.operations.origins = ["https://ops.example.com"] }
        let path = "/v1/alerts/\(fixture.webAlert)/acknowledge"
        for origin in ["https://ops.example.com.evil", "http://ops.example.com", "https://ops.example.com:8443"] {
            let answer = try await fixture.call("manager", "POST", path, body: "{}", headers: ["Origin": origin])
            #expect(answer.status == 403 && answer.errorCode == "foreignOrigin", "Origin \(origin)")
        }
        let proxied = try await fixture.call("manager", "POST", path, body: "{}", headers: ["Origin": "HTTPS://ops.example.com:443"])
        #expect(proxied.status == 200, "the same origin, default port written out: \(proxied.body)")

        var configuration = fixture.setup.hub.configuration
        for bad in ["ops.example.com", "https://ops.example.com/dashboard", "ftp://ops.example.com", "https://", "https://a@ops.example.com"] {
            configuration.operations.origins = [bad]
            #expect(throws: ConfigurationError.self, "\(bad)") { try configuration.validate() }
        }
        try await fixture.setup.stop()
    }

    @Test func metricsAndHealthAreOpenOrBehindATokenBySetting() async throws {
        let open = try await Fixture.start()
        for path in ["/metrics", "/healthz", "/readyz"] {
            #expect(try await open.call(nil, "GET", path).status == 200, "\(path) open by default")
        }
        #expect(try await open.call(nil, "GET", "/v1/alerts").status == 401)
        #expect(try await open.call("unknown", "GET", "/v1/alerts").status == 401)
        let metrics = try await open.call(nil, "GET", "/metrics").body
        #expect(metrics.contains(#"feedback_hub_http_auth_refusals_total{reason="missing"} 1"#), "\(metrics)")
        #expect(metrics.contains(#"feedback_hub_http_auth_refusals_total{reason="invalid"} 1"#))
        try await open.setup.stop()

        let closed = try await Fixture.start { $0.operations.metrics = .token; $0.operations.health = .token }
        for path in ["/metrics", "/healthz", "/readyz"] {
            #expect(try await closed.call(nil, "GET", path).status == 401, "\(path) behind a token")
            #expect(try await closed.call("revoked", "GET", path).status == 401, "\(path) with a revoked token")
            #expect(try await closed.call("webViewer", "GET", path).status == 200, "\(path) with any valid token")
        }
        try await closed.setup.stop()
    }
}

/// The operations port over TLS, with the hub's own certificate, as a browser or curl sees it.
@Suite struct OperationsTLSTests {
    @Test func thePortServesHTTPSWithTheHubsCertificateAndNothingInTheClear() async throws {
        let hub = try await HubHarness.start { configuration in
            configuration.operations.tls = .init(certificate: configuration.tls.certificate, privateKey: configuration.tls.privateKey)
        }
        let port = try #require(hub.hub.httpAddress?.port)
        let (secret, _) = try OperationsClient.token(in: hub.hub.store, role: .manager)
        func curl(_ arguments: [String]) async throws -> CLIRun {
            try await CLIRun.run("/usr/bin/curl", ["-sS", "--max-time", "20"] + arguments)
        }
        let base = "https://127.0.0.1:\(port)"
        let me = try await curl(["--cacert", hub.caPath, "-H", "Authorization: Bearer \(secret)", "\(base)/v1/me"])
        #expect(me.status == 0 && me.output.contains(#""role":"manager""#), "\(me.output)")
        let untrusted = try await curl(["\(base)/healthz"])
        #expect(untrusted.status == 60, "a client without the hub's CA refuses the certificate: \(untrusted.output)")
        let clear = try await curl(["-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)/healthz"])
        #expect(!clear.output.hasPrefix("200"), "plain HTTP gets no answer: \(clear.output)")
        // The port's own origin is now https://…; the same host over http:// is foreign.
        let id = UUID().uuidString
        let foreign = try await curl([
            "--cacert", hub.caPath, "-H", "Authorization: Bearer \(secret)", "-H", "Origin: http://127.0.0.1:\(port)", "-X", "POST",
            "\(base)/v1/alerts/\(id)/acknowledge",
        ])
        #expect(foreign.output.contains("foreignOrigin"), "\(foreign.output)")
        let own = try await curl([
            "--cacert", hub.caPath, "-H", "Authorization: Bearer \(secret)", "-H", "Origin: \(base)", "-X", "POST", "\(base)/v1/alerts/\(id)/acknowledge",
        ])
        #expect(own.output.contains("notFound"), "\(own.output)")
        // Over TLS the session cookie is Secure and __Host- (no subdomain can set it).
        let session = try await curl(["--cacert", hub.caPath, "-i", "-H", "Authorization: Bearer \(secret)", "-X", "POST", "\(base)/v1/session"])
        let setCookie = session.output.split(separator: "\r\n").first { $0.lowercased().hasPrefix("set-cookie:") } ?? ""
        #expect(setCookie.contains("__Host-fm_session=fms_") && setCookie.contains("; Secure") && setCookie.contains("HttpOnly"), "\(session.output)")
        try await hub.stopAndRemove()
    }

    @Test func unusableTLSFilesStopTheHubNamingTheSetting() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("hub-\(UUID())")
        defer { try? FileManager.default.removeItem(at: folder) }
        await #expect {
            _ = try await HubHarness.start(folder: folder) { $0.operations.tls = .init(certificate: "/nonexistent/ops.pem", privateKey: "/nonexistent/ops-key.pem") }
        } throws: { error in
            "\(error)".contains("operations.tls") && "\(error)".contains("/nonexistent/ops.pem")
        }
    }
}

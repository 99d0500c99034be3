import Foundation
import Hub
import NIOConcurrencyHelpers
import TestSupport
import Testing
import Wire

/// Browser sessions on the operations port: a token exchanged for a cookie, the cookie's
/// flags, the CSRF token every change with it needs, its end; and the `Host` names the port
/// answers to. Over real HTTP to a real hub.
@Suite struct SessionTests {
    /// The session cookie's secret in a `Set-Cookie` value.
    static func secret(in setCookie: String?) -> String? {
        setCookie?.split(separator: ";").first?.split(separator: "=", maxSplits: 1).last.map(String.init)
    }

    @Test func aTokenBecomesACookieThatChangesThingsOnlyWithItsCSRFToken() async throws {
        let fixture = try await AccessTests.Fixture.start()
        let made = try await fixture.call("manager", "POST", "/v1/session")
        #expect(made.status == 201 && (made.json["token"] as? [String: Any])?["name"] as? String == "manager")
        let setCookie = try #require(made.headers["set-cookie"])
        let flags = Set(setCookie.split(separator: ";").dropFirst().map { $0.trimmingCharacters(in: .whitespaces) })
        #expect(flags == ["Path=/", "HttpOnly", "SameSite=Strict", "Max-Age=28800"], "no Secure over plain HTTP on loopback: \(setCookie)")
        #expect(setCookie.hasPrefix("fm_session=fms_") && made.headers["cache-control"] == "no-store")
        let cookie = "fm_session=" + (try #require(Self.secret(in: setCookie)))
        let csrf = try #require(made.json["csrfToken"] as? String)
        func call(_ method: String, _ path: String, csrf: String? = nil, body: String? = nil) async throws -> OperationsClient.Answer {
            var headers = ["Cookie": "theme=dark; \(cookie)"]
            if let csrf { headers["X-CSRF-Token"] = csrf }
            return try await fixture.call(nil, method, path, body: body, headers: headers)
        }

        #expect(try await call("GET", "/v1/me").json["role"] as? String == "manager", "the cookie stands for the token")
        #expect(try await call("GET", "/v1/session").json["csrfToken"] as? String == csrf, "a reloaded page learns its CSRF token")
        let path = "/v1/alerts/\(fixture.webAlert)/start"
        let bare = try await call("POST", path, body: "{}")
        #expect(bare.status == 403 && bare.errorCode == "csrfRequired")
        #expect(try await call("POST", path, csrf: String(csrf.reversed()), body: "{}").errorCode == "csrfRequired")
        #expect(try fixture.status(of: fixture.webAlert) == .open, "nothing changed without the CSRF token")
        let started = try await call("POST", path, csrf: csrf, body: #"{"note":"from the dashboard"}"#)
        #expect(started.status == 200 && started.json["status"] as? String == "inProgress")
        let history = try #require(try await call("GET", "/v1/alerts/\(fixture.webAlert)/history").json["history"] as? [[String: Any]])
        #expect((history.first?["actor"] as? [String: Any])?["name"] as? String == "manager", "the audit trail names the token")
        #expect(try await call("POST", "/v1/session", csrf: csrf).errorCode == "tokenRequired", "a session does not make sessions")

        let ended = try await call("DELETE", "/v1/session", csrf: csrf)
        #expect(ended.status == 204 && ended.headers["set-cookie"]?.contains("Max-Age=0") == true)
        #expect(try await call("GET", "/v1/me").status == 401, "signed out")
        #expect(try await fixture.call(nil, "GET", "/v1/me", headers: ["Cookie": "fm_session=letmein"]).status == 401)

        // A revoked token ends its sessions; so does the session's own time.
        let viewer = try await fixture.call("viewer", "POST", "/v1/session")
        let viewerCookie = "fm_session=" + (try #require(Self.secret(in: viewer.headers["set-cookie"])))
        #expect(try await fixture.call(nil, "GET", "/v1/me", headers: ["Cookie": viewerCookie]).status == 200)
        #expect(try fixture.setup.hub.hub.store.revokeAPIToken(try #require(fixture.tokens["viewer"]).id, at: 1, by: .commandLine))
        #expect(try await fixture.call(nil, "GET", "/v1/me", headers: ["Cookie": viewerCookie]).status == 401)
        let admin = try await fixture.call("admin", "POST", "/v1/session")
        let adminCookie = "fm_session=" + (try #require(Self.secret(in: admin.headers["set-cookie"])))
        fixture.setup.offset.withLockedValue { $0 = 8 * 3_600_000 + 1_000 }
        #expect(try await fixture.call(nil, "GET", "/v1/me", headers: ["Cookie": adminCookie]).status == 401, "after sessionHours")
        try await fixture.setup.stop()
    }

    @Test func thePortAnswersOnlyToItsAddressesAndNames() async throws {
        let fixture = try await AccessTests.Fixture.start { $0.operations.hosts = ["ops.example.com"] }
        let port = fixture.client.port
        let secret = try #require(fixture.secrets["viewer"])
        func status(_ host: String, _ path: String) async throws -> String {
            try await CLIRun.run(
                "/usr/bin/curl", ["-sS", "--max-time", "20", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: \(host)", "-H", "Authorization: Bearer \(secret)",
                "http://127.0.0.1:\(port)\(path)"]
            ).output
        }
        for host in ["127.0.0.1:\(port)", "localhost:\(port)", "[::1]:\(port)", "ops.example.com:\(port)", "OPS.example.com"] {
            #expect(try await status(host, "/v1/me") == "200", "\(host)")
        }
        // A page whose DNS name was rebound to the hub's address names itself in Host.
        for host in ["attacker.example:\(port)", "ops.example.com.attacker.example", "127.0.0.1.nip.io:\(port)", "[::1]evil.example", "[::1"] {
            #expect(try await status(host, "/metrics") == "403", "\(host)")
            #expect(try await status(host, "/v1/me") == "403", "\(host)")
        }
        var configuration = fixture.setup.hub.configuration
        for bad in ["https://ops.example.com", "ops.example.com:7080", "ops.example.com/x", ""] {
            configuration.operations.hosts = [bad]
            #expect(throws: ConfigurationError.self, "\(bad)") { try configuration.validate() }
        }
        configuration.operations.hosts = []
        configuration.operations.sessionHours = 0
        #expect(throws: ConfigurationError.self) { try configuration.validate() }
        try await fixture.setup.stop()
    }

    /// Review findings: a planted second cookie, a sign-out sent with a bearer token too, a
    /// dead cookie, and a proxy serving the port over https.
    @Test func aPlantedCookieIsRefusedAndSigningOutEndsTheSessionWhateverElseCame() async throws {
        let fixture = try await AccessTests.Fixture.start()
        let made = try await fixture.call("manager", "POST", "/v1/session")
        let cookie = "fm_session=" + (try #require(Self.secret(in: made.headers["set-cookie"])))
        // Another page of the same host or domain sets its own fm_session (cookie tossing):
        // neither is taken, and the answer drops the cookie.
        let planted = "fm_session=\(try await fixture.call("viewer", "POST", "/v1/session").headers["set-cookie"].flatMap(Self.secret) ?? "x")"
        let tossed = try await fixture.call(nil, "GET", "/v1/me", headers: ["Cookie": "\(planted); \(cookie)"])
        #expect(tossed.status == 401 && tossed.headers["set-cookie"]?.contains("Max-Age=0") == true)
        #expect(try await fixture.call(nil, "GET", "/v1/me", headers: ["Cookie": cookie]).json["role"] as? String == "manager")

        let csrf = try #require(made.json["csrfToken"] as? String)
        let signOut = try await fixture.call("manager", "DELETE", "/v1/session", headers: ["Cookie": cookie, "X-CSRF-Token": csrf])
        #expect(signOut.status == 204)
        let after = try await fixture.call(nil, "GET", "/v1/me", headers: ["Cookie": cookie])
        #expect(after.status == 401, "the session ended although the sign-out came with a bearer token too")
        #expect(after.headers["set-cookie"]?.contains("Max-Age=0") == true, "a dead cookie is dropped")
        try await fixture.setup.stop()

        // Behind a TLS proxy (an https origin) the cookie is Secure and __Host- named.
        let proxied = try await AccessTests.Fixture.start { $0.operations.origins = ["https://ops.example.com"] }
        let secure = try await proxied.call("viewer", "POST", "/v1/session")
        let setCookie = try #require(secure.headers["set-cookie"])
        #expect(setCookie.hasPrefix("__Host-fm_session=fms_") && setCookie.hasSuffix("; Secure"), "\(setCookie)")
        let secret = try #require(Self.secret(in: setCookie))
        #expect(try await proxied.call(nil, "GET", "/v1/me", headers: ["Cookie": "__Host-fm_session=\(secret)"]).status == 200)
        #expect(try await proxied.call(nil, "GET", "/v1/me", headers: ["Cookie": "fm_session=\(secret)"]).status == 401, "the unprefixed name is not read")
        try await proxied.setup.stop()
    }
}

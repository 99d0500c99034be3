import Foundation
@testable import Hub
import TestSupport
import Testing
import Wire

/// The dashboard's pages over real HTTP to a real hub: who sees them, what each caller sees,
/// what reaches the page from outside (escaped), the headers that keep other sites' code out,
/// and the two languages. The browser itself is exercised by scripts/check-dashboard.sh.
@Suite struct DashboardTests {
    /// A session cookie for the fixture's token `name`.
    static func cookie(_ fixture: AccessTests.Fixture, _ name: String) async throws -> String {
        let made = try await fixture.call(name, "POST", "/v1/session")
        return "fm_session=" + (try #require(SessionTests.secret(in: made.headers["set-cookie"])))
    }

    /// `curl` without following redirects: status, `Location` and `Set-Cookie`.
    static func head(_ port: Int, _ path: String, cookie: String? = nil) async throws -> (status: String, location: String, setCookie: String) {
        var arguments = ["-sS", "--max-time", "20", "-o", "/dev/null", "-D", "-", "-w", "%{http_code}"]
        if let cookie { arguments += ["-H", "Cookie: \(cookie)"] }
        let output = try await CLIRun.run("/usr/bin/curl", arguments + ["http://127.0.0.1:\(port)\(path)"]).output
        let lines = output.split(whereSeparator: \.isNewline).map(String.init)
        func header(_ name: String) -> String {
            lines.first { $0.lowercased().hasPrefix(name + ":") }.map { String($0.dropFirst(name.count + 1)).trimmingCharacters(in: .whitespaces) } ?? ""
        }
        return (lines.last ?? "", header("location"), header("set-cookie"))
    }

    @Test func pagesNeedASessionAndTheSignInPageAndAssetsDoNot() async throws {
        let fixture = try await AccessTests.Fixture.start()
        let port = fixture.client.port
        for page in ["/", "/cases", "/fleet", "/health"] {
            let answer = try await Self.head(port, page)
            #expect(answer.status == "303" && answer.location == "/login?next=\(page.replacingOccurrences(of: "/", with: "%2F"))", "\(page): \(answer)")
        }
        let ended = try await Self.head(port, "/cases", cookie: "fm_session=fms_" + String(repeating: "a", count: 52))
        #expect(ended.status == "303" && ended.setCookie.contains("Max-Age=0"), "a dead session goes to sign-in and its cookie is dropped")
        let filtered = try await Self.head(port, "/cases?status=all&site=branch-042")
        #expect(filtered.location == "/login?next=%2Fcases%3Fstatus%3Dall%26site%3Dbranch%2D042", "the filters survive signing in: \(filtered.location)")
        let login = try await fixture.call(nil, "GET", "/login?next=/cases")
        #expect(login.status == 200 && login.body.contains(#"<form id="login" method="post" action="/login" data-next="/cases""#))
        #expect(!login.body.contains(#"name="token""#), "without the script, a submitted form carries no token into a URL")
        for evil in ["https://evil.example/", "//evil.example/", "javascript:alert(1)", "/v1/alerts"] {
            #expect(try await fixture.call(nil, "GET", "/login?next=\(evil.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")").body.contains(#"data-next="/""#), "\(evil)")
        }
        let css = try await fixture.call(nil, "GET", "/assets/dashboard.css")
        let script = try await fixture.call(nil, "GET", "/assets/dashboard.js")
        #expect(css.status == 200 && css.headers["content-type"] == "text/css; charset=utf-8" && css.headers["x-content-type-options"] == "nosniff")
        #expect(script.status == 200 && script.headers["content-type"] == "text/javascript; charset=utf-8" && script.body.contains("X-CSRF-Token"))
        // Assets carry an entity tag: a browser that has this version gets 304 and no body.
        let tag = try #require(css.headers["etag"])
        #expect(tag.hasPrefix("\"") && tag != script.headers["etag"])
        let again = try await fixture.call(nil, "GET", "/assets/dashboard.css", headers: ["If-None-Match": tag])
        #expect(again.status == 304 && again.body.isEmpty)
        #expect(try await fixture.call(nil, "GET", "/assets/dashboard.css", headers: ["If-None-Match": "\"old\""]).status == 200)
        #expect(try await fixture.call(nil, "POST", "/login").status == 405)
        // The API is unchanged: a JSON 401, no redirect.
        #expect(try await fixture.call(nil, "GET", "/v1/alerts").status == 401)
        try await fixture.setup.stop()
    }

    @Test func eachCallerSeesItsSitesAndActsOnlyAsItsRoleAllows() async throws {
        let fixture = try await AccessTests.Fixture.start()
        let manager = try await Self.cookie(fixture, "manager")
        let overview = try await fixture.call(nil, "GET", "/?days=7", headers: ["Cookie": manager])
        #expect(overview.status == 200 && overview.headers["content-type"] == "text/html; charset=utf-8")
        #expect(overview.headers["content-security-policy"] == Dashboard.contentSecurityPolicy && overview.headers["cache-control"] == "no-store")
        #expect(overview.body.contains(#"<th scope="row">web-eu</th>"#) && overview.body.contains(#"<th scope="row">branch-042</th>"#))
        // One detractor per site, by hand: n′ = 4, p′ = 0.75/4, d′ = 1.75/4, centre −0.25,
        // half-width 1.96·√((0.1875 + 0.4375 − 0.0625)/4) = 0.735: −98.5 … +48.5.
        #expect(overview.body.contains("<td>-100.0 (-98.5 … +48.5)</td>"))
        #expect(overview.body.contains(#"<svg class="chart""#) && overview.body.contains(#"<polygon class="band""#))
        // Each chart's figures as a table too, the NPS one with its interval.
        #expect(overview.body.contains(#"<details class="chart-table" id="rate-table"><summary>The figures as a table</summary>"#))
        #expect(overview.body.contains(#"<details class="chart-table" id="nps-table">"#) && overview.body.contains(#"<th scope="col">95 % interval</th>"#))
        #expect(overview.body.contains(#"<meta name="csrf-token" content=""#) && !overview.body.contains(#"content="""#), "the session's CSRF token is on the page")

        let cases = try await fixture.call(nil, "GET", "/cases", headers: ["Cookie": manager])
        #expect(cases.body.contains(#"id="case-\#(fixture.webAlert)""#) && cases.body.contains(#"id="case-\#(fixture.branchAlert)""#))
        #expect(cases.body.contains(#"data-action="start""#) && cases.body.contains(#"data-action="complete""#))

        let viewer = try await Self.cookie(fixture, "viewer")
        let read = try await fixture.call(nil, "GET", "/cases", headers: ["Cookie": viewer])
        #expect(read.body.contains(#"id="case-\#(fixture.webAlert)""#) && !read.body.contains("data-action="), "a viewer gets no action buttons")

        let branch = try await Self.cookie(fixture, "branchManager")
        let scoped = try await fixture.call(nil, "GET", "/cases", headers: ["Cookie": branch])
        #expect(scoped.body.contains(fixture.branchAlert) && !scoped.body.contains(fixture.webAlert), "a branch manager sees his branches only")
        let scopedOverview = try await fixture.call(nil, "GET", "/", headers: ["Cookie": branch])
        #expect(scopedOverview.body.contains("branch-042") && !scopedOverview.body.contains("web-eu"))
        // The fleet: the test's agent is enrolled for every site, so a branch token does not see it.
        let node = fixture.setup.identity.nodeID.uuidString.lowercased()
        #expect(try await fixture.call(nil, "GET", "/fleet", headers: ["Cookie": manager]).body.contains(node))
        #expect(!(try await fixture.call(nil, "GET", "/fleet", headers: ["Cookie": branch]).body.contains(node)))
        // A bearer token reads pages too (a script, a kiosk display), without a CSRF token.
        let bearer = try await fixture.call("manager", "GET", "/health")
        #expect(try await fixture.call("viewer", "GET", "/fleet").status == 200)
        #expect(bearer.status == 200 && bearer.body.contains(#"<meta name="csrf-token" content="">"#))

        // The filters: completed only, and a stuck-for value out of range named.
        let completed = try await fixture.call(nil, "GET", "/cases?status=completed", headers: ["Cookie": manager])
        #expect(completed.status == 200 && !completed.body.contains(#"id="case-"#))
        let wrong = try await fixture.call(nil, "GET", "/cases?stuckFor=0&status=bogus", headers: ["Cookie": manager])
        #expect(wrong.status == 200 && wrong.body.contains(#"<p class="bad">?"#) && wrong.body.contains(fixture.webAlert), "named, and the cases not closed shown")
        try await fixture.setup.stop()
    }

    @Test func overdueCasesComeFirstThenStuckOnesThenTheNewest() async throws {
        let fixture = try await AccessTests.Fixture.start()
        let store = fixture.setup.hub.hub.store
        let webID = try #require(UUID(uuidString: fixture.webAlert))
        let case0 = try #require(try store.alert(webID))
        func make(_ id: Int, status: Alert.Status = .inProgress, created: Int64, updated: Int64, due: Int64?, deadline: Int64? = nil) -> Alert {
            var alert = case0
            alert.id = UUID(uuidString: String(format: "00000000-0000-0000-0000-%012d", id)) ?? UUID()
            (alert.status, alert.createdAt, alert.updatedAt, alert.dueAt, alert.deadlineAt) = (status, created, updated, due, deadline)
            return alert
        }
        let now: Int64 = 100_000_000
        let stuckBefore = now - 3_600_000
        let cases = [
            make(1, created: now - 10, updated: now - 10, due: now + 1_000),  // newest, fine
            make(2, created: now - 20, updated: now - 20, due: now - 500),  // overdue since now − 500
            make(3, created: now - 30, updated: now - 30, due: now + 1_000, deadline: now - 9_000),  // in progress: its deadline no longer counts
            make(4, status: .open, created: now - 40, updated: now - 40, due: now + 1_000, deadline: now - 900),  // open past its deadline
            make(5, created: now - 50, updated: stuckBefore - 1, due: nil),  // stuck
            make(6, status: .completed, created: now - 60, updated: stuckBefore - 1, due: now - 9_000),  // closed: neither
        ]
        let order = Dashboard.ordered(cases.shuffled(), now: now, stuckBefore: stuckBefore).map { Int($0.id.uuidString.suffix(12)) ?? 0 }
        #expect(order == [4, 2, 5, 1, 3, 6])

        // On the page: both fixture cases are past their 2-hour due time three hours on.
        fixture.setup.offset.withLockedValue { $0 = 3 * 3_600_000 }
        let page = try await fixture.call("manager", "GET", "/cases")
        #expect(page.status == 200 && page.body.components(separatedBy: #"<span class="badge bad">Overdue</span>"#).count == 3)
        try await fixture.setup.stop()
    }

    @Test func whatComesFromOutsideIsEscapedAndTheLanguageFollowsTheReader() async throws {
        let fixture = try await AccessTests.Fixture.start()
        let hostile = #"<img src=x onerror="alert(1)">"#
        var record = fixture.setup.record(3, score: 0, site: hostile)
        record.subject = "</table><script>alert(2)</script>"
        #expect(fixture.setup.isAcknowledged(try await fixture.setup.send([record], sequence: 2)))
        let store = fixture.setup.hub.hub.store
        #expect(await eventually { (try? store.alerts(status: .open, site: hostile, within: .any, overdueAt: nil, limit: 10).count) == 1 })
        let manager = try await Self.cookie(fixture, "manager")
        for page in ["/", "/cases"] {
            let body = try await fixture.call(nil, "GET", page, headers: ["Cookie": manager]).body
            #expect(!body.contains("<img") && !body.contains("<script>alert"), "\(page)")
            #expect(body.contains("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;"), "\(page)")
        }

        let russian = try await fixture.call(nil, "GET", "/cases", headers: ["Cookie": manager, "Accept-Language": "ru-RU,ru;q=0.9,en;q=0.5"])
        #expect(russian.body.contains(#"<html lang="ru">"#) && russian.body.contains("Обращения") && russian.body.contains("Взять в работу"))
        let chosen = try await fixture.call(nil, "GET", "/?lang=en", headers: ["Cookie": manager, "Accept-Language": "ru"])
        #expect(chosen.body.contains(#"<html lang="en">"#) && chosen.headers["set-cookie"]?.hasPrefix("fm_lang=en;") == true)
        #expect(try await fixture.call(nil, "GET", "/", headers: ["Cookie": "\(manager); fm_lang=en", "Accept-Language": "ru"]).body.contains("Overview"))
        #expect(try await fixture.call(nil, "GET", "/login", headers: ["Accept-Language": "ru"]).body.contains("Войти"))
        try await fixture.setup.stop()
    }

    @Test func bothLanguagesHaveEveryWordAndTheTemplatesParse() throws {
        #expect(Set(DashboardText.english.keys) == Set(DashboardText.russian.keys))
        _ = try DashboardTemplates.library()
        #expect(DashboardText.Language.chosen(query: nil, cookie: nil, acceptLanguage: "de-DE, ru;q=0.8") == .ru)
        #expect(DashboardText.Language.chosen(query: nil, cookie: nil, acceptLanguage: "rue, fr") == .en, "rue is not Russian")
        #expect(DashboardText.Language.chosen(query: "xx", cookie: "ru", acceptLanguage: "en") == .ru)
    }

    @Test func chartsDrawTheIntervalBandAndRoundAxes() throws {
        #expect(SVGChart.niceCeiling(0) == 1 && SVGChart.niceCeiling(7) == 10 && SVGChart.niceCeiling(120) == 200 && SVGChart.niceCeiling(500) == 500)
        let points = [
            SVGChart.Point(label: "a", value: 0, low: -50, high: 50), SVGChart.Point(label: "b", value: nil),
            SVGChart.Point(label: "<c>", value: 100, low: 80, high: 100),
        ]
        let svg = SVGChart.band(points, range: -100...100, id: "t", title: "NPS & co", description: "d")
        // A gap splits the band: two polygons, two lines; y of 0 on −100…100 is the middle.
        #expect(svg.components(separatedBy: "<polygon").count == 3 && svg.components(separatedBy: "<polyline").count == 3)
        let scale = SVGChart.Scale(count: 3, range: -100...100)
        #expect(scale.y(0) == SVGChart.inset.top + scale.plotHeight / 2)
        #expect(svg.contains(#"points="\#(SVGChart.n(scale.x(0))),\#(SVGChart.n(scale.y(50))) \#(SVGChart.n(scale.x(0))),\#(SVGChart.n(scale.y(-50)))""#))
        #expect(svg.contains("NPS &amp; co") && svg.contains("&lt;c&gt;") && !svg.contains("<c>"))
        let table = SVGChart.table(points, id: "t", caption: "NPS & co", summary: "As a table", label: "Day", value: "NPS", interval: "95 %", decimals: 1)
        #expect(table.contains(#"<tr><th scope="row">a</th><td>0.0</td><td>-50.0 … 50.0</td></tr>"#))
        #expect(table.contains(#"<tr><th scope="row">b</th><td>—</td><td>—</td></tr>"#) && table.contains("&lt;c&gt;") && table.contains("<caption>NPS &amp; co</caption>"))
        let bars = SVGChart.bars([.init(label: "1", value: 5), .init(label: "2", value: 0)], id: "b", title: "t", description: "d")
        #expect(bars.components(separatedBy: "<rect").count == 2, "no bar for zero")
    }

    @Test func theHealthPageReadsRatesAndLatencyFromTheHubsOwnMetrics() throws {
        let before = HealthSampler.parse(
            """
            # TYPE feedback_hub_records_stored_total counter
            feedback_hub_records_stored_total 100
            feedback_hub_rejects_total{code="badSignature"} 1
            feedback_hub_commit_duration_seconds_bucket{store="sqlite",le="0.005"} 10
            feedback_hub_commit_duration_seconds_bucket{store="sqlite",le="0.05"} 10
            feedback_hub_commit_duration_seconds_bucket{store="sqlite",le="+Inf"} 10
            other_metric 5
            """
        )
        let after = HealthSampler.parse(
            """
            feedback_hub_records_stored_total 700
            feedback_hub_rejects_total{code="badSignature"} 4
            feedback_hub_rejects_total{code="siteNotAllowed"} 2
            feedback_hub_commit_duration_seconds_bucket{store="sqlite",le="0.005"} 108
            feedback_hub_commit_duration_seconds_bucket{store="sqlite",le="0.05"} 110
            feedback_hub_commit_duration_seconds_bucket{store="sqlite",le="+Inf"} 110
            broken line
            """
        )
        #expect(before["other_metric"] == nil && HealthSampler.value(after, "feedback_hub_records_stored_total") == 700)
        #expect(HealthSampler.byLabel(after, "feedback_hub_rejects_total", label: "code") == ["badSignature": 4, "siteNotAllowed": 2])
        // 100 commits between the samples: 98 within 5 ms, 2 within 50 ms.
        #expect(HealthSampler.quantile(0.5, histogram: "feedback_hub_commit_duration_seconds", from: before, to: after) == 0.005)
        #expect(HealthSampler.quantile(0.99, histogram: "feedback_hub_commit_duration_seconds", from: before, to: after) == 0.05)
        #expect(HealthSampler.quantile(0.99, histogram: "feedback_hub_commit_duration_seconds", from: after, to: after) == nil)
    }
}

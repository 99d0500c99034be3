import Foundation
import Hub
import TestSupport
import Testing
import Wire

/// `GET /v1/reports/ratings` over real HTTP on a hub whose store holds known ratings.
@Suite struct ReportAPITests {
    /// 2024-12-01T10:00Z, the first hour of the period the tests ask about.
    static let start = Samples.baseTime

    /// A hub holding `records`, and a client.
    static func hub(_ records: [FeedbackRecord]) async throws -> (HubHarness, OperationsClient) {
        let hub = try await HubHarness.start()
        _ = try hub.hub.store.commit([IncomingBatch(key: BatchKey(origin: Samples.agentID, sequence: 1), records: records, receivedAt: 0)])
        return (hub, try OperationsClient(hub.hub))
    }

    static func record(_ index: Int, site: String, score: UInt8, at time: Int64, scale: FeedbackRecord.Scale = .nps) -> FeedbackRecord {
        var record = Samples.popupRecord(index)
        record.site = site
        record.score = score
        record.scale = scale
        record.occurredAt = time
        return record
    }

    /// This period (10:00–13:00Z): branch-1 has 4 promoters and 2 detractors, web-eu 1
    /// passive and 3 CSAT ratings, and a misuse press; the 3 hours before: branch-1 has
    /// 1 promoter and 5 detractors.
    static let records: [FeedbackRecord] = {
        var records: [FeedbackRecord] = []
        var index = 0
        func add(_ site: String, _ score: UInt8, _ offset: Int64, scale: FeedbackRecord.Scale = .nps) {
            records.append(Self.record(index, site: site, score: score, at: Self.start + offset, scale: scale))
            index += 1
        }
        for score: UInt8 in [10, 9, 9, 10, 3, 0] { add("branch-1", score, 3_600_000) }
        add("web-eu", 8, 0)
        for score: UInt8 in [5, 4, 1] { add("web-eu", score, 7_200_000, scale: .csat) }
        var misuse = Self.record(100, site: "branch-1", score: 1, at: Self.start + 60_000, scale: .smiley)
        misuse.attributes = ["misuse": "true"]
        records.append(misuse)
        for score: UInt8 in [10, 2, 2, 3, 4, 6] { add("branch-1", score, -3_600_000) }
        return records
    }()

    @Test func aReportGivesEachGroupItsFiguresBesideThePreviousPeriod() async throws {
        let (hub, client) = try await Self.hub(Self.records)
        let (viewer, _) = try OperationsClient.token(in: hub.hub.store, role: .viewer)
        let answer = try await client.call("GET", "/v1/reports/ratings?from=2024-12-01T10:00:00Z&to=2024-12-01T13:00:00Z&groupBy=site", token: viewer)
        #expect(answer.status == 200, "\(answer.body)")
        let groups = try #require(answer.json["groups"] as? [[String: Any]])
        #expect(groups.compactMap { ($0["key"] as? [String: String])?["site"] } == ["branch-1", "web-eu"], "most responses first")
        let branch = try #require(groups.first)
        let current = try #require(branch["current"] as? [String: Any])
        #expect(current["responses"] as? Int == 6 && current["misuse"] as? Int == 1)
        let nps = try #require(current["nps"] as? [String: Any])
        #expect(nps["promoters"] as? Int == 4 && nps["detractors"] as? Int == 2 && nps["passives"] as? Int == 0)
        #expect((nps["score"] as? Double).map { abs($0 - 33.33) < 0.01 } == true)
        #expect((nps["low"] as? Double ?? 0) < 33.33 && (nps["high"] as? Double ?? 0) > 33.33)
        let previous = try #require((branch["previous"] as? [String: Any])?["nps"] as? [String: Any])
        #expect((previous["score"] as? Double).map { abs($0 - -66.67) < 0.01 } == true)
        let change = try #require((branch["change"] as? [String: Any])?["nps"] as? [String: Any])
        #expect((change["delta"] as? Double).map { abs($0 - 100) < 0.01 } == true)
        // Half-widths about 58 and 52 points with six ratings a side: 100 is beyond √(58² + 52²).
        #expect(change["significant"] as? Bool == true)
        let web = try #require(groups.last)
        #expect(((web["change"] as? [String: Any])?["nps"]) == nil, "no NPS before: no change to show")
        let csat = try #require((web["current"] as? [String: Any])?["csat"] as? [String: Any])
        #expect(csat["positive"] as? Int == 2 && csat["responses"] as? Int == 3)
        let total = try #require((answer.json["total"] as? [String: Any])?["current"] as? [String: Any])
        #expect(total["responses"] as? Int == 10 && total["misuse"] as? Int == 1)
        #expect((answer.json["previousPeriod"] as? [String: String])?["from"] == "2024-12-01T07:00:00Z")
        try await hub.stopAndRemove()
    }

    @Test func bucketsFollowTheRequestedTimeZone() async throws {
        // 10:00–12:59Z is one day in New York and in Tokyo; 15:30Z is the next day in Tokyo.
        let late = Self.record(200, site: "branch-1", score: 10, at: Self.start + 5 * 3_600_000 + 1_800_000)
        let (hub, client) = try await Self.hub(Self.records + [late])
        let (viewer, _) = try OperationsClient.token(in: hub.hub.store, role: .viewer)
        func starts(_ zone: String) async throws -> [String] {
            let answer = try await client.call(
                "GET", "/v1/reports/ratings?from=2024-12-01T10:00:00Z&to=2024-12-01T16:00:00Z&bucket=day&tz=\(zone)", token: viewer
            )
            let group = try #require((answer.json["groups"] as? [[String: Any]])?.first, "\(answer.body)")
            return ((group["buckets"] as? [[String: Any]]) ?? []).compactMap { $0["start"] as? String }
        }
        #expect(try await starts("America/New_York") == ["2024-12-01T00:00:00-05:00"])
        #expect(try await starts("Asia/Tokyo") == ["2024-12-01T00:00:00+09:00", "2024-12-02T00:00:00+09:00"])
        try await hub.stopAndRemove()
    }

    @Test func aScopedTokenSeesItsSitesOnlyAndCSVIsSafeInASpreadsheet() async throws {
        let formula = Self.record(300, site: "=HYPERLINK(\"http://x\",\"y\")", score: 9, at: Self.start)
        let (hub, client) = try await Self.hub(Self.records + [formula])
        let (branch, _) = try OperationsClient.token(in: hub.hub.store, role: .viewer, sites: try SiteScope(["branch-*"]))
        let scoped = try await client.call("GET", "/v1/reports/ratings?from=2024-12-01&to=2024-12-02&groupBy=site", token: branch)
        #expect((scoped.json["groups"] as? [[String: Any]])?.compactMap { ($0["key"] as? [String: String])?["site"] } == ["branch-1"])
        #expect(((scoped.json["total"] as? [String: Any])?["current"] as? [String: Any])?["responses"] as? Int == 12)

        let (viewer, _) = try OperationsClient.token(in: hub.hub.store, role: .viewer)
        let csv = try await client.call("GET", "/v1/reports/ratings?from=2024-12-01&to=2024-12-02&groupBy=site&format=csv", token: viewer)
        #expect(csv.status == 200 && csv.headers["content-type"]?.hasPrefix("text/csv") == true)
        let lines = csv.body.components(separatedBy: "\r\n").filter { !$0.isEmpty }
        #expect(lines.first?.hasPrefix("site,bucket,responses,misuse,nps,nps_low,nps_high,promoters") == true)
        #expect(lines.count == 4, "a header and three sites: \(lines)")
        #expect(lines.contains { $0.hasPrefix(#""'=HYPERLINK(""http://x"",""y"")","#) }, "quoted, and prefixed so it is not run")
        #expect(lines.contains { $0.hasPrefix("branch-1,,12,1,") })
        try await hub.stopAndRemove()
    }

    @Test func aBadQueryIsRefusedNamingTheParameter() async throws {
        let (hub, client) = try await Self.hub(Self.records)
        let (viewer, _) = try OperationsClient.token(in: hub.hub.store, role: .viewer)
        let bad: [(String, String)] = [
            ("tz=Mars/Base", "tz"), ("groupBy=site,site", "groupBy"), ("groupBy=customer", "groupBy"), ("bucket=year", "bucket"),
            ("from=2024-12-02&to=2024-12-01", "from"), ("from=2024-13-01", "from"), ("to=yesterday", "to"), ("source=fax", "source"),
            ("format=xml", "format"), ("colour=red", "colour"), ("from=2019-01-01&to=2024-01-01", "from"),
        ]
        for (query, field) in bad {
            let answer = try await client.call("GET", "/v1/reports/ratings?\(query)", token: viewer)
            let error = answer.json["error"] as? [String: Any]
            #expect(answer.status == 400 && error?["field"] as? String == field, "\(query): \(answer.body)")
        }
        #expect(try await client.call("GET", "/v1/reports/ratings", token: nil).status == 401)
        #expect(try await client.call("GET", "/v1/reports/ratings", token: viewer).status == 200, "the last seven days by default")
        try await hub.stopAndRemove()
    }

    @Test func aManagerPagesThroughASitesNegativeRatingsNewestFirst() async throws {
        let (hub, client) = try await Self.hub(Self.records)
        let (manager, _) = try OperationsClient.token(in: hub.hub.store, role: .manager, sites: try SiteScope(["branch-*"]))
        let (viewer, _) = try OperationsClient.token(in: hub.hub.store, role: .viewer)
        // branch-1's negatives that day: 3 and 0 at 11:00, 2, 2, 3, 4, 6 at 09:00, and the
        // misuse press (smiley 1) at 10:01.
        var seen: [[String: Any]] = []
        var path = "/v1/ratings?site=branch-1&negative=true&from=2024-12-01&to=2024-12-02&limit=3"
        for _ in 0..<5 {
            let page = try await client.call("GET", path, token: manager)
            #expect(page.status == 200, "\(page.body)")
            seen += (page.json["ratings"] as? [[String: Any]]) ?? []
            guard let next = page.json["next"] as? String else { break }
            path = "/v1/ratings?site=branch-1&negative=true&from=2024-12-01&to=2024-12-02&limit=3&after=\(next)"
        }
        #expect(seen.count == 8 && Set(seen.compactMap { $0["id"] as? String }).count == 8, "every one once across pages")
        let times = seen.compactMap { ($0["occurredAt"] as? NSNumber)?.int64Value }
        #expect(times.count == 8 && times == times.sorted(by: >), "newest first")
        #expect(seen.allSatisfy { $0["negative"] as? Bool == true && $0["site"] as? String == "branch-1" && $0["customer"] is String })
        let asViewer = try await client.call("GET", "/v1/ratings?site=branch-1&from=2024-12-01&to=2024-12-02", token: viewer)
        let listed = (asViewer.json["ratings"] as? [[String: Any]]) ?? []
        #expect(listed.count == 13 && listed.allSatisfy { $0["customer"] == nil }, "customer ids are for managers")
        let outside = try await client.call("GET", "/v1/ratings?site=web-eu&from=2024-12-01&to=2024-12-02", token: manager)
        #expect((outside.json["ratings"] as? [Any])?.isEmpty == true, "another site's ratings are not listed")
        for (query, field) in [("negative=yes", "negative"), ("limit=0", "limit"), ("after=abc", "after"), ("customer=x", "customer")] {
            let answer = try await client.call("GET", "/v1/ratings?\(query)", token: viewer)
            #expect(answer.status == 400 && (answer.json["error"] as? [String: Any])?["field"] as? String == field, "\(query)")
        }
        try await hub.stopAndRemove()
    }
}

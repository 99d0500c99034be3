import Foundation
import Hub
import TestSupport
import Testing
import Wire

/// The rules file: what it accepts, and for each mistake a message naming the rule (or
/// target or route) and the field.
@Suite struct AlertRulesTests {
    private let targets = """
        targets:
          boss: {url: "http://127.0.0.1:9/boss", secret: "whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQ="}
          slack: {kind: slack, url: "https://hooks.example/T1"}
        """

    private func parse(_ yaml: String) throws -> AlertRules {
        try AlertRules.parse(yaml: yaml, path: "alerts.yaml")
    }

    private func failure(_ yaml: String) -> String {
        do {
            _ = try self.parse(yaml)
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    @Test func aFullFileReadsWithDefaultsFilledIn() throws {
        let rules = try self.parse(
            self.targets + """

                routes:
                  - {site: branch-042, target: boss}
                  - {target: slack}
                rules:
                  - name: detractor
                    scale: nps
                    sources: [popup, call]
                    acknowledgeWithin: 15m
                    escalate: [slack]
                  - name: unhappy
                    scale: csat
                    scores: 1-3
                    notify: [boss, route]
                  - name: wave
                    scale: smiley
                    window: {per: subject, share: 40, minResponses: 20, minutes: 15}
                delivery: {maxAttempts: 5, firstRetry: 2s, maxRetry: 10m}
                """
        )
        let detractor = try #require(rules.rule(named: "detractor"))
        #expect(detractor.scores == 0...6)
        #expect(detractor.notify == ["route"])
        #expect(detractor.acknowledgeWithinMilliseconds == 900_000)
        #expect(detractor.filter.sources == [.popup, .call])
        #expect(rules.rule(named: "unhappy")?.scores == 1...3)
        let window = try #require(rules.rule(named: "wave")?.window)
        #expect(window.per == .subject && window.sharePercent == 40 && window.minResponses == 20 && window.periodMilliseconds == 900_000)
        #expect(rules.targets["boss"]?.secret == Array(UInt8(1)...UInt8(20)))
        #expect(rules.delivery.maxAttempts == 5 && rules.delivery.firstRetryMilliseconds == 2_000)
        // Routing: the site's manager, else the default.
        #expect(rules.targets(of: detractor, site: "branch-042", subject: "") == ["boss"])
        #expect(rules.targets(of: detractor, site: "branch-007", subject: "") == ["slack"])
        #expect(rules.targets(of: try #require(rules.rule(named: "unhappy")), site: "branch-042", subject: "") == ["boss"], "no repeats")
    }

    @Test func routesAndFiltersCompareSitesByTheirBytes() throws {
        // "Åland" written precomposed in the rules, decomposed (A + combining ring) in a record:
        // equal as Swift strings, different sites to the store and to site scopes.
        let rules = try self.parse(
            self.targets + """

                routes:
                  - {site: "\u{C5}land", target: boss}
                  - {target: slack}
                rules:
                  - {name: detractor, scale: nps, sites: ["\u{C5}land"]}
                """
        )
        let detractor = try #require(rules.rule(named: "detractor"))
        #expect(rules.targets(of: detractor, site: "\u{C5}land", subject: "") == ["boss"])
        #expect(rules.targets(of: detractor, site: "A\u{30A}land", subject: "") == ["slack"])
        var record = Samples.popupRecord()
        record.scale = .nps
        record.score = 2
        record.site = "\u{C5}land"
        #expect(detractor.filter.matches(record))
        record.site = "A\u{30A}land"
        #expect(!detractor.filter.matches(record))
    }

    @Test func defaultNegativeScoresPerScale() {
        #expect(AlertRules.defaultScores(.nps) == 0...6)
        #expect(AlertRules.defaultScores(.csat) == 1...2)
        #expect(AlertRules.defaultScores(.ces) == 1...3)
        #expect(AlertRules.defaultScores(.smiley) == 1...2)
        #expect(AlertRules.defaultScores(.binary) == 0...0)
    }

    @Test func aRatingFlaggedAsMisuseNeverCounts() throws {
        let rules = try self.parse(self.targets + "\nrules:\n  - {name: red, scale: smiley, notify: [boss]}\n")
        let rule = try #require(rules.rules.first)
        var record = Samples.kioskRecord(0)
        #expect(rule.considers(record) && rule.isNegative(record))
        record.attributes["misuse"] = "true"
        #expect(!rule.considers(record))
    }

    @Test(arguments: [
        ("rules:\n  - {name: r, scale: npx}", "rule \"r\": field \"scale\": unknown scale \"npx\""),
        ("rules:\n  - {name: r, scale: nps, scores: 3-12}", "rule \"r\": field \"scores\""),
        ("rules:\n  - {name: r, scale: nps, notify: [nobody]}", "rule \"r\": field \"notify\": no target is named \"nobody\""),
        ("rules:\n  - {name: r, scale: nps, escalate: [boss]}", "rule \"r\": field \"acknowledgeWithin\": is required"),
        ("rules:\n  - {name: r, scale: nps, acknowledgeWithin: soon}", "rule \"r\": field \"acknowledgeWithin\": must be a duration"),
        ("rules:\n  - {name: r, scale: nps, sources: [fax]}", "rule \"r\": field \"sources\": unknown source \"fax\""),
        ("rules:\n  - {name: r, scale: nps, colour: red}", "unknown setting \"rules[1].colour\"; known there: acknowledgeWithin, channels"),
        ("rules:\n  - {scale: nps}", "rule 1: field \"name\": is missing"),
        ("rules:\n  - {name: r, scale: nps}\n  - {name: r, scale: csat}", "rule \"r\": field \"name\": is used by an earlier rule"),
        ("rules:\n  - {name: w, scale: smiley, window: {share: 140, minResponses: 5, minutes: 15}}", "rule \"w\": field \"window.share\""),
        ("rules:\n  - {name: w, scale: smiley, window: {per: till, share: 40, minResponses: 5, minutes: 15}}", "field \"window.per\""),
        ("routes:\n  - {site: a, target: nobody}", "route 1: field \"target\": no target is named \"nobody\""),
        ("delivery: {maxAttempts: 0}", "delivery: field \"maxAttempts\""),
    ])
    func eachMistakeNamesItsRuleAndField(yaml: String, expected: String) {
        let message = self.failure(self.targets + "\n" + yaml + "\n")
        #expect(message.contains(expected), "\(message)")
        #expect(message.hasPrefix("alert rules alerts.yaml:"))
    }

    @Test func targetMistakesNameTheTarget() {
        #expect(self.failure("targets:\n  t: {url: \"ftp://x\"}").contains("target \"t\": field \"url\""))
        #expect(self.failure("targets:\n  t: {url: \"http://x\", secret: \"hunter2\"}").contains("target \"t\": field \"secret\""))
        #expect(self.failure("targets:\n  t: {kind: pager, url: \"http://x\"}").contains("target \"t\": field \"kind\""))
        #expect(self.failure("targets:\n  route: {url: \"http://x\"}").contains("reserved"))
    }

    @Test func theExampleThatInitWritesIsValid() throws {
        let rules = try AlertRules.parse(yaml: AlertRules.example, path: "alerts.example.yaml")
        #expect(rules.rules.map(\.name) == ["detractor", "kiosk-red-wave", "kiosk-silent"])
        #expect(rules.rule(named: "kiosk-silent")?.silentForMilliseconds == Int64(30 * 60_000))
        #expect(rules.targets.count == 3 && rules.routes.count == 2)
    }
}

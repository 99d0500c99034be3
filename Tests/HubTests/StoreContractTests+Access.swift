import Foundation
import Hub
import TestSupport
import Testing
import Wire

/// What every store promises about API tokens, the audit trail and site-scoped alert lists.
extension StoreContractTests {
    @Test(arguments: TestStores.Kind.allCases)
    func aTokenIsFoundByItsSecretsHashOnlyAndRevokedOnceWithItsAuditEntries(_ kind: TestStores.Kind) throws {
        let opened = try TestStores.open(kind)
        defer { opened.remove() }
        let store = opened.store
        let secret = APIToken.newSecret()
        let token = APIToken(id: UUID(), name: "Anna, branch 42", role: .manager, sites: try SiteScope(["branch-42", "kiosk-*"]), createdAt: 1_000, expiresAt: 9_000)
        let anna = AuditActor(tokenID: nil, name: "cli:root")
        try store.addAPIToken(token, hash: SecretToken.hash(secret), by: anna)
        #expect(try store.apiToken(hash: SecretToken.hash(secret)) == token)
        #expect(try store.apiToken(hash: SecretToken.hash(APIToken.newSecret())) == nil)
        #expect(try store.apiToken(hash: Array(secret.utf8)) == nil, "the secret itself is not what is stored")
        #expect(throws: StoreError.self) { try store.addAPIToken(token, hash: SecretToken.hash(APIToken.newSecret()), by: anna) }
        #expect(try store.apiTokens() == [token])

        #expect(try store.revokeAPIToken(token.id, at: 5_000, by: anna))
        #expect(try store.revokeAPIToken(token.id, at: 6_000, by: anna), "revoking again is not an error")
        #expect(try !store.revokeAPIToken(UUID(), at: 6_000, by: anna))
        let revoked = try #require(try store.apiToken(hash: SecretToken.hash(secret)))
        #expect(revoked.revokedAt == 5_000 && !revoked.isValid(at: 5_001))
        #expect(token.isValid(at: 8_999) && !token.isValid(at: 9_000), "expiry is exclusive")

        let trail = try store.auditTrail(object: token.id, limit: 10)
        #expect(trail.map(\.action) == ["token.revoked", "token.added"], "newest first, the second revocation not entered")
        #expect(trail.allSatisfy { $0.actor == anna && $0.object == token.id })
        #expect(trail[1].to == "manager" && trail[0].from == "manager" && trail[0].to == "revoked" && trail[0].at == 5_000)
        #expect(trail[1].note == "Anna, branch 42; sites branch-42, kiosk-*; expires at 9000", "what the token was allowed")
        #expect(try store.auditTrail(object: UUID(), limit: 10).isEmpty)
    }

    @Test(arguments: TestStores.Kind.allCases)
    func anAlertChangeEntersTheAuditTrailInItsTransactionAndAListKeepsToAScope(_ kind: TestStores.Kind) throws {
        let opened = try TestStores.open(kind, alerts: try Self.rules())
        defer { opened.remove() }
        let store = opened.store
        // Sites holding the specials of GLOB and LIKE, alone and followed by a combining mark
        // (one Character, two scalars), and letters in both cases.
        let sites = [
            "branch-1", "branch-10", "Branch-2", "a_b", "axb", "a%b", "a?b", "a[b]", "ab", "kiosk*7", "web-eu", "ax\u{301}", "a?\u{301}",
            "a[\u{301}b", "a%\u{301}b", "a_\u{301}b",
        ]
        _ = try store.commit([Self.batch(1, sites.enumerated().map { index, site in
            var record = Self.detractor(index)
            record.site = site
            return record
        })])
        #expect(try store.alerts(status: nil, site: nil, within: .any, overdueAt: nil, limit: 100).count == sites.count)
        let scopes: [[String]] = [
            ["branch-*"], ["a_b"], ["a%b"], ["a?b"], ["a[b]"], ["a*b"], ["*b"], ["kiosk*7"], ["branch-1", "web-*"], ["B*"], ["nowhere"], ["*"],
            ["**"], ["a?\u{301}"], ["a[\u{301}*"], ["a%\u{301}*"], ["a_\u{301}b"], ["a*\u{301}*"], ["*\u{301}"],
        ]
        for patterns in scopes {
            let scope = try SiteScope(patterns)
            let listed = try store.alerts(status: nil, site: nil, within: scope, overdueAt: nil, limit: 100).map(\.site).sorted()
            #expect(listed == sites.filter(scope.allows).sorted(), "scope \(patterns)")
        }
        #expect(try store.alerts(status: nil, site: "web-eu", within: try SiteScope(["branch-*"]), overdueAt: nil, limit: 100).isEmpty)

        let alert = try #require(try store.alerts(status: nil, site: "a_b", within: .any, overdueAt: nil, limit: 1).first)
        let maria = AuditActor(tokenID: UUID(), name: "Maria")
        #expect(try store.change(alert.id, CaseChange(.status(.inProgress), note: "calling"), by: maria, at: 10) == .success(try #require(try store.alert(alert.id))))
        _ = try store.change(alert.id, CaseChange(.status(.inProgress), note: "again"), by: maria, at: 11)
        _ = try store.change(alert.id, CaseChange(.status(.cancelled), note: "test rating"), by: .commandLine, at: 12)
        let trail = try store.auditTrail(object: alert.id, limit: 10)
        #expect(trail.map(\.action) == ["case.cancelled", "case.inProgress"], "a refused change is not entered")
        #expect(trail[1].actor == maria && trail[1].from == "open" && trail[1].to == "inProgress" && trail[1].note == "calling" && trail[1].at == 10)
        #expect(trail[0].actor.tokenID == nil && trail[0].actor.name.hasPrefix("cli:") && trail[0].from == "inProgress" && trail[0].note == "test rating")
        #expect(try store.auditTrail(object: nil, limit: 1).map(\.action) == ["case.cancelled"])
    }
}

extension StoreContractTests {
    @Test(arguments: TestStores.Kind.allCases)
    func aSessionStandsForItsTokenUntilItEndsAndATokenKeepsItsNewestTwenty(_ kind: TestStores.Kind) throws {
        let opened = try TestStores.open(kind)
        defer { opened.remove() }
        let store = opened.store
        let (_, token) = try OperationsClient.token(in: store, role: .manager)
        let hashes = (0..<(APIToken.maxSessions + 1)).map { SecretToken.hash("session \($0)") }
        for (index, hash) in hashes.enumerated() {
            try store.addSession(hash: hash, token: token.id, createdAt: 1_000 + Int64(index), expiresAt: 100_000)
        }
        #expect(try store.session(hash: hashes[0], at: 2_000) == nil, "the oldest beyond twenty ended")
        let found = try #require(try store.session(hash: hashes[1], at: 2_000))
        #expect(found.token == token && found.expiresAt == 100_000)
        #expect(try store.session(hash: hashes[1], at: 100_000) == nil, "ended at its time")
        try store.removeSession(hash: hashes[2])
        #expect(try store.session(hash: hashes[2], at: 2_000) == nil, "signed out")
        #expect(try store.session(hash: SecretToken.hash("never made"), at: 2_000) == nil)
        // A new session clears the expired ones.
        try store.addSession(hash: SecretToken.hash("later"), token: token.id, createdAt: 200_000, expiresAt: 300_000)
        #expect(try store.session(hash: hashes[3], at: 50_000) == nil)
    }
}

import Agent
import Foundation
import GRDB
@testable import Hub
import TestSupport
import Testing
import Wire

/// A node reports only for the sites its enrollment allows, whoever forwards its batches.
@Suite(.serialized) struct SiteBindingTests {
    private func seal(_ identity: AgentIdentity, sites: [String], sequence: UInt64) throws -> SealedBatch {
        var factory = RecordFactory(origin: identity.nodeID)
        var records = factory.records(sites.count)
        for index in records.indices { records[index].site = sites[index] }
        return try BatchSealer(origin: identity.nodeID, signingKey: identity.signingKey).seal(records, sequence: sequence)
    }

    private func rejectCode(_ result: BatchResult) -> (RejectCode, Reject.Disposition)? {
        guard case .rejected(let reject) = result else { return nil }
        return (reject.code, reject.disposition)
    }

    private func storedSites(_ hub: HubHarness) throws -> [String] {
        try hub.hub.sqlite.read { db in try String.fetchAll(db, sql: "SELECT site FROM records ORDER BY site") }
    }

    @Test func anAgentEnrolledForOneSiteCannotReportForAnother() async throws {
        let hub = try await HubHarness.start()
        let token = EnrollmentToken.generate()
        try hub.hub.store.addEnrollmentToken(
            hash: NodeRegistry.tokenHash(token), sites: try SiteScope(["site-a"]), role: .agent, createdAt: 0, expiresAt: .max
        )
        let kiosk = AgentIdentity.generate()
        let connection = try await hub.connect(kiosk, token: token)
        #expect(hub.hub.registry.node(kiosk.nodeID)?.sites == (try SiteScope(["site-a"])))

        // One record of another site spoils the batch: refused whole, permanent, nothing stored.
        let mixed = try await connection.send(try self.seal(kiosk, sites: ["site-a", "site-b"], sequence: 1)).get()
        #expect(self.rejectCode(mixed)?.0 == .siteNotAllowed)
        #expect(self.rejectCode(mixed)?.1 == .permanent)
        let own = try await connection.send(try self.seal(kiosk, sites: ["site-a", "site-a"], sequence: 2)).get()
        #expect(own == .acknowledged(Ack(origin: kiosk.nodeID, sequence: 2, status: .stored, storedRecords: 2)))
        // A record without a site is outside a named scope too.
        #expect(self.rejectCode(try await connection.send(try self.seal(kiosk, sites: [""], sequence: 3)).get())?.0 == .siteNotAllowed)
        #expect(try self.storedSites(hub) == ["site-a", "site-a"])

        // The operator widens the scope; the running hub applies it within its registry refresh.
        #expect(try hub.hub.store.setSites(try SiteScope(["site-a", "site-b"]), of: kiosk.nodeID))
        // (Bounded generously: a loaded test process may run the hub's refresh late.)
        #expect(await eventually(seconds: 30) { hub.hub.registry.node(kiosk.nodeID)?.sites.allows("site-b") == true })
        let widened = try await connection.send(try self.seal(kiosk, sites: ["site-b"], sequence: 4)).get()
        #expect(widened == .acknowledged(Ack(origin: kiosk.nodeID, sequence: 4, status: .stored, storedRecords: 1)))
        await connection.close()
        try await hub.stopAndRemove()
    }

    @Test func aBackendMayReportForAPatternOfSites() async throws {
        let hub = try await HubHarness.start()
        let backend = AgentIdentity.generate()
        try hub.register(backend, sites: try SiteScope(["branch-*", "web-eu"]))
        let connection = try await hub.connect(backend)
        let inside = try await connection.send(try self.seal(backend, sites: ["branch-1", "branch-77", "web-eu"], sequence: 1)).get()
        #expect(inside == .acknowledged(Ack(origin: backend.nodeID, sequence: 1, status: .stored, storedRecords: 3)))
        let outside = try await connection.send(try self.seal(backend, sites: ["branch-2", "web-us"], sequence: 2)).get()
        #expect(self.rejectCode(outside)?.0 == .siteNotAllowed)
        await connection.close()
        try await hub.stopAndRemove()
    }

    @Test func aRelaysForwardedBatchesAreCheckedAgainstTheOriginsSites() async throws {
        let hub = try await HubHarness.start()
        let kiosk = AgentIdentity.generate()
        try hub.register(kiosk, sites: try SiteScope(["site-a"]))
        let relay = AgentIdentity.generate()
        try hub.register(relay, role: .relay, sites: try SiteScope(["hq"]))
        let relayed = try await hub.connect(relay, role: .relay)
        // The relay's own scope neither widens nor narrows what the origin may report.
        let forged = try await relayed.send(try self.seal(kiosk, sites: ["hq"], sequence: 1)).get()
        #expect(self.rejectCode(forged)?.0 == .siteNotAllowed)
        let forwarded = try await relayed.send(try self.seal(kiosk, sites: ["site-a"], sequence: 2)).get()
        #expect(forwarded == .acknowledged(Ack(origin: kiosk.nodeID, sequence: 2, status: .stored, storedRecords: 1)))
        await relayed.close()
        try await hub.stopAndRemove()
    }

    @Test func upgradingAStoreBindsNamedNodesAndLeavesUnnamedOnesOpen() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("scopes-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("feedback.sqlite").path
        let named = UUID()
        let unnamed = UUID()
        let garbled = UUID()
        do {
            // The store as the previous release left it: nodes and tokens with one `site`.
            let queue = try DatabaseQueue(path: path)
            try SQLiteSchema.migrator.migrate(queue, upTo: "v2-alerts")
            try queue.write { db in
                // An old free-text site no record can name (over the 64-byte limit) stays listed
                // and reports for nothing rather than vanishing from the registry.
                for (node, site) in [(named, "branch-042"), (unnamed, ""), (garbled, String(repeating: "x", count: 80))] {
                    try db.execute(
                        sql: "INSERT INTO nodes (node_id, public_key, key_id, role, site, created_at) VALUES (?, ?, 1, 1, ?, 0)",
                        arguments: [node, Data(repeating: 7, count: 32), site]
                    )
                }
                try db.execute(
                    sql: "INSERT INTO enrollment_tokens (token_hash, site, role, created_at, expires_at) VALUES (?, 'web-eu', 1, 0, 1)",
                    arguments: [Data(repeating: 1, count: 32)]
                )
            }
        }
        let store = try SQLiteStore(path: path)
        let nodes = Dictionary(uniqueKeysWithValues: try store.nodes().map { ($0.nodeID, $0.sites) })
        #expect(nodes[named] == (try SiteScope(["branch-042"])))
        #expect(nodes[unnamed] == .any)
        #expect(nodes[garbled] == SiteScope.none)
        #expect(nodes[garbled]?.allows(String(repeating: "x", count: 80)) == false)
        let tokenSites = try store.read { db in try String.fetchOne(db, sql: "SELECT sites FROM enrollment_tokens") }
        #expect(tokenSites == "web-eu")
    }
}

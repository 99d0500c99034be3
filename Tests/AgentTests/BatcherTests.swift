import Agent
import AgentBench
import Foundation
import Logging
import Testing
import Wire

/// The batcher against a real spool: whatever was captured gets sealed into batches a hub
/// accepts, even records that compress too well or too many bytes for one batch.
@Suite struct BatcherTests {
    @Test func recordsThatCompressTooWellAreStillSealedInBatchesAHubAccepts() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("batcher-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var configuration = Spool.Configuration(directory: folder)
        configuration.fsync = .never
        let spool = try Spool(configuration: configuration)
        defer { spool.close() }
        let identity = AgentIdentity.generate()
        var ratings = SyntheticRatings(origin: identity.nodeID)
        // 2,500 records of 7 KB each: about 17 MB, more than one batch may hold stored,
        // and so repetitive that compressed they would look like a zstd bomb.
        let records = ratings.next(2_500).map { record in
            var record = record
            record.comment = String(repeating: "x", count: 2_000)
            record.customer = String(repeating: "c", count: 128)
            record.attributes = Dictionary(uniqueKeysWithValues: (0..<16).map { key in
                (String(format: "attribute-%02d", key).padding(toLength: 32, withPad: "k", startingAt: 0), String(repeating: "v", count: 255))
            })
            return record
        }
        try await spool.append(records)
        var batching = Batcher.Configuration()
        batching.maxRecords = 10_000
        batching.maxBytes = 64 << 20
        let batcher = Batcher(spool: spool, identity: identity, configuration: batching, logger: Logger(label: "test")) {}
        await batcher.sealAll()

        #expect(spool.stats.unsealedRecords == 0, "nothing stalls unsealed")
        let batches = spool.unacknowledged()
        #expect(batches.count >= 3)
        var opened: [FeedbackRecord] = []
        for batch in batches {
            try batch.header.check(BatchLimits())
            opened += try batch.open(verifyingWith: identity.signingKey.publicKey, limits: BatchLimits(), decompressor: ZstdDecompressor())
        }
        #expect(opened.map(\.id) == records.map(\.id))
    }
}

import Agent
import AgentBench
import Foundation
import Logging
import Synchronization
import TestSupport
import Testing
import Wire

/// The batcher against a real spool: whatever was captured gets sealed into batches a hub
/// accepts, even records that compress too well or too many bytes for one batch.
@Suite struct BatcherTests {
    /// Runs `body` with a new spool (no fsync) in a folder removed afterwards, and an identity.
    private func withSpool(_ body: (Spool, AgentIdentity, inout SyntheticRatings) async throws -> Void) async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("batcher-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var configuration = Spool.Configuration(directory: folder)
        configuration.fsync = .never
        let spool = try Spool(configuration: configuration)
        defer { spool.close() }
        let identity = AgentIdentity.generate()
        var ratings = SyntheticRatings(origin: identity.nodeID)
        try await body(spool, identity, &ratings)
    }

    @Test func recordsThatCompressTooWellAreStillSealedInBatchesAHubAccepts() async throws {
        try await self.withSpool { spool, identity, ratings in
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
            let batches = spool.unacknowledged().map(\.batch)
            #expect(batches.count >= 3)
            var opened: [FeedbackRecord] = []
            for batch in batches {
                try batch.header.check(BatchLimits())
                opened += try batch.open(verifyingWith: identity.signingKey.publicKey, limits: BatchLimits(), decompressor: ZstdDecompressor())
            }
            #expect(opened.map(\.id) == records.map(\.id))
        }
    }

    @Test func withoutAHubOnlyFullBatchesAreSealedAndTheRestWaitsForOne() async throws {
        try await self.withSpool { spool, identity, ratings in
            // Captured a minute ago: older than any maxAge.
            let records = ratings.next(250).map { record in
                var record = record
                record.capturedAt = Int64(Date().timeIntervalSince1970 * 1000) - 60_000
                return record
            }
            try await spool.append(records)
            var batching = Batcher.Configuration()
            batching.maxRecords = 100
            batching.maxAge = .milliseconds(1)
            let connected = Mutex(false)
            let batcher = Batcher(
                spool: spool, identity: identity, configuration: batching, logger: Logger(label: "test"),
                sealsByAge: { connected.withLock { $0 } }
            ) {}
            let running = Task { await batcher.run() }
            defer { running.cancel() }
            batcher.notify()
            // Generous: a CI machine starting every suite at once can stall tasks for seconds.
            #expect(await eventually(seconds: 30) { spool.stats.unacknowledgedBatches == 2 }, "the two full batches are sealed")
            try await Task.sleep(for: .milliseconds(200))
            #expect(spool.stats.unsealedRecords == 50, "the partial batch waits for a hub")
            connected.withLock { $0 = true }
            #expect(await eventually(seconds: 30) { spool.stats.unsealedRecords == 0 }, "and is sealed once one is connected")
            #expect(spool.stats.unacknowledgedBatches == 3)
        }
    }

    @Test func aNegativeRatingIsSealedAtOnceWithWhatWaitsBeforeIt() async throws {
        try await self.withSpool { spool, identity, ratings in
            var batching = Batcher.Configuration()
            batching.maxAge = .seconds(3_600)
            let connected = Mutex(true)
            let batcher = Batcher(
                spool: spool, identity: identity, configuration: batching, logger: Logger(label: "test"),
                sealsByAge: { connected.withLock { $0 } }
            ) {}
            let running = Task { await batcher.run() }
            defer { running.cancel() }
            var calm = ratings.next(3)
            for index in calm.indices {
                calm[index].scale = .nps
                calm[index].score = 9
            }
            try await spool.append(calm)
            batcher.notify()
            try await Task.sleep(for: .milliseconds(300))
            #expect(spool.stats.unsealedRecords == 3 && spool.stats.unacknowledgedBatches == 0, "calm ratings wait for the batch age")

            var detractor = ratings.next(1)[0]
            detractor.scale = .nps
            detractor.score = 2
            try await spool.append(detractor)
            batcher.notify()
            #expect(await eventually(seconds: 30) { spool.stats.unacknowledgedBatches == 1 }, "a detractor is sealed at once")
            #expect(spool.stats.unsealedRecords == 0)
            let batch = try #require(spool.unacknowledged().first?.batch)
            let opened = try batch.open(verifyingWith: identity.signingKey.publicKey, limits: BatchLimits(), decompressor: ZstdDecompressor())
            #expect(opened.map(\.id) == calm.map(\.id) + [detractor.id], "with the ratings before it, in order")

            // Without a hub, nothing is sealed early: the outage's backlog stays in large batches.
            connected.withLock { $0 = false }
            var later = ratings.next(3)
            later[2].scale = .nps
            later[2].score = 0
            try await spool.append(later)
            batcher.notify()
            try await Task.sleep(for: .milliseconds(300))
            #expect(spool.stats.unsealedRecords == 3 && spool.stats.unacknowledgedBatches == 1)
        }
    }
}


import Agent
import AgentBench
import Foundation
import Testing
import Wire

/// A relay's spool: other nodes' sealed batches held byte for byte with their hop paths,
/// sent upstream in arrival order with the spool's own, settled on acknowledgement.
extension SpoolTests {
    /// Sealed batches of another node (a kiosk behind a relay), numbered from `sequence`.
    struct Downstream {
        let identity = AgentIdentity.generate()
        var ratings: SyntheticRatings
        var origin: UUID { self.identity.nodeID }

        init() {
            self.ratings = SyntheticRatings(origin: self.identity.nodeID)
        }

        mutating func batch(_ sequence: UInt64, records: Int = 5) throws -> SealedBatch {
            try BatchSealer(origin: self.origin, signingKey: self.identity.signingKey).seal(self.ratings.next(records), sequence: sequence)
        }
    }

    @Test func heldBatchesSurviveReopeningInArrivalOrderWithTheirPathsAndLeaveOnAcknowledgement() async throws {
        let folder = self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var kiosk = Downstream()
        var spool = try self.open(folder)
        try await spool.append(self.records(10))
        let own1 = try await self.seal(spool, 5)
        let first = SpoolBatch(batch: try kiosk.batch(41), path: [UUID(), UUID()])
        #expect(try await spool.hold(first.batch, path: first.path) == .held)
        let own2 = try await self.seal(spool, 5)
        let second = SpoolBatch(batch: try kiosk.batch(42, records: 7), path: [])
        #expect(try await spool.hold(second.batch, path: second.path) == .held)
        let arrived = [SpoolBatch(batch: own1), first, SpoolBatch(batch: own2), second]
        #expect(spool.unacknowledged() == arrived)
        #expect(spool.stats.unacknowledgedBatches == 4)
        #expect(spool.stats.unacknowledgedRecords == 22)
        spool.close()

        spool = try self.open(folder)
        #expect(spool.unacknowledged() == arrived, "paths and bytes as held, in arrival order")
        #expect(spool.stats.unacknowledgedRecords == 22)
        #expect(spool.highestHeld(origin: kiosk.origin) == 42)
        #expect(spool.highestHeld(origin: UUID()) == nil)
        #expect(spool.nextSequence == 3, "another node's sequences do not move this node's")
        try spool.acknowledged(first.key)
        #expect(spool.unacknowledged() == [arrived[0], arrived[2], arrived[3]])
        spool.close()

        spool = try self.open(folder)
        #expect(spool.unacknowledged() == [arrived[0], arrived[2], arrived[3]], "a settled batch stays settled")
        try spool.acknowledged(second.key)
        try spool.acknowledged(own1.key)
        spool.close()

        spool = try self.open(folder)
        #expect(spool.unacknowledged() == [arrived[2]])
        #expect(spool.stats.unacknowledgedRecords == 5)
        #expect(spool.highestHeld(origin: kiosk.origin) == 42, "rebuilt from the entries still on disk")
        spool.close()
    }

    @Test func holdingABatchTwiceAnswersDuplicateAndWritesNothingUntilItIsSettled() async throws {
        let folder = self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var kiosk = Downstream()
        var spool = try self.open(folder)
        let batch = try kiosk.batch(1)
        #expect(try await spool.hold(batch, path: []) == .held)
        let bytes = spool.stats.bytes
        #expect(try await spool.hold(batch, path: [UUID()]) == .duplicate, "by key, whichever way it came")
        #expect(spool.stats.bytes == bytes, "nothing written")
        #expect(spool.unacknowledged().count == 1)

        try spool.acknowledged(batch.key)
        #expect(try await spool.hold(batch, path: []) == .held, "settled upstream: taken again, the hub answers duplicate")
        spool.close()
        spool = try self.open(folder)
        #expect(spool.unacknowledged() == [SpoolBatch(batch: batch)])
        #expect(try await spool.hold(batch, path: []) == .duplicate, "also after reopening")
        spool.close()
    }

    @Test func aHopPathLongerThanTheLimitIsRefused() async throws {
        let folder = self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var kiosk = Downstream()
        let spool = try self.open(folder)
        let path = (0..<Spool.maxPathLength).map { _ in UUID() }
        #expect(try await spool.hold(try kiosk.batch(1), path: path) == .held)
        do {
            _ = try await spool.hold(try kiosk.batch(2), path: path + [UUID()])
            Issue.record("a path too long to pass on was taken")
        } catch let error as SpoolError {
            #expect(error.code == .invalidBatch)
            #expect(error.message.contains("\(Spool.maxPathLength + 1) relays"))
        }
        #expect(spool.unacknowledged().map(\.path) == [path])
        spool.close()
    }

    @Test func holdingPastTheQuotaAnswersFullAndTheSpoolStillSealsAndAcknowledgesItsOwn() async throws {
        let folder = self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var kiosk = Downstream()
        let spool = try self.open(folder) {
            $0.quotaBytes = 48 << 10
            $0.reserveBytes = 4 << 10
        }
        try await spool.append(self.records(40))
        var held = 0
        var sequence: UInt64 = 1
        while true {
            let batch = try kiosk.batch(sequence, records: 20)
            // The entry: prefix, hop count, one hop, the batch.
            let entry = 9 + 1 + 16 + batch.bytes.readableBytes
            let room = spool.room
            let bytes = spool.stats.bytes
            let outcome = try await spool.hold(batch, path: [UUID()])
            if outcome == .full {
                #expect(room < entry, "refused only when it does not fit")
                #expect(spool.stats.bytes == bytes, "nothing written")
                break
            }
            #expect(outcome == .held)
            #expect(room >= entry)
            held += 1
            sequence += 1
            try #require(held < 1_000)
        }
        #expect(held >= 3)
        #expect(spool.stats.unacknowledgedBatches == held)
        #expect(spool.highestHeld(origin: kiosk.origin) == sequence - 1, "a refused batch is not held")

        // The relay's own ratings: already taken ones are sealed and acknowledged, and the
        // room kept for them stays within the quota.
        let own = try await self.seal(spool, 40)
        try spool.acknowledged(own.key)
        #expect(spool.stats.bytes <= spool.configuration.quotaBytes)
        try await spool.append(self.records(1, from: 40))
        #expect(spool.stats.unsealedRecords == 1)
        #expect(spool.unacknowledged().count == held)
        spool.close()
    }

    @Test func aDrainedRelaySpoolWithASmallQuotaTakesBatchesAgain() async throws {
        // A quota far below one segment: the space settled batches took must come back once
        // everything is forwarded, not when the 8 MiB segment fills (found by faults.sh).
        let folder = self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var kiosk = Downstream()
        let spool = try self.open(folder) {
            $0.quotaBytes = 8 << 10
            $0.reserveBytes = 0
        }
        var sequence: UInt64 = 1
        var keys: [BatchKey] = []
        while true {
            let batch = try kiosk.batch(sequence, records: 20)
            guard try await spool.hold(batch, path: [UUID()]) == .held else { break }
            keys.append(batch.key)
            sequence += 1
            try #require(keys.count < 1_000)
        }
        #expect(keys.count >= 2)
        for key in keys { try spool.acknowledged(key) }
        #expect(try await spool.hold(try kiosk.batch(sequence, records: 20), path: [UUID()]) == .held, "room came back")
        #expect(spool.stats.bytes < 4 << 10)
    }

    @Test func aTornForwardedEntryAtTheEndIsTruncated() async throws {
        let folder = self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var kiosk = Downstream()
        var spool = try self.open(folder)
        let first = try kiosk.batch(1)
        let second = try kiosk.batch(2)
        #expect(try await spool.hold(first, path: [UUID()]) == .held)
        let before = spool.stats.bytes
        #expect(try await spool.hold(second, path: [UUID()]) == .held)
        let entry = spool.stats.bytes - before
        try #require(entry > 30)
        spool.close()
        // A crash while writing the second: its last 30 bytes never made it.
        let segment = try #require(try self.segmentFiles(folder).last)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: segment))
        try handle.truncate(atOffset: handle.seekToEnd() - 30)
        try handle.close()

        spool = try self.open(folder)
        #expect(spool.recovery.truncatedBytes == entry - 30)
        #expect(spool.recovery.quarantinedSegments.isEmpty)
        #expect(spool.unacknowledged().map(\.batch) == [first])
        #expect(spool.highestHeld(origin: kiosk.origin) == 1)
        #expect(try await spool.hold(second, path: []) == .held, "the downstream node still has it and sends it again")
        spool.close()
    }

    @Test func aDamagedSegmentHoldingForwardedBatchesIsQuarantinedAndTheReadableOnesKept() async throws {
        let folder = self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var kiosk = Downstream()
        // A 1-byte segment size puts every write in a segment of its own.
        var spool = try self.open(folder) { $0.segmentBytes = 1 }
        let held = try (1...3).map { SpoolBatch(batch: try kiosk.batch($0), path: (0..<Int($0)).map { _ in UUID() }) }
        try await spool.append(self.records(4))
        #expect(try await spool.hold(held[0].batch, path: held[0].path) == .held)
        let own = try await self.seal(spool, 4)
        #expect(try await spool.hold(held[1].batch, path: held[1].path) == .held)
        #expect(try await spool.hold(held[2].batch, path: held[2].path) == .held)
        spool.close()
        // Bits rot in the second held batch's segment (not the newest).
        let needle = Data(held[1].batch.bytes.readableBytesView.prefix(64))
        let damaged = try #require(try self.segmentFiles(folder).first { try Data(contentsOf: URL(fileURLWithPath: $0)).firstRange(of: needle) != nil })
        var bytes = try Data(contentsOf: URL(fileURLWithPath: damaged))
        bytes[bytes.count - 3] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: damaged))

        spool = try self.open(folder) { $0.segmentBytes = 1 }
        #expect(spool.recovery.quarantinedSegments.count == 1)
        let kept = [held[0], SpoolBatch(batch: own), held[2]]
        #expect(spool.unacknowledged() == kept, "the readable ones, with their paths, in arrival order")
        spool.close()

        spool = try self.open(folder) { $0.segmentBytes = 1 }
        #expect(spool.recovery.quarantinedSegments.isEmpty)
        #expect(spool.unacknowledged() == kept, "the rewrite holds them")
        #expect(try await spool.hold(held[1].batch, path: held[1].path) == .held, "the lost one is taken again when re-sent")
        try spool.acknowledged(held[0].key)
        spool.close()
        spool = try self.open(folder) { $0.segmentBytes = 1 }
        #expect(spool.unacknowledged() == [kept[1], kept[2], held[1]])
        spool.close()
    }

    @Test func segmentsHoldingOnlySettledForwardedBatchesAreDeleted() async throws {
        let folder = self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var kiosk = Downstream()
        var spool = try self.open(folder) { $0.segmentBytes = 4_096 }
        var batches: [SealedBatch] = []
        for sequence in 1...40 {
            let batch = try kiosk.batch(UInt64(sequence), records: 10)
            #expect(try await spool.hold(batch, path: [UUID()]) == .held)
            batches.append(batch)
        }
        let all = try self.segmentFiles(folder).count
        #expect(all > 5, "\(all) segments")
        for batch in batches.prefix(30) { try spool.acknowledged(batch.key) }
        #expect(spool.stats.unacknowledgedBatches == 10)
        let left = try self.segmentFiles(folder).count
        #expect(left < all, "\(left) of \(all) segments left")
        for batch in batches.suffix(10) { try spool.acknowledged(batch.key) }
        #expect(try self.segmentFiles(folder).count <= 2, "settled segments are deleted")
        spool.close()

        spool = try self.open(folder)
        #expect(spool.unacknowledged().isEmpty)
        #expect(spool.stats.unacknowledgedRecords == 0)
        spool.close()
    }
}

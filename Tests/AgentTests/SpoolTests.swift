import Agent
import AgentBench
import Foundation
import Testing
import Wire

/// The spool on a real folder: what was appended, sealed and acknowledged comes back after
/// reopening; torn and damaged files are recovered from, never a reason not to start.
@Suite struct SpoolTests {
    let identity = AgentIdentity.generate()

    func folder() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("spool-\(UUID())").path
    }

    func open(_ folder: String, _ adjust: (inout Spool.Configuration) -> Void = { _ in }) throws -> Spool {
        var configuration = Spool.Configuration(directory: folder)
        configuration.fsync = .always
        adjust(&configuration)
        return try Spool(configuration: configuration)
    }

    func records(_ count: Int, from start: Int = 0) -> [FeedbackRecord] {
        var ratings = SyntheticRatings(origin: self.identity.nodeID)
        return Array(ratings.next(start + count).dropFirst(start))
    }

    func seal(_ spool: Spool, _ count: Int) async throws -> SealedBatch {
        let records = try spool.unsealed(limit: count)
        let sealer = BatchSealer(origin: self.identity.nodeID, signingKey: self.identity.signingKey)
        let batch = try sealer.seal(records, sequence: spool.nextSequence)
        try await spool.sealed(batch, recordCount: records.count)
        return batch
    }

    func segmentFiles(_ folder: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: folder + "/segments").sorted().map { folder + "/segments/" + $0 }
    }

    @Test func appendedSealedAndAcknowledgedStateSurvivesReopening() async throws {
        let folder = self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let written = self.records(10)
        var spool = try self.open(folder)
        try await spool.append(written)
        spool.close()

        spool = try self.open(folder)
        #expect(try spool.unsealed(limit: 100).map(\.id) == written.map(\.id))
        #expect(try spool.unsealed(limit: 100) == written)
        let batch = try await self.seal(spool, 6)
        #expect(batch.header.sequence == 1)
        spool.close()

        spool = try self.open(folder)
        #expect(try spool.unsealed(limit: 100).map(\.id) == written.suffix(4).map(\.id))
        #expect(spool.unacknowledged().map(\.batch) == [batch], "re-sent after a crash with the same origin, sequence and bytes")
        #expect(spool.nextSequence == 2)
        try spool.acknowledged(batch.key)
        spool.close()

        spool = try self.open(folder)
        #expect(spool.unacknowledged().isEmpty)
        #expect(spool.nextSequence == 2)
        #expect(spool.stats.unsealedRecords == 4)
        spool.close()
    }

    @Test func finishedSegmentsAreDeletedAndTheSequenceOutlivesThem() async throws {
        let folder = self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var spool = try self.open(folder) { $0.segmentBytes = 2_048 }
        for round in 0..<10 {
            try await spool.append(self.records(20, from: round * 20))
            let batch = try await self.seal(spool, 20)
            try spool.acknowledged(batch.key)
        }
        #expect(spool.nextSequence == 11)
        #expect(try self.segmentFiles(folder).count <= 2, "finished segments are deleted")
        // One more roll leaves only a header behind the last acknowledgement.
        try await spool.append(self.records(30, from: 500))
        spool.close()

        spool = try self.open(folder)
        #expect(spool.nextSequence == 11, "a sequence number is never reused")
        #expect(spool.stats.unsealedRecords == 30)
        #expect(spool.unacknowledged().isEmpty)
        spool.close()
    }

    @Test func aTornLastEntryIsTruncatedAndTheSpoolGoesOn() async throws {
        let folder = self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var spool = try self.open(folder)
        try await spool.append(self.records(5))
        spool.close()

        // A crash in the middle of writing the sixth entry: its first 30 bytes made it.
        let segment = try #require(try self.segmentFiles(folder).last)
        let before = try Data(contentsOf: URL(fileURLWithPath: segment))
        let scratch = self.folder()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let other = try self.open(scratch)
        try await other.append(self.records(1, from: 5))
        other.close()
        let entry = try Data(contentsOf: URL(fileURLWithPath: try #require(try self.segmentFiles(scratch).last)))
        let headerLength = 8 + 1 + 16
        try (before + entry.dropFirst(headerLength).prefix(30)).write(to: URL(fileURLWithPath: segment))

        spool = try self.open(folder)
        #expect(spool.recovery.truncatedBytes == 30)
        #expect(spool.stats.unsealedRecords == 5)
        try await spool.append(self.records(1, from: 6))
        spool.close()
        spool = try self.open(folder)
        #expect(spool.recovery.truncatedBytes == 0)
        #expect(spool.stats.unsealedRecords == 6)
        spool.close()
    }

    @Test func aDamagedSegmentIsQuarantinedAndTheRestKeptInOrder() async throws {
        let folder = self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var spool = try self.open(folder) { $0.segmentBytes = 4_096 }
        let written = self.records(200)
        for chunk in stride(from: 0, to: 200, by: 10) {
            try await spool.append(Array(written[chunk..<(chunk + 10)]))
        }
        let batch = try await self.seal(spool, 5)
        spool.close()
        let segments = try self.segmentFiles(folder)
        #expect(segments.count >= 4)

        // Flip one byte in the last entry of the second segment (not the newest).
        var bytes = try Data(contentsOf: URL(fileURLWithPath: segments[1]))
        bytes[bytes.count - 3] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: segments[1]))

        spool = try self.open(folder) { $0.segmentBytes = 4_096 }
        #expect(spool.recovery.quarantinedSegments.count == 1)
        #expect(FileManager.default.fileExists(atPath: try #require(spool.recovery.quarantinedSegments.first)))
        #expect(spool.unacknowledged().map(\.batch) == [batch])
        // Exactly one record (the damaged entry) is gone; the rest are in capture order.
        let kept = try spool.unsealed(limit: 1_000).map(\.id)
        #expect(kept.count == 194)
        #expect(kept == written.dropFirst(5).map(\.id).filter { kept.contains($0) })
        try await spool.append(self.records(1, from: 300))
        spool.close()

        spool = try self.open(folder) { $0.segmentBytes = 4_096 }
        #expect(spool.recovery.quarantinedSegments.isEmpty)
        #expect(spool.stats.unsealedRecords == 195)
        #expect(spool.nextSequence == 2)
        spool.close()
    }

    @Test func aFullSpoolRefusesWithACodeAndWritesNothing() async throws {
        let folder = self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let spool = try self.open(folder) { $0.quotaBytes = 2_000 }
        try await spool.append(self.records(5))
        await #expect(throws: SpoolError.self) { try await spool.append(self.records(40, from: 5)) }
        do {
            try await spool.append(self.records(40, from: 5))
        } catch let error as SpoolError {
            #expect(error.code == .full)
            #expect(error.description.contains("quota"))
        }
        #expect(spool.stats.unsealedRecords == 5)
        spool.close()
    }

    @Test func anInvalidRecordIsRefusedAndNothingOfItsCallIsWritten() async throws {
        let folder = self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let spool = try self.open(folder)
        var records = self.records(3)
        records[2].score = 9  // smiley is 1–4
        do {
            try await spool.append(records)
            Issue.record("an invalid record was accepted")
        } catch let error as SpoolError {
            #expect(error.code == .invalidRecord)
            #expect(error.message.contains("score"))
        }
        #expect(spool.stats.unsealedRecords == 0)
        spool.close()
    }

    @Test(arguments: [Spool.FsyncPolicy.always, .interval(.milliseconds(5)), .never])
    func everyFsyncPolicyKeepsWhatWasAppended(policy: Spool.FsyncPolicy) async throws {
        let folder = self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let first = try self.open(folder) { $0.fsync = policy }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<8 {
                group.addTask { try await first.append(self.records(25, from: task * 25)) }
            }
            try await group.waitForAll()
        }
        first.close()
        let spool = try self.open(folder)
        #expect(spool.stats.unsealedRecords == 200)
        #expect(Set(try spool.unsealed(limit: 1_000).map(\.id)).count == 200)
        spool.close()
    }

    @Test func entriesAreChecksummedWithCRC32C() {
        // The check value of CRC-32C (RFC 3720, appendix B.4).
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum(Array("56789".utf8), continuing: CRC32C.checksum(Array("1234".utf8))) == 0xE306_9283)
    }

    @Test func aSequenceAdvancedPastTheHubsStaysAdvanced() async throws {
        let folder = self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var spool = try self.open(folder)
        #expect(try spool.advanceSequence(beyond: 41))
        #expect(try !spool.advanceSequence(beyond: 10), "never backwards")
        spool.close()
        spool = try self.open(folder)
        #expect(spool.nextSequence == 42)
        try await spool.append(self.records(3))
        let batch = try await self.seal(spool, 3)
        #expect(batch.header.sequence == 42)
        spool.close()
    }

    @Test func aBatchWhoseSealWasLostInQuarantineKeepsItsRecordsQueued() async throws {
        let folder = self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // A 1-byte segment size puts every write in a segment of its own.
        var spool = try self.open(folder) { $0.segmentBytes = 1 }
        let written = self.records(10)
        try await spool.append(written)
        _ = try await self.seal(spool, 5)
        let second = try await self.seal(spool, 5)
        spool.close()
        // Segments (the first, header-only one, is finished and gone): records 1-10; seal of
        // 1-5; seal of 6-10. Damage the first seal.
        let segments = try self.segmentFiles(folder)
        #expect(segments.count == 3)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: segments[1]))
        bytes[bytes.count - 3] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: segments[1]))

        spool = try self.open(folder) { $0.segmentBytes = 1 }
        #expect(spool.recovery.quarantinedSegments.count == 1)
        #expect(spool.unacknowledged().map(\.batch) == [second])
        #expect(try spool.unsealed(limit: 100).map(\.id) == written.prefix(5).map(\.id), "sealed again, not dropped")
        let again = try await self.seal(spool, 5)
        #expect(again.header.sequence == 3, "batch 1's number is not reused")
        spool.close()
    }

    @Test func aSegmentLeftWithoutItsHeaderByACrashDoesNotLoseTheSequence() async throws {
        let folder = self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var spool = try self.open(folder) { $0.segmentBytes = 1 }
        try await spool.append(self.records(3))
        let first = try await self.seal(spool, 3)
        spool.close()
        // The crash: the next segment was created, its header never written.
        let newest = try #require(try self.segmentFiles(folder).last)
        let id = try #require(UInt64(URL(fileURLWithPath: newest).deletingPathExtension().lastPathComponent))
        let digits = String(id + 1)
        #expect(FileManager.default.createFile(
            atPath: folder + "/segments/" + String(repeating: "0", count: 16 - digits.count) + digits + ".seg", contents: Data()))

        spool = try self.open(folder) { $0.segmentBytes = 1 }
        // The acknowledgement lands in the headerless segment and finishes every older one.
        try spool.acknowledged(first.key)
        spool.close()
        #expect(try self.segmentFiles(folder).count == 1)
        spool = try self.open(folder)
        #expect(spool.nextSequence == 2, "batch 1's number is never reused")
        spool.close()
    }

    @Test func oldSegmentsLeftBesideAFinishedQuarantineRewriteAreIgnored() async throws {
        let folder = self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var spool = try self.open(folder) { $0.segmentBytes = 1 }
        let written = self.records(6)
        for record in written { try await spool.append(record) }
        let batch = try await self.seal(spool, 2)
        spool.close()
        let segments = try self.segmentFiles(folder)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: segments[1]))
        bytes[bytes.count - 3] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: segments[1]))
        let saved = try segments.map { try Data(contentsOf: URL(fileURLWithPath: $0)) }

        spool = try self.open(folder) { $0.segmentBytes = 1 }
        #expect(spool.recovery.quarantinedSegments.count == 1)
        let kept = try spool.unsealed(limit: 100).map(\.id)
        spool.close()
        #expect(kept == Array(written.dropFirst(2).map(\.id)), "the damaged record was sealed in batch 1")
        // The crash: the rewrite was renamed into place, the old segments never deleted.
        for (path, data) in zip(segments, saved) { try data.write(to: URL(fileURLWithPath: path)) }

        spool = try self.open(folder) { $0.segmentBytes = 1 }
        #expect(spool.recovery.quarantinedSegments.isEmpty, "the old segments are superseded, not replayed")
        #expect(try spool.unsealed(limit: 100).map(\.id) == kept, "nothing twice")
        #expect(spool.unacknowledged().map(\.batch) == [batch])
        #expect(try self.segmentFiles(folder).count == 1)
        spool.close()
    }

    @Test func aClosedSpoolRefusesAppends() async throws {
        let folder = self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let spool = try self.open(folder)
        spool.close()
        await #expect(throws: SpoolError.self, "a closed spool refuses, and says so") {
            try await spool.append(self.records(1))
        }
    }

    @Test func aDamagedEntryInTheMiddleCostsOnlyThatEntry() async throws {
        let folder = self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var spool = try self.open(folder)
        let written = self.records(50)
        for record in written { try await spool.append(record) }
        spool.close()
        // One segment: a header, then 50 record entries. Damage the tenth record's entry.
        let path = try #require(try self.segmentFiles(folder).last)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        var offset = 0
        var starts: [Int] = []
        while offset < bytes.count {
            starts.append(offset)
            offset += 8 + Int(bytes[offset..<(offset + 4)].reduce(0) { $0 << 8 | UInt32($1) })
        }
        #expect(starts.count == 51)
        bytes[starts[10] + 20] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: path))

        spool = try self.open(folder)
        #expect(spool.recovery.quarantinedSegments.count == 1)
        let kept = try spool.unsealed(limit: 100).map(\.id)
        #expect(kept == written.enumerated().filter { $0.offset != 9 }.map(\.element.id), "the 49 others, in order")
        spool.close()
    }

    @Test func sealsThatEndInsideACapturedEntryTakeExactlyTheirRecordsBeforeAndAfterReopening() async throws {
        let folder = self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var spool = try self.open(folder)
        let written = self.records(30)
        let cursor = SourceCursor(source: "calls", device: 1, inode: 2, offset: 300, line: 30)
        // One entry of ten records with a cursor, ten single appends, then ten more in one entry.
        try await spool.append(Array(written[0..<10]), cursor: cursor)
        for record in written[10..<20] { try await spool.append(record) }
        try await spool.append(Array(written[20..<30]), cursor: cursor)
        var batches: [SealedBatch] = []
        batches.append(try await self.seal(spool, 3))  // inside the first entry
        batches.append(try await self.seal(spool, 12))  // the rest of it and five single ones
        #expect(try spool.unsealed(limit: 100).map(\.id) == written[15...].map(\.id))
        spool.close()

        spool = try self.open(folder)
        #expect(try spool.unsealed(limit: 100).map(\.id) == written[15...].map(\.id), "the same after reopening")
        batches.append(try await self.seal(spool, 7))  // ends inside the last entry
        #expect(try spool.unsealed(limit: 2).map(\.id) == written[22..<24].map(\.id))
        spool.close()

        spool = try self.open(folder)
        #expect(spool.stats.unsealedRecords == 8)
        #expect(spool.stats.unacknowledgedRecords == 22)
        #expect(spool.unacknowledged().map(\.batch) == batches, "every batch read back from disk, byte for byte")
        batches.append(try await self.seal(spool, 8))
        var sealed: [UUID] = []
        for batch in batches {
            sealed += try batch.open(verifyingWith: self.identity.signingKey.publicKey, limits: BatchLimits(), decompressor: ZstdDecompressor()).map(\.id)
        }
        #expect(sealed == written.map(\.id), "every record in exactly one batch, in order")
        #expect(spool.cursor(of: "calls") == cursor)
        spool.close()
    }

    @Test func aBacklogIsReadBackFromDiskAcrossManySegments() async throws {
        let folder = self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var spool = try self.open(folder) { $0.segmentBytes = 8_192; $0.fsync = .never }
        let written = self.records(2_000)
        for chunk in stride(from: 0, to: written.count, by: 7) {
            try await spool.append(Array(written[chunk..<min(chunk + 7, written.count)]))
        }
        var batches: [SealedBatch] = []
        while spool.stats.unsealedRecords > 0 { batches.append(try await self.seal(spool, min(spool.stats.unsealedRecords, 90))) }
        let segments = try self.segmentFiles(folder).count
        #expect(segments > 5, "\(segments) segments")
        spool.close()

        spool = try self.open(folder) { $0.segmentBytes = 8_192 }
        #expect(spool.unacknowledged(limit: 5).map(\.batch) == Array(batches.prefix(5)))
        #expect(spool.unacknowledged(limit: 3) { $0.sequence % 2 == 0 }.map(\.batch) == batches.filter { $0.header.sequence % 2 == 0 }.prefix(3).map { $0 })
        for batch in batches { try spool.acknowledged(batch.key) }
        #expect(spool.stats.unacknowledgedBatches == 0)
        #expect(spool.stats.unacknowledgedRecords == 0)
        #expect(try self.segmentFiles(folder).count <= 2, "acknowledged segments are deleted")
        spool.close()
    }

    @Test func aBatchDamagedAfterOpeningIsLeftOutNotSentAndQuarantinedAtTheNextStart() async throws {
        let folder = self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var spool = try self.open(folder)
        try await spool.append(self.records(20))
        let first = try await self.seal(spool, 10)
        let second = try await self.seal(spool, 10)
        // Bits rot in the first batch's entry while the agent runs.
        let path = try #require(try self.segmentFiles(folder).last)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let at = try #require(bytes.firstRange(of: Data(first.bytes.readableBytesView.prefix(32))))
        bytes[at.lowerBound + 40] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: path))
        #expect(spool.unacknowledged().map(\.batch) == [second], "the damaged batch is not sent")
        #expect(spool.stats.unacknowledgedBatches == 2, "and not dropped")
        spool.close()

        spool = try self.open(folder)
        #expect(spool.recovery.quarantinedSegments.count == 1)
        #expect(spool.unacknowledged().map(\.batch) == [second])
        spool.close()
    }

    @Test func sealsAcrossAGapLeftByAQuarantinedRecordTakeEachRecordOnce() async throws {
        let folder = self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var spool = try self.open(folder)
        let written = self.records(12)
        for record in written { try await spool.append(record) }
        spool.close()
        // Damage the fourth record's entry: recovery keeps records 1-3 and 5-12, a gap between.
        let path = try #require(try self.segmentFiles(folder).last)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        var starts: [Int] = []
        var offset = 0
        while offset < bytes.count {
            starts.append(offset)
            offset += 8 + Int(bytes[offset..<(offset + 4)].reduce(0) { $0 << 8 | UInt32($1) })
        }
        bytes[starts[4] + 20] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: path))

        spool = try self.open(folder)
        #expect(spool.recovery.quarantinedSegments.count == 1)
        let more = self.records(3, from: 100)
        try await spool.append(more)
        // Batches of five cross the gap, then the run appended after recovery.
        var sealed: [UUID] = []
        var batches: [SealedBatch] = []
        while spool.stats.unsealedRecords > 0 {
            let batch = try await self.seal(spool, min(5, spool.stats.unsealedRecords))
            batches.append(batch)
            sealed += try batch.open(verifyingWith: self.identity.signingKey.publicKey, limits: BatchLimits(), decompressor: ZstdDecompressor()).map(\.id)
        }
        let expected = written.enumerated().filter { $0.offset != 3 }.map(\.element.id) + more.map(\.id)
        #expect(sealed == expected, "each record once, in order")
        spool.close()

        spool = try self.open(folder)
        #expect(spool.stats.unsealedRecords == 0, "no record comes back unsealed after a restart")
        #expect(spool.stats.unacknowledgedRecords == expected.count)
        #expect(spool.unacknowledged().map(\.batch) == batches)
        spool.close()
    }
}

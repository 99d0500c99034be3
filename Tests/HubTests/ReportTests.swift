import Foundation
import Hub
import Testing
import Wire

/// What `feedback-hub report` prints comes from real stored records.
@Suite struct ReportTests {
    @Test func npsAndNegativesArePerSite() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("report-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let store = try SQLiteStore(path: folder.appendingPathComponent("feedback.sqlite").path)
        let origin = UUID()
        var ids = UUIDv7()
        func record(_ site: String, _ scale: FeedbackRecord.Scale, _ score: UInt8) -> FeedbackRecord {
            FeedbackRecord(id: ids.next(milliseconds: 1_764_000_000_000), origin: origin, source: .popup, scale: scale, score: score,
                           occurredAt: 1_764_000_000_000, capturedAt: 1_764_000_000_000, site: site)
        }
        let records = [10, 9, 7, 3, 0].map { record("web-eu", .nps, UInt8($0)) } + [record("branch-1", .smiley, 1), record("branch-1", .smiley, 4)]
        _ = try store.commit([IncomingBatch(key: BatchKey(origin: origin, sequence: 1), records: records, receivedAt: 0)])

        let sites = try store.siteSummaries()
        #expect(sites.map(\.site) == ["web-eu", "branch-1"])
        #expect(sites[0].responses == 5 && sites[0].promoters == 2 && sites[0].detractors == 2 && sites[0].negatives == 2)
        #expect(sites[0].nps == 0)
        #expect(sites[1].negatives == 1)
        #expect(sites[1].nps == nil)
    }
}

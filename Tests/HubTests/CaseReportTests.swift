import Foundation
@testable import Hub
import Testing

/// The case report's arithmetic on cases of known outcome.
@Suite struct CaseReportTests {
    static let hour: Int64 = 3_600_000

    static func alert(
        site: String, owner: String = "", status: Alert.Status, kind: String = "record", due: Int64? = 10 * hour, first: Int64? = nil,
        closed: Int64? = nil, reached: Bool? = nil
    ) -> Alert {
        Alert(
            id: UUID(), rule: "detractor", kind: kind, status: status, level: 0, site: site, subject: "", summary: "", recordID: nil,
            createdAt: 0, capturedAt: 0, deadlineAt: nil, dueAt: due, owner: owner, firstActionAt: first, closedAt: closed, updatedAt: 0,
            customerReached: reached, note: ""
        )
    }

    @Test func theCloseTheLoopRateCountsDecidedRatingCasesOnly() {
        let hour = Self.hour
        let cases = [
            // Completed in time, completed late, overdue and open: four decided, one met.
            Self.alert(site: "b", owner: "anna", status: .completed, first: hour, closed: 2 * hour, reached: true),
            Self.alert(site: "b", owner: "anna", status: .completed, first: 3 * hour, closed: 11 * hour, reached: false),
            Self.alert(site: "b", status: .open, due: 5 * hour),
            Self.alert(site: "b", status: .waiting, due: 6 * hour, first: 2 * hour),
            // Not yet due, cancelled, and a silent node's case: out of the rate.
            Self.alert(site: "a", status: .inProgress, due: 20 * hour, first: hour),
            Self.alert(site: "a", status: .cancelled, first: hour, closed: hour),
            Self.alert(site: "a", status: .completed, kind: "silent", due: nil, first: hour, closed: hour),
        ]
        let report = CaseReport(cases: cases, from: 0, to: 24 * hour, groupBy: .site, now: 8 * hour)
        #expect(report.groups.map(\.key) == ["a", "b"])
        let b = report.groups[1]
        #expect(b.raised == 4 && b.completed == 2 && b.notClosed == 2 && b.overdue == 2 && b.customerReached == 1 && b.pending == 0)
        #expect(b.closeTheLoop?.met == 1 && b.closeTheLoop?.decided == 4 && b.closeTheLoop?.percent == 25)
        let rate = b.closeTheLoop
        #expect((rate?.low ?? 0) > 4 && (rate?.low ?? 0) < 5 && (rate?.high ?? 0) > 69 && (rate?.high ?? 0) < 70, "Wilson: 4.6–69.9 %")
        #expect(b.firstAction == CaseReport.Durations([hour, 3 * hour, 2 * hour]) && b.firstAction.median == 2 * hour)
        #expect(b.close.count == 2 && b.close.median == 2 * hour && b.close.p90 == 11 * hour)
        let a = report.groups[0]
        #expect(a.pending == 1 && a.cancelled == 1 && a.completed == 1 && a.closeTheLoop == nil, "nothing decided at a")
        #expect(report.total.raised == 7 && report.total.closeTheLoop?.decided == 4)
        let byOwner = CaseReport(cases: cases, from: 0, to: 24 * hour, groupBy: .owner, now: 8 * hour)
        #expect(byOwner.groups.map(\.key) == ["", "anna"] && byOwner.groups[1].closeTheLoop?.met == 1)
        #expect(report.csv.hasPrefix("site,raised,not_closed") && report.csv.contains("\r\nb,4,2,2,2,0,1,0,7200.0,10800.0,7200.0,39600.0,1,4,25.0,"))
        #expect(report.csv.hasSuffix("\r\n") && report.csv.contains("\r\ntotal,7,"))
    }
}

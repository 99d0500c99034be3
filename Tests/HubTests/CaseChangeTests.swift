import Foundation
@testable import Hub
import Testing

/// What a case keeps of its notes, and what a chat target is sent about it.
@Suite struct CaseChangeTests {
    static func open() -> Alert {
        Alert(
            id: UUID(), rule: "detractor", kind: "record", status: .open, level: 0, site: "b", subject: "", summary: "nps 2 <!channel>",
            recordID: nil, createdAt: 0, capturedAt: 0, deadlineAt: nil, dueAt: nil, owner: "", firstActionAt: nil, closedAt: nil, updatedAt: 0,
            customerReached: nil, note: ""
        )
    }

    @Test func notesAreKeptUpTo16KiBNewestFirstToGo() throws {
        var alert = Self.open()
        for index in 0..<40 {
            let status: Alert.Status = index % 2 == 0 ? .waiting : .inProgress
            alert = try CaseChange(.status(status), note: "note \(index) " + String(repeating: "x", count: 3_000)).applied(to: alert, at: Int64(index)).get()
        }
        #expect(alert.note.utf8.count <= CaseChange.maxNotesBytes)
        #expect(alert.note.hasPrefix("(older notes: see the case's history)\nnote "))
        #expect(alert.note.split(separator: "\n").last?.hasPrefix("note 39 ") == true, "the newest note is kept")
        #expect(alert.note.split(separator: "\n").count == 6, "five notes of 3 KB and the marker fit")
    }

    @Test func aChatTargetCannotBeMadeToMentionAChannel() throws {
        let alert = try CaseChange(.assign("<!channel> & co")).applied(to: Self.open(), at: 5).get()
        let payload = CaseEvent.payload(of: alert, event: "case.assigned", from: nil, by: AuditActor(tokenID: nil, name: "<@U123>"), at: 5, note: "")
        let delivery = DueDelivery(
            id: UUID(), alertID: alert.id, level: 0, event: "case.assigned", payload: payload, target: "ops", attempts: 0, details: "{}",
            summary: alert.summary, capturedAt: 0
        )
        let target = AlertRules.Target(name: "ops", kind: .slack, url: "http://127.0.0.1:9/ops", secret: nil)
        let text = try #require(
            try JSONSerialization.jsonObject(with: Data(WebhookMessage(delivery: delivery, target: target, timestamp: 1).body.utf8)) as? [String: Any]
        )["text"] as? String
        #expect(text == ":bust_in_silhouette: case assigned to &lt;!channel&gt; &amp; co by &lt;@U123&gt;: nps 2 &lt;!channel&gt;")
    }
}

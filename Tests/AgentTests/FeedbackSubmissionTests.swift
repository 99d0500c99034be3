import Agent
import Foundation
import TestSupport
import Testing
import Wire

@Suite struct FeedbackSubmissionTests {
    private func field(of submission: FeedbackSubmission) -> String? {
        do {
            _ = try submission.record(id: Samples.recordID(0), origin: Samples.agentID, capturedAt: Samples.baseTime)
            return nil
        } catch {
            return (error as? WireError)?.field
        }
    }

    @Test func aSubmissionBecomesAValidRecord() throws {
        let json = #"{"source":"popup","scale":"nps","score":3,"site":"web-eu","comment":"Slow refund","attributes":{"plan":"pro"}}"#
        let submission = try JSONDecoder().decode(FeedbackSubmission.self, from: Data(json.utf8))
        let record = try submission.record(id: Samples.recordID(0), origin: Samples.agentID, capturedAt: Samples.baseTime)
        #expect(record.source == .popup && record.scale == .nps && record.score == 3)
        #expect(record.occurredAt == Samples.baseTime)  // defaults to the capture time
        #expect(record.site == "web-eu" && record.comment == "Slow refund" && record.attributes == ["plan": "pro"])
        #expect(record.isNegative)
    }

    @Test func badSubmissionsNameTheField() {
        #expect(self.field(of: FeedbackSubmission(source: "fax", scale: "nps", score: 3)) == "source")
        #expect(self.field(of: FeedbackSubmission(source: "api", scale: "stars", score: 3)) == "scale")
        #expect(self.field(of: FeedbackSubmission(source: "api", scale: "csat", score: 0)) == "score")
        #expect(self.field(of: FeedbackSubmission(source: "api", scale: "nps", score: -1)) == "score")
        #expect(self.field(of: FeedbackSubmission(source: "api", scale: "nps", score: 300)) == "score")
        #expect(self.field(of: FeedbackSubmission(source: "api", scale: "nps", score: 3, occurredAt: -5)) == "occurredAt")
        let long = String(repeating: "x", count: 65)
        #expect(self.field(of: FeedbackSubmission(source: "api", scale: "nps", score: 3, site: long)) == "site")
    }
}

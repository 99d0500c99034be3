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

    @Test func numbersAreCheckedAsWrittenBeforeDecoding() throws {
        #expect(StrictJSONNumbers.check(Array(#"{"score": 10, "attributes": {"score": "3.0"}}"#.utf8)) == nil)
        #expect(StrictJSONNumbers.check(Array(#"{"score": -0}"#.utf8))?.field == "score")
        #expect(StrictJSONNumbers.check(Array(#"[{"score": 1}, {"sc\u006fre": 2.0}]"#.utf8))?.field == "score", "escaped member names too")
        #expect(StrictJSONNumbers.check(Array(#"{"comment": "\"score\": 1.5", "score": 4}"#.utf8)) == nil, "quotes inside texts")
        #expect(StrictJSONNumbers.check(Array(#"{"occurredAt": -1e400}"#.utf8))?.field == "occurredAt")
        #expect(StrictJSONNumbers.check(Array(#"{"score": 12345678901234567890}"#.utf8))?.field == "score", "out of range, named")
        #expect(StrictJSONNumbers.check(Array(#"{"a": {"score": 1.5}}"#.utf8)) == nil, "a score deeper down is not the rating's")
        // Deep nesting is left to the decoder, in time linear in the body.
        let deep = Array((String(repeating: "[", count: 100_000) + String(repeating: "0,", count: 100_000)).utf8)
        #expect(StrictJSONNumbers.check(deep) == nil)
        #expect(throws: StrictJSONNumbers.Problem.self) { try StrictJSONNumbers.submission(from: Array(#"{"source":"api","scale":"csat","score":4.0}"#.utf8)) }
        #expect(try StrictJSONNumbers.submission(from: Array(#"{"source":"api","scale":"csat","score":4}"#.utf8)).score == 4)
    }
}

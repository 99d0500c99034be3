import Agent
import Foundation
import Testing

/// The HTTP intake's "one response per customer per survey" memory, on a real file.
@Suite struct ResponseLimiterTests {
    @Test func aCustomerAnswersASurveyOncePerWindowAcrossRestarts() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("limiter-\(UUID())").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/responses.log"
        var limiter = try ResponseLimiter(path: path, window: .seconds(7 * 86_400))
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        #expect(limiter.reserve([("c-1", "nps-q4"), ("c-2", "nps-q4"), ("", "nps-q4")], now: now) == nil)
        try limiter.commit([("c-1", "nps-q4"), ("c-2", "nps-q4")], now: now)
        #expect(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int == 0o600, "it names customers")
        #expect(limiter.reserve([("c-3", "nps-q4"), ("c-1", "nps-q4")], now: now + 1) == 1)
        #expect(limiter.reserve([("c-1", "csat-call")], now: now + 1) == nil, "another survey is another question")
        #expect(limiter.reserve([("c-4", "s"), ("c-4", "s")], now: now) == 1, "twice in one request")

        // Reopened: still remembered; released reservations are free again.
        limiter = try ResponseLimiter(path: path, window: .seconds(7 * 86_400))
        #expect(limiter.reserve([("c-2", "nps-q4")], now: now + 86_400_000) == 0)
        #expect(limiter.reserve([("c-9", "nps-q4")], now: now) == nil)
        limiter.release([("c-9", "nps-q4")])
        #expect(limiter.reserve([("c-9", "nps-q4")], now: now) == nil)
        // The window passes.
        #expect(limiter.reserve([("c-2", "nps-q4")], now: now + 8 * 86_400_000) == nil)
    }
}

/// The answered-surveys file of an agent that runs for months.
@Suite struct ResponseLimiterCompactionTests {
    @Test func theFileIsRewrittenWithoutExpiredAnswersWhileTheAgentRuns() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("limiter-\(UUID())").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/responses.log"
        let limiter = try ResponseLimiter(path: path, window: .seconds(60))
        var now = Int64(Date().timeIntervalSince1970 * 1000)
        // 50,000 answers, one a second of agent time: the window holds the last 60.
        for index in 0..<50_000 {
            let pair = [(customer: "c-\(index)", survey: "q")]
            #expect(limiter.reserve(pair, now: now) == nil)
            try limiter.commit(pair, now: now)
            now += 1_000
        }
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").count
        #expect(lines <= 20_001, "\(lines) lines for 60 answers in the window")
        #expect(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int == 0o600)
        // What is inside the window is still known after a restart.
        let reopened = try ResponseLimiter(path: path, window: .seconds(60))
        #expect(reopened.reserve([("c-49999", "q")], now: now) == 0)
    }
}

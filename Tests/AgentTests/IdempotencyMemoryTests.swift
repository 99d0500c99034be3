import Agent
import Foundation
import Testing

/// The intake's memory of idempotent requests, on a real file.
@Suite struct IdempotencyMemoryTests {
    @Test func aRequestIsRememberedAcrossRestartsWithinItsWindowAndForgottenAfter() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("idempotency-\(UUID())").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/idempotency.log"
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        var memory = try IdempotencyMemory(path: path, window: .seconds(3_600))
        let scope = IdempotencyMemory.scope(key: "backend", idempotencyKey: "k-1")
        #expect(scope != IdempotencyMemory.scope(key: "other", idempotencyKey: "k-1"), "each key has its own idempotency keys")
        #expect(memory.begin(scope: scope, body: Array("a".utf8), now: now) == .fresh(at: now))
        #expect(memory.begin(scope: scope, body: Array("a".utf8), now: now + 1) == .inProgress)
        try memory.finish(scope: scope)
        #expect(memory.begin(scope: scope, body: Array("a".utf8), now: now + 5) == .replay(at: now))
        #expect(memory.begin(scope: scope, body: Array("b".utf8), now: now + 5) == .reused)
        #expect(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int == 0o600)

        // An abandoned request (refused, not stored) is handled afresh.
        let refused = IdempotencyMemory.scope(key: nil, idempotencyKey: "k-2")
        #expect(memory.begin(scope: refused, body: [1], now: now) == .fresh(at: now))
        memory.abandon(scope: refused)
        #expect(memory.begin(scope: refused, body: [2], now: now + 1) == .fresh(at: now + 1))

        // Reopened: the finished one is remembered; the one under way when the memory closed is
        // taken afresh, at its time (its ratings may be in the spool).
        memory = try IdempotencyMemory(path: path, window: .seconds(3_600))
        #expect(memory.count == 2)
        #expect(memory.begin(scope: refused, body: [2], now: now + 9) == .fresh(at: now + 1))
        #expect(memory.begin(scope: scope, body: Array("a".utf8), now: now + 10) == .replay(at: now))
        // After the window it is a new request.
        #expect(memory.begin(scope: scope, body: Array("b".utf8), now: now + 3_600_001) == .fresh(at: now + 3_600_001))
    }

    @Test func theMemoryHoldsAtMostItsSizeAndForgetsTheOldestFirst() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("idempotency-\(UUID())").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/idempotency.log"
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let memory = try IdempotencyMemory(path: path, window: .seconds(3_600), maxEntries: 100)
        for index in 0..<5_000 {
            let scope = IdempotencyMemory.scope(key: nil, idempotencyKey: "k-\(index)")
            #expect(memory.begin(scope: scope, body: [1], now: now + Int64(index)) == .fresh(at: now + Int64(index)))
            try memory.finish(scope: scope)
        }
        #expect(memory.count == 100)
        #expect(memory.begin(scope: IdempotencyMemory.scope(key: nil, idempotencyKey: "k-4999"), body: [1], now: now + 5_000) == .replay(at: now + 4_999))
        #expect(memory.begin(scope: IdempotencyMemory.scope(key: nil, idempotencyKey: "k-0"), body: [1], now: now + 5_000) == .fresh(at: now + 5_000))
        // The file is compacted as it goes: it never holds far more lines than the memory.
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").count
        #expect(lines <= 2_001, "\(lines) lines")
    }

    @Test func aRequestBegunButNotFinishedBeforeACrashIsStoredAgainWithItsFirstTime() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("idempotency-\(UUID())").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/idempotency.log"
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let scope = IdempotencyMemory.scope(key: nil, idempotencyKey: "k-1")
        do {
            let memory = try IdempotencyMemory(path: path)
            #expect(memory.begin(scope: scope, body: [7], now: now) == .fresh(at: now))
            // The process dies here: its ratings may be in the spool, the finish line is not written.
        }
        let memory = try IdempotencyMemory(path: path)
        #expect(memory.begin(scope: scope, body: [7], now: now + 5_000) == .fresh(at: now), "stored again with the same time, so the same ids")
        try memory.finish(scope: scope)
        #expect(memory.begin(scope: scope, body: [7], now: now + 6_000) == .replay(at: now))
        let reopened = try IdempotencyMemory(path: path)
        #expect(reopened.begin(scope: scope, body: [7], now: now + 7_000) == .replay(at: now))
        #expect(reopened.begin(scope: IdempotencyMemory.scope(key: nil, idempotencyKey: "k-1"), body: [8], now: now + 7_000) == .reused)

        // A request refused after it began (nothing stored) is forgotten across a restart too:
        // corrected, it is taken afresh under the same key.
        let refused = IdempotencyMemory.scope(key: nil, idempotencyKey: "k-2")
        #expect(reopened.begin(scope: refused, body: [1], now: now + 8_000) == .fresh(at: now + 8_000))
        reopened.abandon(scope: refused)
        let again = try IdempotencyMemory(path: path)
        #expect(again.begin(scope: refused, body: [2], now: now + 9_000) == .fresh(at: now + 9_000))
        #expect(HTTPIntake.canonicalIP("[::0:1]") == "::1" && HTTPIntake.canonicalIP("127.0.0.1") == "127.0.0.1" && HTTPIntake.canonicalIP("proxy") == nil)
    }
}

/// The intake's token buckets.
@Suite struct IntakeRateLimiterTests {
    @Test func bucketsRefillAtTheirRateAndABigRequestLeavesDebt() {
        let limiter = IntakeRateLimiter()
        let start = ContinuousClock.now
        let key = IntakeRateLimiter.Limit(name: "key:k", rate: 2, burst: 4)
        #expect(limiter.take(4, from: [key], now: start) == nil)
        #expect(limiter.take(1, from: [key], now: start) == 1, "empty: half a second for one, said as 1 s")
        #expect(limiter.wait([key], now: start) == 1)
        #expect(limiter.take(1, from: [key], now: start + .milliseconds(500)) == nil, "refilled one")
        // Ten at once is more than the burst: it passes on a full bucket and leaves five seconds of debt.
        #expect(limiter.take(10, from: [key], now: start + .seconds(10)) == nil)
        #expect(limiter.take(1, from: [key], now: start + .seconds(13)) != nil)
        #expect(limiter.take(1, from: [key], now: start + .seconds(14)) == nil)
        // A refusal takes nothing from the other bucket of the request.
        let address = IntakeRateLimiter.Limit(name: "address:1.2.3.4", rate: 1, burst: 1)
        #expect(limiter.take(1, from: [address], now: start + .seconds(20)) == nil)
        let other = IntakeRateLimiter.Limit(name: "key:other", rate: 1, burst: 1)
        #expect(limiter.take(1, from: [other, address], now: start + .seconds(20)) != nil)
        #expect(limiter.take(1, from: [other], now: start + .seconds(20)) == nil, "the other key's rating was not spent")
    }

    @Test func theAddressTableIsBoundedForgettingRefilledAddressesFirst() {
        let limiter = IntakeRateLimiter(maxAddresses: 100)
        let start = ContinuousClock.now
        func address(_ n: Int) -> IntakeRateLimiter.Limit { .init(name: "address:10.0.\(n / 256).\(n % 256)", rate: 1, burst: 2) }
        for n in 0..<100 { #expect(limiter.take(1, from: [address(n)], now: start) == nil) }
        #expect(limiter.count == 100)
        // Full, none refilled: new addresses share one bucket (two ratings at once, then wait).
        #expect(limiter.take(2, from: [address(500)], now: start) == nil)
        #expect(limiter.take(1, from: [address(501)], now: start) != nil, "the shared bucket is spent")
        #expect(limiter.count == 101)
        // Once the old addresses refilled, they are forgotten and a new one gets its own bucket.
        #expect(limiter.take(1, from: [address(600)], now: start + .seconds(5)) == nil)
        #expect(limiter.count <= 3)
    }
}

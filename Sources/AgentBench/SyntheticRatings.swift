import Foundation
import Wire

/// Plausible ratings for load tests and demos: kiosk smiley presses at a set of branches
/// and in-product NPS popups, alternating, with fresh UUIDv7 ids and the current time.
///
/// Values spread over `sites` branches and `subjects` employees so the hub's site and
/// subject indexes see realistic fan-out. Not thread-safe: one generator per task.
public struct SyntheticRatings: Sendable {
    /// The origin every record carries.
    public let origin: UUID
    private let sites: Int
    private let subjects: Int
    private var ids = UUIDv7()
    private var index = 0
    private let capturedAgoMilliseconds: Int64

    /// Creates a generator for `origin` whose ratings were captured `capturedAgo` before
    /// they are made (zero: live ratings; hours: an agent's backlog).
    public init(origin: UUID, sites: Int = 40, subjects: Int = 200, capturedAgo: Duration = .zero) {
        self.origin = origin
        self.sites = max(sites, 1)
        self.subjects = max(subjects, 1)
        self.capturedAgoMilliseconds = capturedAgo.components.seconds * 1000 + capturedAgo.components.attoseconds / 1_000_000_000_000_000
    }

    /// The next `count` records, captured now (less the generator's `capturedAgo`).
    public mutating func next(_ count: Int) -> [FeedbackRecord] {
        let now = Int64(Date().timeIntervalSince1970 * 1000) - self.capturedAgoMilliseconds
        var records: [FeedbackRecord] = []
        records.reserveCapacity(count)
        for _ in 0..<count {
            records.append(self.record(now: now))
        }
        return records
    }

    private mutating func record(now: Int64) -> FeedbackRecord {
        defer { self.index &+= 1 }
        let i = self.index
        let id = self.ids.next(milliseconds: now)
        if i % 2 == 0 {
            return FeedbackRecord(
                id: id,
                origin: self.origin,
                source: .kiosk,
                scale: .smiley,
                score: UInt8(i % 7 % 4 + 1),
                occurredAt: now - 40,
                capturedAt: now,
                site: "branch-\(i / 2 % self.sites)",
                channel: "kiosk",
                subject: "till-\(i % 5)",
                topic: "general",
                survey: "smiley-exit"
            )
        }
        return FeedbackRecord(
            id: id,
            origin: self.origin,
            source: .popup,
            scale: .nps,
            score: UInt8(i % 13 % 11),
            occurredAt: now - 250,
            capturedAt: now,
            site: "web-eu",
            channel: "app",
            subject: "agent-\(i % self.subjects)",
            topic: i % 3 == 0 ? "billing" : "checkout",
            survey: "nps-2026q4",
            customer: "cust-\(100_000 + i % 50_000)",
            comment: i % 3 == 0 ? "Invoice was wrong, fixed quickly though." : "",
            attributes: ["plan": "pro", "locale": "de-DE"]
        )
    }
}

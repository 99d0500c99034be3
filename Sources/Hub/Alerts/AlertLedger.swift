import Foundation

/// An alert the evaluator decided to raise, as a store writes it.
public struct NewAlert: Sendable, Hashable {
    /// Stable id: the same rule and cause give the same id, so raising it again finds the row.
    public var id: UUID
    /// The rule's name.
    public var rule: String
    /// `record`, `window` or `silent`.
    public var kind: String
    /// Escalation levels the rule has.
    public var maxLevel: Int
    /// The site concerned ("" when none).
    public var site: String
    /// The subject concerned ("" when none).
    public var subject: String
    /// One line for people.
    public var summary: String
    /// The alert as the webhook payload's `alert` member: a JSON object with sorted keys.
    public var details: String
    /// The record that raised it, if one did.
    public var recordID: UUID?
    /// When the hub raised it, ms since the epoch.
    public var createdAt: Int64
    /// When the record was captured (for a silence: when the node became silent), ms.
    public var capturedAt: Int64
    /// When it escalates if still open (nil: it does not).
    public var deadlineAt: Int64?
    /// When the case is due to be closed (nil: no SLA).
    public var dueAt: Int64?
    /// When its owner is reminded of the due time (nil: no reminder).
    public var remindAt: Int64?
}

/// A webhook to queue: one event of one alert, to one target.
public struct NewDelivery: Sendable, Hashable {
    /// Stable id (the `webhook-id` header): the same alert, level and target give the same
    /// id for raising and escalating; each case event has its own.
    public var id: UUID
    /// The alert.
    public var alertID: UUID
    /// The escalation level.
    public var level: Int
    /// The target's name.
    public var target: String
    /// When it is first due, ms since the epoch.
    public var dueAt: Int64
    /// `alert.raised`, `alert.escalated` or a `case.…` event.
    public var event: String
    /// For a `case.…` event, the case member of the payload (``CaseEvent/payload(of:event:from:by:at:note:)``).
    public var payload: String?

    /// A delivery of `event` (by default `alert.raised` at level 0, `alert.escalated` above).
    public init(id: UUID, alertID: UUID, level: Int, target: String, dueAt: Int64, event: String? = nil, payload: String? = nil) {
        self.id = id
        self.alertID = alertID
        self.level = level
        self.target = target
        self.dueAt = dueAt
        self.event = event ?? (level == 0 ? "alert.raised" : "alert.escalated")
        self.payload = payload
    }
}

/// What ``AlertEvaluator`` reads and writes, inside one store transaction. A store implements
/// it over its open transaction, so an alert is written together with the ratings (or the
/// silence) that raised it, or not at all.
public protocol AlertLedger: AnyObject {
    /// Counts a rating into a window rule's window `key` (the rating `recordID`, negative or
    /// not, at `occurredAt`, stored at `storedAt`), then returns the window's counts over
    /// ratings that occurred in `from` exclusive through `through` inclusive. Two
    /// transactions counting into the same rule and key never interleave (several hubs on one
    /// database take a lock for it).
    func countInWindow(
        rule: String, key: String, recordID: UUID, occurredAt: Int64, storedAt: Int64, negative: Bool, from: Int64, through: Int64
    ) throws -> (total: Int, negative: Int)

    /// Whether the window rule `rule` is firing for `key` (over its threshold at its last rating).
    func isWindowFiring(rule: String, key: String) throws -> Bool

    /// Sets whether the window rule `rule` is firing for `key`.
    func setWindowFiring(_ firing: Bool, rule: String, key: String) throws

    /// Writes `alert` with its first `deliveries`, unless an alert with its id exists (then
    /// writes nothing). A ledger may hold them until the transaction's end, where the store
    /// writes them together; they commit or roll back with the transaction either way.
    func raise(_ alert: NewAlert, deliveries: [NewDelivery]) throws
}

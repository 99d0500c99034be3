import Foundation
import Wire

/// An alert as the store and the HTTP API show it.
public struct Alert: Sendable, Hashable, Codable {
    /// Where an alert is in its life.
    public enum Status: String, Sendable, Hashable, Codable, CaseIterable {
        /// Raised; nobody has taken it yet. Escalates when its deadline passes.
        case open
        /// Someone took it.
        case acknowledged
        /// Dealt with.
        case resolved
        /// Withdrawn (a false alarm, a test), with a note.
        case cancelled
    }

    /// Stable id, derived from the rule and the record (or window) that raised it.
    public var id: UUID
    /// The rule's name.
    public var rule: String
    /// `record` or `window`.
    public var kind: String
    /// Open, acknowledged, resolved or cancelled.
    public var status: Status
    /// Escalation level reached: 0 when only the first targets were told.
    public var level: Int
    /// The site concerned.
    public var site: String
    /// The subject concerned ("" for a site window).
    public var subject: String
    /// One line for people.
    public var summary: String
    /// The record that raised it (for a window rule, the one that crossed the threshold).
    public var recordID: UUID?
    /// When the hub raised it, ms since the epoch.
    public var createdAt: Int64
    /// When the record was captured, ms since the epoch.
    public var capturedAt: Int64
    /// When it escalates if not acknowledged (nil: it does not).
    public var deadlineAt: Int64?
    /// When it was acknowledged.
    public var acknowledgedAt: Int64?
    /// When it was resolved or cancelled.
    public var closedAt: Int64?
    /// Who acknowledged, resolved or cancelled it, and why.
    public var note: String
}

/// Why an alert could not change state.
public enum AlertTransitionError: Error, Sendable, Hashable, CustomStringConvertible {
    /// No alert has this id.
    case notFound
    /// The alert's state does not allow it (for example resolving a cancelled alert).
    case notAllowed(from: Alert.Status, action: String)

    /// A sentence for the API's error message.
    public var description: String {
        switch self {
        case .notFound: "no alert has this id"
        case .notAllowed(let from, let action): "an alert that is \(from.rawValue) cannot be \(action)"
        }
    }
}

extension AlertTransitionError {
    /// Why an alert that is `current` cannot become `status`; nil when it can. An alert
    /// moves open → acknowledged, and open or acknowledged → resolved or cancelled; nothing
    /// reopens it.
    public static func check(from current: Alert.Status, to status: Alert.Status) -> AlertTransitionError? {
        let allowed: Set<Alert.Status> =
            switch status {
            case .open: []
            case .acknowledged: [.open]
            case .resolved, .cancelled: [.open, .acknowledged]
            }
        guard !allowed.contains(current) else { return nil }
        let action =
            switch status {
            case .open: "reopened"
            case .acknowledged: "acknowledged"
            case .resolved: "resolved"
            case .cancelled: "cancelled"
            }
        return .notAllowed(from: current, action: action)
    }
}

/// A webhook to send: one alert, one target, one escalation level.
public struct DueDelivery: Sendable, Hashable {
    /// Also the `webhook-id` header: the same on every retry, so receivers can drop repeats.
    public var id: UUID
    /// The alert.
    public var alertID: UUID
    /// The escalation level the message is for.
    public var level: Int
    /// The target's name.
    public var target: String
    /// Attempts so far.
    public var attempts: Int
    /// The alert's JSON (the `alert` member of the payload).
    public var details: String
    /// The alert's one-line summary.
    public var summary: String
    /// The record's capture time, ms since the epoch.
    public var capturedAt: Int64
}

/// Where the hub keeps alerts and their outbox: the deliveries to send, retry and escalate.
/// Alerts for ratings are raised by ``RecordStore/commit(_:)`` inside its transaction; this
/// protocol raises the silent rules' alerts, hands out due deliveries, records how they went,
/// escalates, and moves alerts along their life. Every method blocks; call them off the
/// event loops and off Swift concurrency's threads (``StoreAccess`` hops for async code).
public protocol AlertStore: Sendable {
    /// Calls `handler` with the number of alerts raised after each transaction that raised some.
    func onAlertsRaised(_ handler: @escaping @Sendable (Int) -> Void)

    /// Raises, for each silent rule, one alert per watched node that is silent under it at
    /// `now`, with its deliveries, in one transaction. A node alerts once per silence.
    /// Returns the alerts raised.
    func raiseSilenceAlerts(fleet: [FleetNode], now: Int64) throws -> Int

    /// Pending deliveries whose time has come, oldest first, skipping `busy` ones. Deliveries
    /// of alerts resolved or cancelled meanwhile are dropped (state `skipped`).
    func dueDeliveries(now: Int64, limit: Int, excluding busy: Set<UUID>) throws -> [DueDelivery]

    /// The target took the delivery. (With several hubs, only the hub holding the delivery's
    /// claim records it; after its lease ended the claim is another hub's.)
    func deliveryDone(_ id: UUID, at time: Int64) throws

    /// The target refused or could not be reached: try again at `retryAt`, or give up
    /// (state `dead`) when `retryAt` is nil.
    func deliveryFailed(_ id: UUID, error: String, retryAt: Int64?) throws

    /// Open alerts past their deadline with levels left move up one level: a delivery to the
    /// rule's next escalation target and a new deadline. Returns the alerts escalated.
    func escalateOverdue(now: Int64) throws -> [(id: UUID, level: Int)]

    /// Forgets the window counts of ratings that arrived before `time`
    /// (``AlertEvaluator/windowHorizon(now:)``).
    func pruneAlertWindows(before time: Int64) throws

    /// Counts of deliveries by state, for metrics and tests.
    func deliveryCounts() throws -> [String: Int]

    /// Alerts, newest first, filtered by status, site, the sites of a scope (a token's) and
    /// whether overdue at `now`.
    func alerts(status: Alert.Status?, site: String?, within scope: SiteScope, overdueAt now: Int64?, limit: Int) throws -> [Alert]

    /// One alert.
    func alert(_ id: UUID) throws -> Alert?

    /// Moves an alert along its life: `acknowledge` (open → acknowledged), `resolve` or
    /// `cancel` (open or acknowledged → resolved or cancelled). The note is kept, and the
    /// change enters the audit trail (``AccessStore/auditTrail(object:limit:)``) in the same
    /// transaction, as `alert.STATUS` by `actor`.
    func transition(_ id: UUID, to status: Alert.Status, note: String, by actor: AuditActor, at time: Int64) throws -> Result<Alert, AlertTransitionError>
}


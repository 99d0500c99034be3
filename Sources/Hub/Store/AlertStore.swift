import Foundation
import Wire

/// An alert as the store and the HTTP API show it. Every alert is also a case: someone owns
/// it, works it and closes it with a note (docs/ALERTS.md, "Cases").
public struct Alert: Sendable, Hashable, Codable {
    /// Where a case is in its life: open → in progress ⇄ waiting → completed or cancelled.
    public enum Status: String, Sendable, Hashable, Codable, CaseIterable {
        /// Raised; nobody has acted on it yet. Escalates when its first-action deadline passes.
        case open
        /// Someone is working on it.
        case inProgress
        /// Waiting for the customer, or for an answer from another team.
        case waiting
        /// Done: the closing note says what was done and whether the customer was reached.
        case completed
        /// Withdrawn (a false alarm, a test), with a note saying why.
        case cancelled

        /// Completed or cancelled: nothing moves it any more.
        public var isClosed: Bool { self == .completed || self == .cancelled }
    }

    /// Stable id, derived from the rule and the record (or window) that raised it.
    public var id: UUID
    /// The rule's name.
    public var rule: String
    /// `record`, `window` or `silent`.
    public var kind: String
    /// Where the case is in its life.
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
    /// When it escalates if still open (nil: it does not): the rule's `acknowledgeWithin`.
    public var deadlineAt: Int64?
    /// When the case is due to be closed (nil: no SLA): the rule's `closeWithin`.
    public var dueAt: Int64?
    /// Who owns the case ("" while nobody does).
    public var owner: String
    /// When it first left `open` (started, set waiting, completed or cancelled).
    public var firstActionAt: Int64?
    /// When it was completed or cancelled.
    public var closedAt: Int64?
    /// When it last changed (raised, a status, an owner): the stuck list reads it.
    public var updatedAt: Int64
    /// Whether the customer was reached, as the closing note of a completed case says.
    public var customerReached: Bool?
    /// The notes of every change, oldest first, one per line.
    public var note: String

    /// Past its first-action deadline while open, or past its due time while not closed.
    public func isOverdue(at now: Int64) -> Bool {
        (self.status == .open && (self.deadlineAt.map { $0 <= now } ?? false))
            || (!self.status.isClosed && (self.dueAt.map { $0 <= now } ?? false))
    }
}

/// One change a person makes to a case.
public struct CaseChange: Sendable, Hashable {
    /// What changes.
    public enum Kind: Sendable, Hashable {
        /// The case moves to this status.
        case status(Alert.Status)
        /// The case gets this owner ("" takes it from its owner).
        case assign(String)
    }

    /// What changes.
    public var kind: Kind
    /// Why, or what was done; required to complete or cancel.
    public var note: String
    /// For completing a case raised by a rating: whether the customer was reached.
    public var customerReached: Bool?

    /// A change of `kind` with `note`.
    public init(_ kind: Kind, note: String = "", customerReached: Bool? = nil) {
        self.kind = kind
        self.note = note
        self.customerReached = customerReached
    }

    /// The audit trail's and the webhook's name for it: `case.inProgress`, `case.assigned`, …
    public var event: String {
        switch self.kind {
        case .status(let status): "case.\(status.rawValue)"
        case .assign: "case.assigned"
        }
    }

    /// Longest owner name, in characters.
    public static let maxOwnerLength = 200

    /// `alert` after this change by someone at `time`, or why it cannot happen. The stores
    /// call it on the row they locked, so both apply the same rules:
    /// - open → in progress or waiting; in progress ⇄ waiting; any of these → completed or
    ///   cancelled; nothing leaves completed or cancelled, and a status does not "change" to itself;
    /// - completing or cancelling needs a note; completing a case raised by a rating needs
    ///   `customerReached`;
    /// - an owner can be set on a case that is not closed, up to 200 characters with no
    ///   control characters.
    public func applied(to alert: Alert, at time: Int64) -> Result<Alert, AlertTransitionError> {
        var updated = alert
        let note = self.note.trimmingCharacters(in: .whitespacesAndNewlines)
        switch self.kind {
        case .status(let status):
            if let refusal = AlertTransitionError.check(from: alert.status, to: status) { return .failure(refusal) }
            if status.isClosed, note.isEmpty { return .failure(.noteRequired(status)) }
            if status == .completed, alert.kind == "record", self.customerReached == nil { return .failure(.customerReachedRequired) }
            updated.status = status
            if alert.status == .open { updated.firstActionAt = time }
            if status.isClosed { updated.closedAt = time }
            if status == .completed { updated.customerReached = self.customerReached }
        case .assign(let owner):
            guard !alert.status.isClosed else { return .failure(.notAllowed(from: alert.status, action: "assigned")) }
            guard owner.unicodeScalars.count <= Self.maxOwnerLength, !owner.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
            else { return .failure(.invalidOwner) }
            guard owner != alert.owner else { return .failure(.unchanged) }
            updated.owner = owner
        }
        updated.updatedAt = time
        if !note.isEmpty { updated.note = Self.kept(alert.note.isEmpty ? note : alert.note + "\n" + note) }
        return .success(updated)
    }

    /// Most bytes of notes a case keeps; the audit trail keeps every note whole.
    public static let maxNotesBytes = 16 * 1024

    /// `notes` whole when they fit ``maxNotesBytes``, else their newest lines that do,
    /// after a line saying that older notes are in the history.
    static func kept(_ notes: String) -> String {
        guard notes.utf8.count > Self.maxNotesBytes else { return notes }
        let marker = "(older notes: see the case's history)"
        var kept: [Substring] = []
        var size = marker.utf8.count
        for line in notes.split(separator: "\n", omittingEmptySubsequences: false).reversed() {
            guard size + line.utf8.count + 1 <= Self.maxNotesBytes else { break }
            size += line.utf8.count + 1
            kept.append(line)
        }
        return ([Substring(marker)] + kept.reversed()).joined(separator: "\n")
    }
}

/// Why a case could not change.
public enum AlertTransitionError: Error, Sendable, Hashable, CustomStringConvertible {
    /// No alert has this id.
    case notFound
    /// The case's status does not allow it (for example completing a cancelled case).
    case notAllowed(from: Alert.Status, action: String)
    /// Completing or cancelling needs a note.
    case noteRequired(Alert.Status)
    /// Completing a case raised by a rating needs to say whether the customer was reached.
    case customerReachedRequired
    /// The owner is too long or holds control characters.
    case invalidOwner
    /// The case already has this owner.
    case unchanged

    /// A sentence for the API's error message.
    public var description: String {
        switch self {
        case .notFound: "no alert has this id"
        case .notAllowed(let from, let action): "a case that is \(from.rawValue) cannot be \(action)"
        case .noteRequired(let status):
            status == .completed
                ? "completing a case needs a note saying what was done" : "cancelling a case needs a note saying why"
        case .customerReachedRequired: "completing a case raised by a rating needs customerReached (true or false)"
        case .invalidOwner: "the owner must be at most \(CaseChange.maxOwnerLength) characters, without control characters"
        case .unchanged: "the case already has this owner"
        }
    }

    /// Why a case that is `current` cannot become `status`; nil when it can.
    public static func check(from current: Alert.Status, to status: Alert.Status) -> AlertTransitionError? {
        let allowed: Set<Alert.Status> =
            switch status {
            case .open: []
            case .inProgress: [.open, .waiting]
            case .waiting: [.open, .inProgress]
            case .completed, .cancelled: [.open, .inProgress, .waiting]
            }
        guard !allowed.contains(current) else { return nil }
        let action =
            switch status {
            case .open: "reopened"
            case .inProgress: "started"
            case .waiting: "set waiting"
            case .completed: "completed"
            case .cancelled: "cancelled"
            }
        return .notAllowed(from: current, action: action)
    }
}

/// A webhook to send: one event of one alert, to one target.
public struct DueDelivery: Sendable, Hashable {
    /// Also the `webhook-id` header: the same on every retry, so receivers can drop repeats.
    public var id: UUID
    /// The alert.
    public var alertID: UUID
    /// The escalation level the message is for.
    public var level: Int
    /// The event: `alert.raised`, `alert.escalated` or a `case.…` event (``CaseEvent``).
    public var event: String
    /// For a `case.…` event, the case as the change left it (the payload's `case` member).
    public var payload: String?
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

    /// Cases not closed whose reminder time has come get a `case.reminder` to every target
    /// told of them so far, once; those whose due time has passed get a `case.overdue` to
    /// the same targets and move up one escalation level when they have one left (the next
    /// target gets the `case.overdue`), once. Returns what it sent, by event.
    func followUpCases(now: Int64) throws -> [(id: UUID, event: String)]

    /// Forgets the window counts of ratings that arrived before `time`
    /// (``AlertEvaluator/windowHorizon(now:)``).
    func pruneAlertWindows(before time: Int64) throws

    /// Counts of deliveries by state, for metrics and tests.
    func deliveryCounts() throws -> [String: Int]

    /// Alerts that match `query` (``AlertQuery``), in its order.
    func alerts(_ query: AlertQuery) throws -> [Alert]

    /// One alert.
    func alert(_ id: UUID) throws -> Alert?

    /// Makes `change` to a case (``CaseChange/applied(to:at:)`` says what may change): the
    /// row is locked, the change enters the audit trail (``AccessStore/auditTrail(object:limit:)``)
    /// as ``CaseChange/event`` by `actor`, and a webhook of the event is queued to every
    /// target told of the case so far, all in one transaction.
    func change(_ id: UUID, _ change: CaseChange, by actor: AuditActor, at time: Int64) throws -> Result<Alert, AlertTransitionError>
}

/// Which alerts ``AlertStore/alerts(_:)`` lists: every filter set must match; newest first.
public struct AlertQuery: Sendable, Hashable {
    /// Only these statuses (empty: any).
    public var statuses: Set<Alert.Status> = []
    /// Only this site.
    public var site: String?
    /// Only cases of this owner ("" for cases nobody owns).
    public var owner: String?
    /// Only the sites of this scope (a token's).
    public var scope: SiteScope
    /// Only cases overdue at this time (``Alert/isOverdue(at:)``).
    public var overdueAt: Int64?
    /// Only cases not closed and unchanged since this time (stuck).
    public var unchangedSince: Int64?
    /// Leave out each case's summary and notes (a report needs neither).
    public var brief = false
    /// Only cases raised at or after this time…
    public var raisedFrom: Int64?
    /// …and before this one.
    public var raisedBefore: Int64?
    /// Most alerts returned.
    public var limit: Int

    /// A query for at most `limit` alerts within `scope`.
    public init(scope: SiteScope, limit: Int) {
        self.scope = scope
        self.limit = limit
    }
}

extension AlertStore {
    /// Alerts of one status (or any) and one site (or any) within `scope`, overdue at `now`
    /// when given, newest first: ``alerts(_:)`` for the common filters.
    public func alerts(status: Alert.Status?, site: String?, within scope: SiteScope, overdueAt now: Int64?, limit: Int) throws -> [Alert] {
        var query = AlertQuery(scope: scope, limit: limit)
        if let status { query.statuses = [status] }
        query.site = site
        query.overdueAt = now
        return try self.alerts(query)
    }
}

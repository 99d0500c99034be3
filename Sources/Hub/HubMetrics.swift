import CoreMetrics
import ListenerLimits
import NodeServer

/// The hub's metrics. Labels have bounded values only (outcomes, reject code names).
public struct HubMetrics: Sendable {
    /// The protocol server's metrics (connections, handshakes, refusals, rejects, bytes).
    public let server: NodeServerMetrics
    let recordsStored: Counter
    let batchesStored: Counter
    let batchesDuplicate: Counter
    let commitDuration: Timer
    let commitBatches: Recorder
    /// Transactions that held a fresh alert's batch (and ended early for it).
    let priorityCommits: Counter
    let alertsRaised: Counter
    let alertsEscalated: Counter
    let alertLatency: Timer
    /// When the server certificate expires, Unix seconds: alert on it well before.
    let tlsCertificateExpiry: Gauge
    /// Registered, unrevoked nodes seen before and not for `fleet.silentAfterMinutes`.
    let nodesSilent: Gauge
    /// 1 while the store answers its ping, 0 while it does not.
    let storeUp: Gauge
    /// Store connections leased now (PostgreSQL).
    let storePoolInUse: Gauge
    /// The store's connection pool size (PostgreSQL).
    let storePoolSize: Gauge
    let factory: any MetricsFactory

    /// Creates the metrics in `factory` (the hub's Prometheus registry, or a test factory);
    /// `store` (`sqlite` or `postgres`) labels the commit and store metrics.
    public init(factory: any MetricsFactory, store: String = "sqlite") {
        self.factory = factory
        self.server = NodeServerMetrics(factory: factory, prefix: "feedback_hub")
        self.recordsStored = Counter(label: "feedback_hub_records_stored_total", factory: factory)
        self.batchesStored = Counter(label: "feedback_hub_batches_total", dimensions: [("outcome", "stored")], factory: factory)
        self.batchesDuplicate = Counter(label: "feedback_hub_batches_total", dimensions: [("outcome", "duplicate")], factory: factory)
        self.commitDuration = Timer(label: "feedback_hub_commit_duration_seconds", dimensions: [("store", store)], factory: factory)
        self.commitBatches = Recorder(label: "feedback_hub_commit_batches", factory: factory)
        self.priorityCommits = Counter(label: "feedback_hub_priority_commits_total", factory: factory)
        self.alertsRaised = Counter(label: "feedback_hub_alerts_raised_total", factory: factory)
        self.alertsEscalated = Counter(label: "feedback_hub_alerts_escalated_total", factory: factory)
        self.alertLatency = Timer(label: "feedback_hub_alert_latency_seconds", factory: factory)
        self.tlsCertificateExpiry = Gauge(label: "feedback_hub_tls_certificate_expiry_timestamp_seconds", factory: factory)
        self.nodesSilent = Gauge(label: "feedback_hub_nodes_silent", factory: factory)
        self.storeUp = Gauge(label: "feedback_hub_store_up", dimensions: [("store", store)], factory: factory)
        self.storePoolInUse = Gauge(label: "feedback_hub_store_pool_connections", dimensions: [("state", "in_use")], factory: factory)
        self.storePoolSize = Gauge(label: "feedback_hub_store_pool_connections", dimensions: [("state", "size")], factory: factory)
        // Made at start, at 0: a counter that first appears at 1 is invisible to increase(),
        // and the first dead delivery after a restart must page (ops/prometheus).
        for outcome in ["delivered", "failed", "dead"] { self.alertDeliveries(outcome: outcome).increment(by: 0) }
    }

    /// Buckets for the case durations (time to first action, to close): a minute to a
    /// week, where the default duration buckets stop at 10 s.
    public static let caseDurationBuckets: [Duration] = [
        .seconds(60), .seconds(300), .seconds(900), .seconds(1_800), .seconds(3_600), .seconds(7_200), .seconds(14_400),
        .seconds(28_800), .seconds(86_400), .seconds(172_800), .seconds(345_600), .seconds(604_800),
    ]

    /// Alert delivery attempts by outcome: `delivered`, `failed` (will retry), `dead` (given up).
    func alertDeliveries(outcome: String) -> Counter {
        Counter(label: "feedback_hub_alert_deliveries_total", dimensions: [("outcome", outcome)], factory: self.factory)
    }

    /// Case follow-ups sent, by event: `case.reminder`, `case.overdue`.
    func caseFollowUps(_ event: String) -> Counter {
        Counter(label: "feedback_hub_case_followups_total", dimensions: [("event", event)], factory: self.factory)
    }

    /// A person's change to a case, made at `time`: counted by event; the first action and
    /// the close (those this change made: their time is `time`) timed from the moment the
    /// case was raised; a close counted by status and whether it met the case's due time
    /// (`met`, `missed`, or `none` without one).
    func caseChanged(_ after: Alert, at time: Int64, event: String) {
        Counter(label: "feedback_hub_case_changes_total", dimensions: [("event", event)], factory: self.factory).increment()
        guard event != "case.assigned" else { return }
        if let first = after.firstActionAt, first == time {
            Timer(label: "feedback_hub_case_first_action_seconds", factory: self.factory)
                .recordNanoseconds(max(0, first - after.createdAt) * 1_000_000)
        }
        if let closed = after.closedAt, closed == time {
            Timer(label: "feedback_hub_case_close_seconds", dimensions: [("status", after.status.rawValue)], factory: self.factory)
                .recordNanoseconds(max(0, closed - after.createdAt) * 1_000_000)
            let sla = after.dueAt.map { closed <= $0 ? "met" : "missed" } ?? "none"
            Counter(
                label: "feedback_hub_cases_closed_total", dimensions: [("status", after.status.rawValue), ("sla", sla)], factory: self.factory
            ).increment()
        }
    }

    /// An operations-port connection closed by its listener's limits.
    func httpConnectionClosed(_ reason: HTTPConnectionSlots.Closure) {
        Counter(label: "feedback_hub_http_connections_closed_total", dimensions: [("reason", reason.rawValue)], factory: self.factory)
            .increment()
    }
}

extension HubMetrics {
    /// An operations-port request refused before routing: `missing`, `malformed` or `invalid`
    /// token, or `foreign_origin`.
    func httpAuthRefused(_ reason: String) {
        Counter(label: "feedback_hub_http_auth_refusals_total", dimensions: [("reason", reason)], factory: self.factory).increment()
    }
}

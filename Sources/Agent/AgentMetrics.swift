import ListenerLimits
import Prometheus
import Synchronization

/// The agent's metrics, in a Prometheus registry of its own (an embedding program's
/// `MetricsSystem` is left alone), with a `# HELP` line for every metric.
///
/// The spool, the uplink and the sources keep their own counts (``FeedbackAgent/status``);
/// ``update(from:quotaBytes:now:)`` brings the registry up to them, and ``HTTPIntake``
/// calls it at every scrape of `/metrics`. Label values are bounded: source names from the
/// configuration, outcomes, HTTP status codes and the intake's error codes.
public final class AgentMetrics: Sendable {
    /// The registry behind `/metrics`; `emitToBuffer()` gives the page.
    public let registry: PrometheusCollectorRegistry
    /// The counts last published, by series: counters move by the difference.
    private let published = Mutex<[String: Int]>([:])

    /// Creates the metrics in a new registry of the agent's own.
    public init() {
        self.registry = PrometheusCollectorRegistry()
        self.responded(code: 202, reason: "accepted", count: 0)
    }

    /// Publishes `status`, taken at `now` (ms since the epoch), for a spool whose quota is
    /// `quotaBytes`. Call it from one place per registry: the counts are the agent's since
    /// it started.
    public func update(from status: FeedbackAgent.Status, quotaBytes: Int, now: Int64) {
        let spool = status.spool
        let uplink = status.uplink
        let oldest = spool.oldestPendingCapturedAt.map { Double(max(now - $0, 0)) / 1000 } ?? 0
        self.set(.spoolRecords, Double(spool.unsealedRecords + spool.unacknowledgedRecords))
        self.set(.spoolUnsealedRecords, Double(spool.unsealedRecords))
        self.set(.spoolBatches, Double(spool.unacknowledgedBatches))
        self.set(.spoolBytes, Double(spool.bytes))
        self.set(.spoolQuotaBytes, Double(quotaBytes))
        self.set(.oldestPendingSeconds, oldest)
        self.set(.connected, uplink.connectedHub == nil ? 0 : 1)
        self.published.withLock { published in
            self.count(.submitted, status.submitted, &published)
            self.count(.batchesSent, uplink.batchesSent, &published)
            self.count(.batchesAcknowledged, uplink.batchesAcknowledged, &published)
            self.count(.batchesDeadLettered, uplink.batchesDeadLettered, &published)
            self.count(.batchesRetried, uplink.batchesRetried, &published)
            self.count(.connections, uplink.connections, &published)
            self.count(.connectFailures, uplink.connectFailures, &published)
            for (name, stats) in status.sources {
                let outcomes = [("rating", stats.ratings), ("skipped", stats.skipped), ("bad", stats.badLines), ("dropped", stats.dropped)]
                for (outcome, value) in outcomes {
                    self.count(.sourceLines, value, &published, labels: [("source", name), ("outcome", outcome)])
                }
                self.count(.sourceOpens, stats.opens, &published, labels: [("source", name)])
                self.set(.sourceBuffered, Double(stats.buffered), labels: [("source", name)])
            }
        }
    }

    /// One answer of the intake's `POST /v1/feedback`: its HTTP status and its reason
    /// (`accepted`, or the error code of the body).
    func responded(code: Int, reason: String, count: Int64 = 1) {
        self.registry.makeCounter(descriptor: Metric.intakeResponses.descriptor, labels: [("code", "\(code)"), ("reason", reason)])
            .increment(by: count)
    }

    /// An intake connection closed by its listener's limits.
    func httpConnectionClosed(_ reason: HTTPConnectionSlots.Closure) {
        self.registry.makeCounter(descriptor: Metric.httpConnectionsClosed.descriptor, labels: [("reason", reason.rawValue)])
            .increment()
    }

    private func set(_ metric: Metric, _ value: Double, labels: [(String, String)] = []) {
        self.registry.makeGauge(descriptor: metric.descriptor, labels: labels).set(to: value)
    }

    private func count(_ metric: Metric, _ value: Int, _ published: inout [String: Int], labels: [(String, String)] = []) {
        // Label values may hold any byte; a NUL-joined key keeps two series apart.
        let key = ([metric.rawValue] + labels.flatMap { [$0.0, $0.1] }).joined(separator: "\u{0}")
        let counter = self.registry.makeCounter(descriptor: metric.descriptor, labels: labels)
        let delta = value - published[key, default: 0]
        if delta > 0 {
            counter.increment(by: Int64(delta))
            published[key] = value
        }
    }

    /// Every metric the agent serves. docs/AGENT.md and docs/SOURCES.md list them.
    enum Metric: String {
        case submitted = "feedback_agent_submitted_total"
        case spoolRecords = "feedback_agent_spool_records"
        case spoolUnsealedRecords = "feedback_agent_spool_unsealed_records"
        case spoolBatches = "feedback_agent_spool_batches"
        case spoolBytes = "feedback_agent_spool_bytes"
        case spoolQuotaBytes = "feedback_agent_spool_quota_bytes"
        case oldestPendingSeconds = "feedback_agent_oldest_pending_seconds"
        case batchesSent = "feedback_agent_batches_sent_total"
        case batchesAcknowledged = "feedback_agent_batches_acknowledged_total"
        case batchesDeadLettered = "feedback_agent_batches_dead_lettered_total"
        case batchesRetried = "feedback_agent_batches_retried_total"
        case connections = "feedback_agent_connections_total"
        case connectFailures = "feedback_agent_connect_failures_total"
        case connected = "feedback_agent_connected"
        case intakeResponses = "feedback_agent_intake_responses_total"
        case httpConnectionsClosed = "feedback_agent_http_connections_closed_total"
        case sourceLines = "feedback_agent_source_lines_total"
        case sourceOpens = "feedback_agent_source_opens_total"
        case sourceBuffered = "feedback_agent_source_buffered_events"

        /// The whole name (with its unit) and the help text.
        var descriptor: MetricNameDescriptor {
            MetricNameDescriptor(metricName: self.rawValue, unitName: "", helpText: self.help)
        }

        var help: String {
            switch self {
            case .submitted: "Ratings taken through submit and the HTTP intake since start."
            case .spoolRecords: "Records in the spool not yet acknowledged by a hub, sealed or not."
            case .spoolUnsealedRecords: "Records in the spool not yet sealed into a batch."
            case .spoolBatches: "Sealed batches in the spool waiting for a hub's acknowledgement."
            case .spoolBytes: "Bytes of the spool's segment files."
            case .spoolQuotaBytes: "The spool's quota in bytes: at it, new ratings are refused."
            case .oldestPendingSeconds: "Age of the oldest record not yet acknowledged by a hub, 0 when none."
            case .batchesSent: "BATCH frames sent to hubs, re-sends included."
            case .batchesAcknowledged: "Batches a hub acknowledged."
            case .batchesDeadLettered: "Batches a hub refused for good, moved to the dead-letter folder."
            case .batchesRetried: "Retryable refusals (REJECT) of batches, sent again later."
            case .connections: "Hub connections established."
            case .connectFailures: "Failed attempts to connect to a hub."
            case .connected: "1 while connected to a hub, else 0."
            case .intakeResponses: "Answers of the HTTP intake to POST /v1/feedback, by HTTP status and reason (accepted or the error code)."
            case .httpConnectionsClosed: "HTTP intake connections closed by the listener's limits, by reason."
            case .sourceLines: "Lines or key events read by edge sources, by outcome: rating, skipped, bad, dropped (a full kiosk buffer)."
            case .sourceOpens: "Times a kiosk device was opened or reopened."
            case .sourceBuffered: "Kiosk key presses read and not yet in the spool."
            }
        }
    }
}

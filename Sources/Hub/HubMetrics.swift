import CoreMetrics
import ListenerLimits
import Wire

/// The hub's metrics. Labels have bounded values only (outcomes, reject code names).
public struct HubMetrics: Sendable {
    let recordsStored: Counter
    let batchesStored: Counter
    let batchesDuplicate: Counter
    let commitDuration: Timer
    let commitBatches: Recorder
    let connections: Gauge
    let handshakes: Gauge
    let handshakesEvicted: Counter
    let bytesReceived: Counter
    let alertsRaised: Counter
    let alertsEscalated: Counter
    let alertLatency: Timer
    /// When the server certificate expires, Unix seconds: alert on it well before.
    let tlsCertificateExpiry: Gauge
    private let factory: any MetricsFactory

    /// Creates the metrics in `factory` (the hub's Prometheus registry, or a test factory).
    public init(factory: any MetricsFactory) {
        self.factory = factory
        self.recordsStored = Counter(label: "feedback_hub_records_stored_total", factory: factory)
        self.batchesStored = Counter(label: "feedback_hub_batches_total", dimensions: [("outcome", "stored")], factory: factory)
        self.batchesDuplicate = Counter(label: "feedback_hub_batches_total", dimensions: [("outcome", "duplicate")], factory: factory)
        self.commitDuration = Timer(label: "feedback_hub_commit_duration_seconds", factory: factory)
        self.commitBatches = Recorder(label: "feedback_hub_commit_batches", factory: factory)
        self.connections = Gauge(label: "feedback_hub_connections", factory: factory)
        self.handshakes = Gauge(label: "feedback_hub_handshakes", factory: factory)
        self.handshakesEvicted = Counter(label: "feedback_hub_handshakes_evicted_total", factory: factory)
        self.bytesReceived = Counter(label: "feedback_hub_bytes_received_total", factory: factory)
        self.alertsRaised = Counter(label: "feedback_hub_alerts_raised_total", factory: factory)
        self.alertsEscalated = Counter(label: "feedback_hub_alerts_escalated_total", factory: factory)
        self.alertLatency = Timer(label: "feedback_hub_alert_latency_seconds", factory: factory)
        self.tlsCertificateExpiry = Gauge(label: "feedback_hub_tls_certificate_expiry_timestamp_seconds", factory: factory)
    }

    /// Alert delivery attempts by outcome: `delivered`, `failed` (will retry), `dead` (given up).
    func alertDeliveries(outcome: String) -> Counter {
        Counter(label: "feedback_hub_alert_deliveries_total", dimensions: [("outcome", outcome)], factory: self.factory)
    }

    /// Why a protocol connection was closed without a slot.
    enum Refusal: String {
        /// Every handshake slot is taken by handshakes younger than a second.
        case handshakesFull = "handshakes_full"
        /// The source address holds its maximum of handshakes.
        case addressFull = "address_full"
        /// Authenticated, but every connection slot is taken (`tooManyConnections`).
        case connectionsFull = "connections_full"
        /// The hub is draining.
        case shuttingDown = "shutting_down"
    }

    func connectionRefused(_ reason: Refusal) {
        Counter(label: "feedback_hub_connections_refused_total", dimensions: [("reason", reason.rawValue)], factory: self.factory)
            .increment()
    }

    /// An operations-port connection closed by its listener's limits.
    func httpConnectionClosed(_ reason: HTTPConnectionSlots.Closure) {
        Counter(label: "feedback_hub_http_connections_closed_total", dimensions: [("reason", reason.rawValue)], factory: self.factory)
            .increment()
    }

    func rejected(_ code: RejectCode) {
        Counter(label: "feedback_hub_rejects_total", dimensions: [("code", code.description)], factory: self.factory).increment()
    }
}

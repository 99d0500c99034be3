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
    }

    /// Alert delivery attempts by outcome: `delivered`, `failed` (will retry), `dead` (given up).
    func alertDeliveries(outcome: String) -> Counter {
        Counter(label: "feedback_hub_alert_deliveries_total", dimensions: [("outcome", outcome)], factory: self.factory)
    }

    /// A protocol connection closed without a slot: `handshakes_full`, `address_full` (its
    /// source holds its maximum of handshakes) or `connections_full` (after authentication).
    func connectionRefused<Occupant>(_ refusal: ConnectionSlots<Occupant>.Refusal, afterAuthentication: Bool = false) {
        let reason =
            switch refusal {
            case .addressFull: "address_full"
            case .full: afterAuthentication ? "connections_full" : "handshakes_full"
            }
        Counter(label: "feedback_hub_connections_refused_total", dimensions: [("reason", reason)], factory: self.factory).increment()
    }

    func rejected(_ code: RejectCode) {
        Counter(label: "feedback_hub_rejects_total", dimensions: [("code", code.description)], factory: self.factory).increment()
    }
}

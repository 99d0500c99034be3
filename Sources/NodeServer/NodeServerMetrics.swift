import CoreMetrics
import Wire

/// A node server's metrics, named `<prefix>_…` (`feedback_hub_…` for the hub). Labels have
/// bounded values only (refusal reasons, reject code names).
public struct NodeServerMetrics: Sendable {
    /// Authenticated connections open.
    let connections: Gauge
    /// Connections between accept and WELCOME.
    let handshakes: Gauge
    /// Handshakes closed to make room for newer ones.
    let handshakesEvicted: Counter
    /// Bytes received on protocol connections (TLS records, before decryption).
    let bytesReceived: Counter
    private let prefix: String
    private let factory: any MetricsFactory

    /// Creates the metrics in `factory`, their names starting with `prefix` and `_`.
    public init(factory: any MetricsFactory, prefix: String = "feedback_hub") {
        self.factory = factory
        self.prefix = prefix
        self.connections = Gauge(label: "\(prefix)_connections", factory: factory)
        self.handshakes = Gauge(label: "\(prefix)_handshakes", factory: factory)
        self.handshakesEvicted = Counter(label: "\(prefix)_handshakes_evicted_total", factory: factory)
        self.bytesReceived = Counter(label: "\(prefix)_bytes_received_total", factory: factory)
    }

    /// Why a protocol connection was closed without a slot.
    enum Refusal: String {
        /// Every handshake slot is taken by handshakes younger than a second.
        case handshakesFull = "handshakes_full"
        /// The source address holds its maximum of handshakes.
        case addressFull = "address_full"
        /// Authenticated, but every connection slot is taken (`tooManyConnections`).
        case connectionsFull = "connections_full"
        /// The server is draining.
        case shuttingDown = "shutting_down"
    }

    func connectionRefused(_ reason: Refusal) {
        Counter(label: "\(self.prefix)_connections_refused_total", dimensions: [("reason", reason.rawValue)], factory: self.factory)
            .increment()
    }

    func rejected(_ code: RejectCode) {
        Counter(label: "\(self.prefix)_rejects_total", dimensions: [("code", code.description)], factory: self.factory).increment()
    }
}

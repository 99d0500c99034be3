import Foundation
import Logging
import NIOSSL

/// The hub's own TLS certificate, watched: the server context itself is ``ServerTLS``'s.
enum HubTLS {
    /// Nodes refuse an expired certificate, so the hub says when its own expires: logged at
    /// start (a warning within this many days, an error once past), and as a metric.
    static let expiryWarningDays = 30

    /// Logs the server certificate's expiry and sets
    /// `feedback_hub_tls_certificate_expiry_timestamp_seconds`.
    static func reportExpiry(of tls: HubConfiguration.TLS, metrics: HubMetrics, logger: Logger, now: Date = Date()) {
        // An unreadable file has already stopped the hub in `serverContext`.
        guard let leaf = try? NIOSSLCertificate.fromPEMFile(tls.certificate).first else { return }
        let expiry = Date(timeIntervalSince1970: TimeInterval(leaf.notValidAfter))
        metrics.tlsCertificateExpiry.record(expiry.timeIntervalSince1970)
        let left = expiry.timeIntervalSince(now)
        let metadata: Logger.Metadata = [
            "certificate": "\(tls.certificate)",
            "notValidAfter": "\(expiry.formatted(.iso8601))",
            "daysLeft": "\(Int((left / 86_400).rounded(.towardZero)))",
        ]
        if left <= 0 {
            logger.error("the hub's TLS certificate has expired: nodes refuse it; renew it (docs/OPERATIONS.md)", metadata: metadata)
        } else if left < Double(Self.expiryWarningDays * 86_400) {
            logger.warning("the hub's TLS certificate expires soon: renew it (docs/OPERATIONS.md)", metadata: metadata)
        } else {
            logger.info("hub TLS certificate", metadata: metadata)
        }
    }
}

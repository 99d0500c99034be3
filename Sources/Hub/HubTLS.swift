import Foundation
import Logging
import NIOSSL
import Wire

/// Builds the hub's TLS context once: TLS 1.3 only, client certificates required when a
/// client CA is configured.
enum HubTLS {
    static func serverContext(_ tls: HubConfiguration.TLS) throws -> NIOSSLContext {
        do {
            let chain = try NIOSSLCertificate.fromPEMFile(tls.certificate)
            let key = try NIOSSLPrivateKey(file: tls.privateKey, format: .pem)
            var configuration = TLSConfiguration.makeServerConfiguration(
                certificateChain: chain.map { .certificate($0) },
                privateKey: .privateKey(key)
            )
            configuration.minimumTLSVersion = .tlsv13
            if let clientCA = tls.clientCA {
                configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(clientCA))
                configuration.certificateVerification = .noHostnameVerification
            }
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw ConfigurationError(path: tls.certificate, "cannot be used for TLS (with key \(tls.privateKey)): \(error)")
        }
    }

    /// Why a node that presented `certificate` may not speak as `nodeID`, or nil when it may.
    ///
    /// With mutual TLS a certificate is bound to one node: it must name `nodeID` as
    /// `urn:uuid:<node id>` (what `feedback-hub certs client` issues), so a kiosk's
    /// certificate cannot carry another node's key or token. Without mutual TLS there is no
    /// certificate and nothing to check.
    static func clientCertificateRefusal(_ certificate: NIOSSLCertificate?, nodeID: UUID) -> Reject? {
        guard let certificate else { return nil }
        let named = (try? certificate.toDERBytes()).map(CertificateAuthority.nodeIDs(inCertificate:)) ?? []
        if named.contains(nodeID) { return nil }
        let message =
            named.isEmpty
            ? "the client certificate names no node (no urn:uuid subject alternative name); issue one with feedback-hub certs client"
            : "the client certificate is for node \(named.map(\.uuidString).joined(separator: ", ")), not \(nodeID)"
        return .connection(.unknownKey, .permanent, message)
    }

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

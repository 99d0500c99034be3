import NIOSSL

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Watches one connection's certificate checks so that a refused handshake can say which
/// check failed and what to do (``TLSFailure``). Lives on the connection's event loop.
///
/// BoringSSL keeps deciding: the verification callback sees BoringSSL's own result for
/// each certificate of the hub's chain and returns it unchanged; it only remembers the
/// certificate BoringSSL refused. Which check that was is read from the certificate (its
/// dates, its issuer against the trusted CAs) and from the alert a hub sends when it
/// refuses ours.
final class TLSDiagnostics {
    private let host: String
    private let nodeID: UUID
    private let trusted: [NIOSSLCertificate]
    private let clientCertificate: NIOSSLCertificate?
    /// The first certificate BoringSSL refused.
    private var refused: NIOSSLCertificate?
    /// The last certificate checked: BoringSSL walks the chain from the root to the leaf.
    private var leaf: NIOSSLCertificate?

    init(host: String, nodeID: UUID, context: NIOSSLContext) {
        self.host = host
        self.nodeID = nodeID
        if case .certificates(let roots) = context.configuration.trustRoots {
            self.trusted = roots
        } else {
            self.trusted = []
        }
        if case .certificate(let certificate) = context.configuration.certificateChain.first {
            self.clientCertificate = certificate
        } else {
            self.clientCertificate = nil
        }
    }

    /// The TLS handler for the connection, reporting each verification result here.
    func clientHandler(context: NIOSSLContext, serverHostname: String?) throws -> NIOSSLClientHandler {
        try Self.make(context: context, serverHostname: serverHostname) { result, certificate in
            switch result {
            case .failed where self.refused == nil: self.refused = certificate
            case .failed, .certificateVerified: break
            }
            self.leaf = certificate
            return result
        }
    }

    /// The per-certificate callback is only reachable through an initializer deprecated in
    /// favour of callbacks that *replace* BoringSSL's verification, which we must not do;
    /// calling it through a protocol requirement keeps the deprecation out of our build
    /// (decisions.md, TLS).
    private static func make<Handler: PreverifyObservingHandler>(
        context: NIOSSLContext, serverHostname: String?, callback: @escaping NIOSSLVerificationCallback
    ) throws -> Handler {
        try Handler(context: context, serverHostname: serverHostname, verificationCallback: callback)
    }

    /// What `error` (from the TLS handler) means, or nil when it is not a certificate refusal.
    func failure(for error: any Error, now: Date = Date()) -> TLSFailure? {
        if let error = error as? NIOSSLExtraError, error == .failedToValidateHostname {
            let names = self.leaf.map(Self.names(of:)) ?? []
            return TLSFailure(
                check: .hubName,
                description: "the hub's certificate is not valid for the name \(self.host): it names "
                    + (names.isEmpty ? "no host name or address" : names.joined(separator: ", "))
                    + ". Connect to one of those names (hubs: in agent.yaml, --hub), or give the hub a certificate that names \(self.host) (feedback-hub init --hostname \(self.host))"
            )
        }
        if let refused = self.refused {
            return self.hubCertificateFailure(refused, now: now)
        }
        // A hub refusing our certificate answers with an alert, which BoringSSL names.
        guard let alert = Self.receivedAlert(in: "\(error)"), Self.certificateAlerts.contains(alert) else { return nil }
        let issue = "feedback-hub certs client --node-id \(self.nodeID)"
        guard let own = self.clientCertificate else {
            return TLSFailure(
                check: .clientCertificateRequired,
                description: "the hub requires a client certificate (mutual TLS) and this agent presents none: have one issued for this node (\(issue)) and set clientCertificate and clientKey in agent.yaml (enroll: --client-certificate and --client-key)"
            )
        }
        let subject = Self.name(own.subjectName)
        if let validity = Self.validity(own, now: now) {
            return TLSFailure(
                check: .clientCertificateExpired,
                description: "the hub refused this agent's client certificate \(subject): it \(validity). Check this machine's clock, or have a new certificate issued (\(issue) --force)"
            )
        }
        switch alert {
        case "CERTIFICATE_EXPIRED":
            return TLSFailure(
                check: .clientCertificateExpired,
                description: "the hub refused this agent's client certificate \(subject) as expired (valid from \(Self.date(own.notValidBefore)) to \(Self.date(own.notValidAfter))): check the hub's clock, or have a new certificate issued (\(issue) --force)"
            )
        case "UNKNOWN_CA", "DECRYPT_ERROR":
            return TLSFailure(
                check: .clientCertificateUnknownCA,
                description: "the hub refused this agent's client certificate \(subject) (issued by \(Self.name(own.issuerName))): it is not signed by the hub's client CA (tls.clientCA). Have one issued by that CA (\(issue))"
            )
        default:
            return TLSFailure(
                check: .clientCertificateRefused,
                description: "the hub refused this agent's client certificate \(subject) (TLS alert \(alert)): it must be a client certificate for this node from the hub's client CA (\(issue))"
            )
        }
    }

    private func hubCertificateFailure(_ refused: NIOSSLCertificate, now: Date) -> TLSFailure {
        let isTrustedCA = self.trusted.contains(refused)
        let which = isTrustedCA ? "the CA certificate \(Self.name(refused.subjectName)) that this agent trusts" : "the hub's certificate \(Self.name(refused.subjectName))"
        let clock = "this machine's clock says \(now.formatted(.iso8601))"
        if now > Self.date(refused.notValidAfter) {
            return TLSFailure(
                check: .hubExpired,
                description: "\(which) expired on \(Self.date(refused.notValidAfter).formatted(.iso8601)) (\(clock)): "
                    + (isTrustedCA
                        ? "give the agent the hub's current CA certificate (ca: in agent.yaml, --ca)"
                        : "renew the hub's certificate (docs/OPERATIONS.md, Certificates and keys) and restart the hub, or correct this machine's clock")
            )
        }
        if now < Self.date(refused.notValidBefore) {
            return TLSFailure(
                check: .hubNotYetValid,
                description: "\(which) is not valid before \(Self.date(refused.notValidBefore).formatted(.iso8601)) and \(clock): check this machine's clock (NTP); if it is right, the certificate was made on a machine with a wrong clock: renew it"
            )
        }
        if isTrustedCA {
            return TLSFailure(
                check: .hubRefused,
                description: "\(which) was refused (it cannot sign the hub's certificate: not a CA, or not for this use): give the agent the CA certificate that signed the hub's (ca:, --ca)"
            )
        }
        let trusted = self.trusted.isEmpty ? "the system's CAs" : self.trusted.map { Self.name($0.subjectName) }.joined(separator: ", ")
        // Every `feedback-hub init` makes its own CA under the same name.
        let sameName =
            self.trusted.contains { $0.subjectName == refused.issuerName }
            ? ", but by another CA of the same name (each feedback-hub init makes its own)" : ""
        return TLSFailure(
            check: .hubUnknownCA,
            description: "\(which) (issued by \(Self.name(refused.issuerName))) is not signed by the CA this agent trusts (\(trusted))\(sameName): give the agent the CA certificate that signed the hub's (the ca.pem the hub's `feedback-hub init` wrote) as ca: in agent.yaml or --ca"
        )
    }

    /// "expired on DATE" or "is not valid before DATE", or nil within its validity.
    private static func validity(_ certificate: NIOSSLCertificate, now: Date) -> String? {
        if now > Self.date(certificate.notValidAfter) { return "expired on \(Self.date(certificate.notValidAfter).formatted(.iso8601))" }
        if now < Self.date(certificate.notValidBefore) { return "is not valid before \(Self.date(certificate.notValidBefore).formatted(.iso8601))" }
        return nil
    }

    private static func date(_ time: time_t) -> Date { Date(timeIntervalSince1970: TimeInterval(time)) }

    /// The common name, quoted, or every name part when there is none.
    private static func name(_ parts: [SSLCertificateName]) -> String {
        if let common = parts.last(where: { $0.type == .commonName }) { return "\"\(common.value)\"" }
        return "\"\(parts.map(\.value).joined(separator: ", "))\""
    }

    /// The DNS names and IP addresses a certificate is valid for.
    private static func names(of certificate: NIOSSLCertificate) -> [String] {
        // `_subjectAlternativeNames` is NIOSSL's only accessor for these (underscored, and
        // the package is pinned); only the message depends on it.
        certificate._subjectAlternativeNames().compactMap { name -> String? in
            let bytes = Array(name.contents)
            switch name.nameType {
            case .dnsName: return String(decoding: bytes, as: UTF8.self)
            case .ipAddress: return Self.address(bytes)
            default: return nil
            }
        }
    }

    private static func address(_ bytes: [UInt8]) -> String? {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let family: Int32
        switch bytes.count {
        case 4: family = AF_INET
        case 16: family = AF_INET6
        default: return nil
        }
        guard inet_ntop(family, bytes, &text, socklen_t(text.count)) != nil else { return nil }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The alerts (RFC 8446 §6.2) a hub sends about the certificate it was shown.
    static let certificateAlerts: Set<String> = [
        "BAD_CERTIFICATE", "UNSUPPORTED_CERTIFICATE", "CERTIFICATE_REVOKED", "CERTIFICATE_EXPIRED", "CERTIFICATE_UNKNOWN",
        "UNKNOWN_CA", "DECRYPT_ERROR", "ACCESS_DENIED", "CERTIFICATE_REQUIRED",
    ]

    /// The alert a peer sent, as BoringSSL names it (`SSLV3_ALERT_X`, `TLSV1_ALERT_X`): `X`.
    static func receivedAlert(in text: String) -> String? {
        guard let range = text.firstRange(of: "_ALERT_") else { return nil }
        let name = text[range.upperBound...].prefix { $0.isUppercase || $0.isNumber || $0 == "_" }
        return name.isEmpty ? nil : String(name)
    }
}

/// ``TLSDiagnostics/clientHandler(context:serverHostname:)``'s way to NIOSSL's
/// per-certificate verification callback.
protocol PreverifyObservingHandler {
    init(context: NIOSSLContext, serverHostname: String?, verificationCallback: NIOSSLVerificationCallback?) throws
}

extension NIOSSLClientHandler: PreverifyObservingHandler {}

import Foundation
import NIOSSL
import Wire
import X509

/// The server side of the protocol's TLS: TLS 1.3 only, and with mutual TLS a client
/// certificate bound to the node that uses it.
public enum ServerTLS {
    /// The files a server's TLS context is built from.
    public struct Files: Sendable, Codable, Equatable {
        /// PEM certificate chain of the server.
        public var certificate: String
        /// PEM private key of the server.
        public var privateKey: String
        /// PEM CA that client certificates must chain to; set it to require mutual TLS.
        public var clientCA: String?

        /// Names the TLS files.
        public init(certificate: String, privateKey: String, clientCA: String? = nil) {
            self.certificate = certificate
            self.privateKey = privateKey
            self.clientCA = clientCA
        }
    }

    /// Builds the server's TLS context, once: TLS 1.3 only, client certificates required
    /// when a client CA is named.
    ///
    /// - Throws: ``NodeServerError`` with code `tlsFiles` when a file is missing or unusable.
    public static func serverContext(_ files: Files) throws -> NIOSSLContext {
        do {
            var configuration = try Self.configuration(files, minimumVersion: .tlsv13)
            if let clientCA = files.clientCA {
                configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(clientCA))
                configuration.certificateVerification = .noHostnameVerification
            }
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw NodeServerError(.tlsFiles, "cannot be used for TLS (with key \(files.privateKey)): \(error)")
        }
    }

    /// A server configuration from a certificate chain and key (PEM files), accepting
    /// `minimumVersion` and later; no client certificates.
    ///
    /// - Throws: NIOSSL's error when a file is missing or unusable.
    public static func configuration(_ files: Files, minimumVersion: TLSVersion) throws -> TLSConfiguration {
        let chain = try NIOSSLCertificate.fromPEMFile(files.certificate)
        let key = try NIOSSLPrivateKey(file: files.privateKey, format: .pem)
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) },
            privateKey: .privateKey(key)
        )
        configuration.minimumTLSVersion = minimumVersion
        return configuration
    }

    /// Why a node that presented `certificate` may not speak as `nodeID`, or nil when it may.
    ///
    /// With mutual TLS a certificate is bound to one node: it must name `nodeID` as
    /// `urn:uuid:<node id>` (what `feedback-hub certs client` issues), so a kiosk's
    /// certificate cannot carry another node's key or token. Without mutual TLS there is no
    /// certificate and nothing to check.
    public static func clientCertificateRefusal(_ certificate: NIOSSLCertificate?, nodeID: UUID) -> Reject? {
        guard let certificate else { return nil }
        let named = (try? certificate.toDERBytes()).map(Self.nodeIDs(inCertificate:)) ?? []
        if named.contains(nodeID) { return nil }
        let message =
            named.isEmpty
            ? "the client certificate names no node (no urn:uuid subject alternative name); issue one with feedback-hub certs client"
            : "the client certificate is for node \(named.map(\.uuidString).joined(separator: ", ")), not \(nodeID)"
        return .connection(.unknownKey, .permanent, message)
    }

    /// How a client certificate names its node: the UUID URN of RFC 9562 (lowercase), as a
    /// URI subject alternative name.
    public static func nodeURI(_ nodeID: UUID) -> String {
        "urn:uuid:\(nodeID.uuidString.lowercased())"
    }

    /// The node ids a certificate (DER) names in its URI subject alternative names.
    public static func nodeIDs(inCertificate der: [UInt8]) -> [UUID] {
        guard let certificate = try? Certificate(derEncoded: der),
            let names = try? certificate.extensions.subjectAlternativeNames
        else { return [] }
        return names.compactMap { name in
            guard case .uniformResourceIdentifier(let uri) = name, uri.lowercased().hasPrefix("urn:uuid:") else { return nil }
            return UUID(uuidString: String(uri.dropFirst("urn:uuid:".count)))
        }
    }
}

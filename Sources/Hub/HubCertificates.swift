import Crypto
import Foundation
import SwiftASN1
import X509

/// Makes the private CA and server certificate a first run needs, without the openssl CLI.
public enum HubCertificates {
    /// PEM files for one hub.
    public struct Files: Sendable {
        /// The CA certificate agents trust.
        public var caCertificate: String
        /// The CA's private key: keep it offline; it signs new server certificates.
        public var caPrivateKey: String
        /// The hub's certificate, signed by the CA.
        public var serverCertificate: String
        /// The hub's private key.
        public var serverPrivateKey: String
    }

    /// A new CA (10 years) and a server certificate (2 years) for `hostnames`; entries that
    /// parse as IPv4 or IPv6 addresses become IP address names.
    public static func make(hostnames: [String], now: Date = Date()) throws -> Files {
        let caKey = P256.Signing.PrivateKey()
        let caName = try DistinguishedName {
            OrganizationName("FeedbackMesh")
            CommonName("FeedbackMesh hub CA")
        }
        let ca = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: .init(caKey.publicKey),
            notValidBefore: now.addingTimeInterval(-300),
            notValidAfter: now.addingTimeInterval(10 * 365 * 86_400),
            issuer: caName,
            subject: caName,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            },
            issuerPrivateKey: .init(caKey)
        )
        let server = try CertificateAuthority(certificate: ca, privateKey: .init(caKey)).issue(
            .server(hostnames: hostnames), notValidBefore: now.addingTimeInterval(-300), notValidAfter: now.addingTimeInterval(2 * 365 * 86_400)
        )
        return Files(
            caCertificate: try ca.serializeAsPEM().pemString,
            caPrivateKey: caKey.pemRepresentation,
            serverCertificate: server.certificate,
            serverPrivateKey: server.privateKey
        )
    }

    static func ipAddressBytes(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        return nil
    }
}

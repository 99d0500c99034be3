import Crypto
import Foundation
import NodeServer
import Support
import SwiftASN1
import X509

/// A CA that issues the certificates FeedbackMesh uses: the hub's server certificate and
/// the client certificates nodes present when the hub requires mutual TLS.
///
/// A client certificate names its node as the URI `urn:uuid:<node id>` in its subject
/// alternative names (and as its common name); the hub refuses a HELLO whose node id is not
/// the one its client certificate names.
public struct CertificateAuthority: Sendable {
    /// What an issued certificate is for.
    public enum Usage: Sendable, Hashable {
        /// A hub's server certificate for these names; entries that parse as IPv4 or IPv6
        /// addresses become IP address names.
        case server(hostnames: [String])
        /// A node's client certificate.
        case client(nodeID: UUID)
    }

    /// A certificate and its new private key, both PEM.
    public struct Issued: Sendable {
        /// The certificate, signed by the CA.
        public var certificate: String
        /// Its private key: a secret, to be written 0600.
        public var privateKey: String
    }

    let certificate: Certificate
    let privateKey: Certificate.PrivateKey

    /// The end of the CA's own validity: nothing it issues may outlive it.
    public var notValidAfter: Date { self.certificate.notValidAfter }

    init(certificate: Certificate, privateKey: Certificate.PrivateKey) {
        self.certificate = certificate
        self.privateKey = privateKey
    }

    /// Reads a CA certificate and its private key (PEM files, as `feedback-hub init` writes
    /// `ca.pem` and `ca-key.pem`).
    ///
    /// - Throws: ``FileError`` naming the file: unreadable, not PEM, not a
    ///   CA, or a key that does not belong to the certificate.
    public static func load(certificate certificatePath: String, privateKey keyPath: String) throws -> CertificateAuthority {
        let certificate: Certificate
        do {
            certificate = try Certificate(pemEncoded: try Self.read(certificatePath, "CA certificate"))
        } catch let error as FileError {
            throw error
        } catch {
            throw FileError(path: "CA certificate \(certificatePath)", "is not a PEM certificate")
        }
        let key: Certificate.PrivateKey
        do {
            key = try Certificate.PrivateKey(pemEncoded: try Self.read(keyPath, "CA key"))
        } catch let error as FileError {
            throw error
        } catch {
            throw FileError(path: "CA key \(keyPath)", "is not a PEM private key")
        }
        guard key.publicKey == certificate.publicKey else {
            throw FileError(path: "CA key \(keyPath)", "does not match the CA certificate \(certificatePath)")
        }
        guard case .isCertificateAuthority = try? certificate.extensions.basicConstraints else {
            throw FileError(path: "CA certificate \(certificatePath)", "is not a CA certificate (basic constraints)")
        }
        return CertificateAuthority(certificate: certificate, privateKey: key)
    }

    /// A new P-256 key and a certificate for it, valid from `notValidBefore` to `notValidAfter`.
    ///
    /// - Throws: ``FileError`` when the validity is empty or would outlive the CA.
    public func issue(_ usage: Usage, notValidBefore: Date, notValidAfter: Date) throws -> Issued {
        guard notValidBefore < notValidAfter else {
            throw FileError(path: "the requested certificate", "would never be valid (\(notValidBefore) to \(notValidAfter))")
        }
        guard notValidAfter <= self.certificate.notValidAfter else {
            throw FileError(
                path: "the requested certificate", "would outlive its CA, which is valid until \(self.certificate.notValidAfter)"
            )
        }
        let key = P256.Signing.PrivateKey()
        let commonName: String
        let extensions: Certificate.Extensions
        switch usage {
        case .server(let hostnames):
            commonName = hostnames.first ?? "feedback-hub"
            let names: [GeneralName] = hostnames.map { name in
                if let bytes = HubCertificates.ipAddressBytes(name) {
                    return .ipAddress(ASN1OctetString(contentBytes: ArraySlice(bytes)))
                }
                return .dnsName(name)
            }
            extensions = try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames(names)
            }
        case .client(let nodeID):
            commonName = nodeID.uuidString
            extensions = try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.clientAuth])
                SubjectAlternativeNames([.uniformResourceIdentifier(ServerTLS.nodeURI(nodeID))])
            }
        }
        let issued = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: .init(key.publicKey),
            notValidBefore: notValidBefore,
            notValidAfter: notValidAfter,
            issuer: self.certificate.subject,
            subject: try DistinguishedName {
                OrganizationName("FeedbackMesh")
                CommonName(commonName)
            },
            extensions: extensions,
            issuerPrivateKey: self.privateKey
        )
        return Issued(certificate: try issued.serializeAsPEM().pemString, privateKey: key.pemRepresentation)
    }

    /// Certificates and keys are a few kilobytes; a larger file is not one.
    private static func read(_ path: String, _ what: String) throws -> String {
        let bytes: [UInt8]?
        do {
            bytes = try BoundedFile.read(path, maxBytes: 1 << 20)
        } catch {
            throw FileError(path: "\(what) \(path)", "cannot be read")
        }
        guard let bytes else { throw FileError(path: "\(what) \(path)", "is larger than 1 MiB: not a PEM file") }
        return String(decoding: bytes, as: UTF8.self)
    }
}

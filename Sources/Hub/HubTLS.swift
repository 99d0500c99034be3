import NIOSSL

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
}

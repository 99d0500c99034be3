/// Which TLS check refused a connection to a hub, and what to do about it.
///
/// BoringSSL alone reports `CERTIFICATE_VERIFY_FAILED` for every refused certificate; a
/// ``HubConnection`` records which certificate it refused and names the check.
public struct TLSFailure: Sendable, Hashable, CustomStringConvertible {
    /// The check that failed.
    public enum Check: String, Sendable, Hashable {
        /// The hub's certificate does not name the host or address the agent dialled.
        case hubName
        /// The hub's certificate (or its CA) is past its validity.
        case hubExpired
        /// The hub's certificate (or its CA) is not valid yet: often a wrong clock.
        case hubNotYetValid
        /// The hub's certificate is not signed by a CA the agent trusts.
        case hubUnknownCA
        /// The hub's certificate failed another check (usage, signature, constraints).
        case hubRefused
        /// The hub requires a client certificate and the agent presented none.
        case clientCertificateRequired
        /// The hub refused the agent's client certificate as expired or not yet valid.
        case clientCertificateExpired
        /// The hub refused the agent's client certificate as not signed by its client CA.
        case clientCertificateUnknownCA
        /// The hub refused the agent's client certificate for another reason.
        case clientCertificateRefused
    }

    /// The check that failed.
    public var check: Check
    /// What failed (with the certificate's dates or names) and what to do.
    public var description: String
}

import Crypto
import Wire

/// What a batch's origin is allowed: the key that must have signed the batch, and the sites
/// its records may name.
public struct OriginRights: Sendable {
    /// The origin's registered signing key.
    public var key: Curve25519.Signing.PublicKey
    /// The sites the origin may report for.
    public var sites: SiteScope

    /// Creates the rights.
    public init(key: Curve25519.Signing.PublicKey, sites: SiteScope) {
        self.key = key
        self.sites = sites
    }
}

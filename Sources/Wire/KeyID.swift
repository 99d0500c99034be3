import Crypto

/// The short id of an Ed25519 public key: the first 8 bytes of SHA-256 over its 32 raw bytes,
/// read as a big-endian integer.
public struct KeyID: Sendable, Hashable, CustomStringConvertible {
    /// The 8 bytes as a big-endian integer.
    public var rawValue: UInt64

    /// Wraps a raw key id.
    public init(rawValue: UInt64) {
        self.rawValue = rawValue
    }

    /// Derives the key id of `publicKey`.
    public init(_ publicKey: Curve25519.Signing.PublicKey) {
        let digest = SHA256.hash(data: publicKey.rawRepresentation)
        self.rawValue = digest.withUnsafeBytes { raw in
            raw.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        }
    }

    /// Sixteen lower-case hex digits.
    public var description: String {
        let hex = String(self.rawValue, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

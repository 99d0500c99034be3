import Crypto
import Foundation
import Wire

/// One-time enrollment tokens: 20 random bytes, shown once as `fmt_` + base32; the store
/// keeps only their SHA-256.
public enum EnrollmentToken {
    /// A new random token.
    public static func generate() -> String {
        SecretToken.generate(prefix: "fmt_", byteCount: 20)
    }
}

extension RegisteredNode {
    /// The key id of a raw 32-byte Ed25519 public key; throws if the bytes are not a key.
    public static func keyID(ofPublicKey raw: Data) throws -> KeyID {
        KeyID(try Curve25519.Signing.PublicKey(rawRepresentation: raw))
    }
}

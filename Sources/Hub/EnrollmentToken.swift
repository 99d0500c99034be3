import Crypto
import Foundation
import Wire

/// One-time enrollment tokens: 20 random bytes, shown once as `fmt_` + base32; the store
/// keeps only their SHA-256.
public enum EnrollmentToken {
    /// A new random token.
    public static func generate() -> String {
        var rng = SystemRandomNumberGenerator()
        let bytes = (0..<20).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz234567")
        var bits = 0
        var value = 0
        var out = "fmt_"
        for byte in bytes {
            value = value << 8 | Int(byte)
            bits += 8
            while bits >= 5 {
                out.append(alphabet[(value >> (bits - 5)) & 31])
                bits -= 5
            }
        }
        return out
    }
}

extension RegisteredNode {
    /// The key id of a raw 32-byte Ed25519 public key; throws if the bytes are not a key.
    public static func keyID(ofPublicKey raw: Data) throws -> KeyID {
        KeyID(try Curve25519.Signing.PublicKey(rawRepresentation: raw))
    }
}

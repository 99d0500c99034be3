import Crypto
import Foundation

/// Random bearer secrets (enrollment tokens, API tokens): a prefix naming the kind, then
/// random bytes in lowercase base32, safe in headers, URLs and YAML. Stores keep only their
/// SHA-256 (the secrets carry 160 bits or more, so a fast hash is enough).
public enum SecretToken {
    /// A new token: `prefix` and `byteCount` random bytes.
    public static func generate(prefix: String, byteCount: Int) -> String {
        var rng = SystemRandomNumberGenerator()
        let bytes = (0..<byteCount).map { _ in UInt8.random(in: 0...255, using: &rng) }
        var bits = 0
        var value = 0
        var out = prefix
        for byte in bytes {
            value = (value << 8 | Int(byte)) & 0xFFFF
            bits += 8
            while bits >= 5 {
                out.append(Self.alphabet[(value >> (bits - 5)) & 31])
                bits -= 5
            }
        }
        if bits > 0 { out.append(Self.alphabet[(value << (5 - bits)) & 31]) }
        return out
    }

    /// The stored form of a token: its SHA-256.
    public static func hash(_ token: String) -> [UInt8] {
        Array(SHA256.hash(data: Data(token.utf8)))
    }

    /// Whether `text` has the shape of a token `generate(prefix:byteCount:)` makes.
    public static func isWellFormed(_ text: String, prefix: String, byteCount: Int) -> Bool {
        guard text.hasPrefix(prefix) else { return false }
        let body = text.utf8.dropFirst(prefix.utf8.count)
        return body.count == (byteCount * 8 + 4) / 5 && body.allSatisfy { Self.alphabetBytes.contains($0) }
    }

    private static let alphabet = Array("abcdefghijklmnopqrstuvwxyz234567")
    private static let alphabetBytes = Set("abcdefghijklmnopqrstuvwxyz234567".utf8)
}

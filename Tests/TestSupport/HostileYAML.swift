import Foundation

/// Configuration files as an attacker or a careless operator writes them (issue 12 item 5).
public enum HostileYAML {
    /// The "billion laughs": ten levels of nine aliases, 9^10 nodes once expanded, under
    /// `key` (as a value, or with `asKey` as a mapping key) after `prefix`.
    public static func aliasBomb(prefix: String = "", key: String = "boom", asKey: Bool = false) -> String {
        var lines = ["lol0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
        for level in 1...9 {
            lines.append("lol\(level): &a\(level) [" + Array(repeating: "*a\(level - 1)", count: 9).joined(separator: ", ") + "]")
        }
        lines.append(asKey ? "? *a9\n: \(key)" : "\(key): *a9")
        return prefix + lines.joined(separator: "\n") + "\n"
    }

    /// A mapping of four million keys (about 50 MB), written to `path` in chunks.
    public static func writeManyKeys(to path: String, prefix: String = "") throws {
        guard FileManager.default.createFile(atPath: path, contents: Data(prefix.utf8)), let handle = FileHandle(forWritingAtPath: path) else {
            throw CocoaError(.fileWriteUnknown)
        }
        defer { try? handle.close() }
        try handle.seekToEnd()
        for block in 0..<40 {
            try handle.write(contentsOf: Data((0..<100_000).map { "key\(block * 100_000 + $0): 1\n" }.joined().utf8))
        }
    }

    /// `key: "xxxx…"` with a value of `bytes` bytes, after `prefix`.
    public static func hugeValue(prefix: String = "", key: String, bytes: Int) -> String {
        prefix + "\(key): \"" + String(repeating: "x", count: bytes) + "\"\n"
    }

    /// A marker that must never appear in an error message.
    public static let secret = "whsec_c3VwZXItc2VjcmV0LXZhbHVlLTEyMzQ="
}

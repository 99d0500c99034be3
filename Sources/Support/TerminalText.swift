/// Text from outside (stored ratings, peers, configuration files) made safe to print on a
/// terminal.
///
/// A terminal acts on control characters: ESC starts sequences that clear the screen, move
/// the cursor or rewrite earlier lines, CR and LF fake new lines, NUL and BS hide text, and
/// the bidirectional overrides show text in another order than it is stored. Every such
/// character is shown as a visible escape instead, so what an operator reads is what is
/// stored.
public enum TerminalText {
    /// How escapes are written.
    public enum Style: Sendable {
        /// For plain text: `\t`, `\n`, `\r`, and `\u{1B}` for the others.
        case text
        /// Inside JSON text already escaped by a JSON encoder (which escapes C0 controls
        /// itself): the others as JSON's `\u007F`, so the line stays valid JSON.
        case json
    }

    /// `text` with every C0 control (U+0000–U+001F), DEL (U+007F), C1 control
    /// (U+0080–U+009F), bidirectional embedding, override or isolate (U+202A–U+202E,
    /// U+2066–U+2069) and line or paragraph separator (U+2028, U+2029) shown as a visible
    /// escape. Everything else is kept.
    public static func escape(_ text: some StringProtocol, style: Style = .text) -> String {
        // Fast path: most text has nothing to escape.
        guard text.unicodeScalars.contains(where: Self.needsEscape) else { return String(text) }
        var escaped = ""
        escaped.reserveCapacity(text.utf8.count + 8)
        for scalar in text.unicodeScalars {
            guard Self.needsEscape(scalar) else {
                escaped.unicodeScalars.append(scalar)
                continue
            }
            switch (style, scalar) {
            case (.text, "\t"): escaped += "\\t"
            case (.text, "\n"): escaped += "\\n"
            case (.text, "\r"): escaped += "\\r"
            case (.text, _): escaped += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
            case (.json, _):
                let hex = String(scalar.value, radix: 16, uppercase: true)
                escaped += "\\u" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
            }
        }
        return escaped
    }

    /// At most `limit` characters of `text`, escaped as ``escape(_:style:)`` does and in
    /// double quotes, with `…` and the full length when cut: how an error quotes a value
    /// that may be huge or hostile.
    public static func excerpt(_ text: some StringProtocol, limit: Int = 40) -> String {
        let scalars = text.unicodeScalars
        guard scalars.count > limit else { return "\"" + Self.escape(text) + "\"" }
        var head = String.UnicodeScalarView()
        head.append(contentsOf: scalars.prefix(limit))
        return "\"" + Self.escape(String(head)) + "…\" (\(text.utf8.count) bytes)"
    }

    /// Whether `scalar` is shown escaped.
    public static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F, 0x202A...0x202E, 0x2066...0x2069, 0x2028, 0x2029: true
        default: false
        }
    }
}

/// Text from outside (stored ratings, peers, configuration files) made safe to print on a
/// terminal.
///
/// A terminal acts on control characters: ESC starts sequences that clear the screen, move
/// the cursor or rewrite earlier lines, CR and LF fake new lines, NUL and BS hide text, and
/// the bidirectional overrides show text in another order than it is stored. Every such
/// character is shown as a visible escape instead, so what an operator reads is what is
/// stored.
public enum TerminalText {
    /// `text` with every C0 control (U+0000–U+001F), DEL (U+007F), C1 control
    /// (U+0080–U+009F), bidirectional embedding, override or isolate (U+202A–U+202E,
    /// U+2066–U+2069), line and paragraph separator (U+2028, U+2029) and backslash shown
    /// escaped: `\t`, `\n`, `\r`, `\\`, and `\u{1B}` for the others. Everything else is kept.
    public static func escape(_ text: some StringProtocol) -> String {
        // Fast path: most text has nothing to escape.
        guard text.unicodeScalars.contains(where: Self.needsEscape) else { return String(text) }
        var escaped = ""
        escaped.reserveCapacity(text.utf8.count + 8)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\t": escaped += "\\t"
            case "\n": escaped += "\\n"
            case "\r": escaped += "\\r"
            case "\\": escaped += "\\\\"
            case _ where Self.needsEscape(scalar):
                escaped += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
            default:
                escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped
    }

    /// At most `limit` characters of `text`, escaped as ``escape(_:)`` does and in double
    /// quotes, with `…` and the full length when cut: how an error quotes a value that may be
    /// huge or hostile.
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
        case 0x00...0x1F, 0x7F...0x9F, 0x5C, 0x202A...0x202E, 0x2066...0x2069, 0x2028, 0x2029: true
        default: false
        }
    }
}

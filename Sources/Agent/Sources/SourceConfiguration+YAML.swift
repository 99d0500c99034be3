import Support
import Wire

#if canImport(FoundationEssentials)
import FoundationEssentials
// Named time zones (Europe/London) resolve through ICU's tz data, which this module brings.
import FoundationInternationalization
#else
import Foundation
#endif

extension SourceConfiguration {
    /// The settings each kind of source may hold, for agent.yaml's shared unknown-key check.
    static let schema = ConfigSchema.list(
        .variant(
            key: "kind",
            [
                "kiosk": [
                    "name": .value, "kind": .value, "device": .value, "site": .value, "kiosk": .value, "scale": .value,
                    "keys": .value, "survey": .value, "debounceMs": .value, "misuse": .keys("presses", "seconds"),
                ],
                "asterisk": [
                    "name": .value, "kind": .value, "path": .value, "site": .value, "siteColumn": Self.extractSchema,
                    "scale": .value, "score": Self.extractSchema, "subject": Self.extractSchema, "columns": .value,
                    "userfield": .value, "newColumns": .value, "timeZone": .value, "survey": .value,
                    "surveyLog": .keys("path", "wait"),
                ],
                "jsonl": ["name": .value, "kind": .value, "path": .value],
            ]
        )
    )

    private static let extractSchema = ConfigSchema.keys("column", "pattern")

    /// Reads the `sources:` list of `agent.yaml` (see docs/SOURCES.md); relative paths are
    /// resolved with `resolve`.
    ///
    /// - Throws: ``AgentConfigurationError`` naming the source and the field.
    static func parse(_ value: Any?, path: String, resolve: (String) -> String) throws -> [SourceConfiguration] {
        guard let value else { return [] }
        guard let list = value as? [Any] else { throw AgentConfigurationError(path: path, "sources must be a list") }
        var sources: [SourceConfiguration] = []
        for (index, item) in list.enumerated() {
            var place = "sources[\(index + 1)]"
            func fail(_ field: String, _ reason: String) -> AgentConfigurationError {
                AgentConfigurationError(path: path, "\(place): \(field) \(reason)")
            }
            guard let fields = item as? [String: Any] else { throw fail("", "must be a mapping") }
            func text(_ key: String, default fallback: String? = nil) throws -> String {
                guard let raw = fields[key] else {
                    if let fallback { return fallback }
                    throw fail(key, "is missing")
                }
                guard let value = raw as? String ?? (raw as? Int).map(String.init), !value.isEmpty else {
                    throw fail(key, "must be a non-empty text")
                }
                return value
            }
            /// `key`, or `section.key` inside a mapping.
            func number(_ key: String, in range: ClosedRange<Int>, inside section: String? = nil) throws -> Int? {
                let values = section.map { fields[$0] as? [String: Any] ?? [:] } ?? fields
                let name = section.map { "\($0).\(key)" } ?? key
                guard let raw = values[key] else { return nil }
                guard let value = raw as? Int else {
                    throw fail(name, "must be a whole number from \(range.lowerBound) to \(range.upperBound), got \(TerminalText.excerpt("\(raw)"))")
                }
                do {
                    try RangeError.check(value, range, name)
                } catch {
                    throw AgentConfigurationError(path: path, "\(place): \(error)")
                }
                return value
            }
            func extract(_ key: String) throws -> AsteriskCDRParser.Extract? {
                guard let raw = fields[key] else { return nil }
                guard let spec = raw as? [String: Any], let column = spec["column"] as? String else {
                    throw fail(key, "must be {column: NAME, pattern: REGEX}")
                }
                let pattern = spec["pattern"] as? String
                if let pattern {
                    do {
                        _ = try Regex(pattern)
                    } catch {
                        // The compiler's message quotes the whole pattern.
                        throw fail("\(key).pattern", "is not a valid regular expression: \(TerminalText.excerpt(pattern))")
                    }
                }
                return AsteriskCDRParser.Extract(column: column, pattern: pattern)
            }
            let name = try text("name")
            place = "source \(TerminalText.excerpt(name))"
            guard !sources.contains(where: { $0.name == name }) else { throw fail("name", "is used by an earlier source") }
            let kind = try text("kind")
            var source: SourceConfiguration
            switch kind {
            case "kiosk":
                let scale = try text("scale", default: "smiley")
                guard let scaleValue = FeedbackRecord.Scale(name: scale) else { throw fail("scale", "\(TerminalText.excerpt(scale)) is not a scale") }
                guard let map = fields["keys"] as? [AnyHashable: Any], !map.isEmpty else {
                    throw fail("keys", "must map key names or codes to scores, e.g. {KEY_1: 1, KEY_2: 2}")
                }
                var keys: [UInt16: Int] = [:]
                for (key, score) in map {
                    let name = "\(key)"
                    guard let code = KioskButtons.keyNames[name] ?? UInt16(name) else {
                        throw fail("keys", "\(TerminalText.excerpt(name)) is not a key name (KEY_1, KEY_A, KEY_KP1, …) or code")
                    }
                    guard let score = score as? Int, let exact = UInt8(exactly: score), scaleValue.range.contains(exact) else {
                        throw fail("keys", "score for \(TerminalText.excerpt(name)) must be on the \(scale) scale \(scaleValue.range)")
                    }
                    keys[code] = score
                }
                var buttons = KioskButtons(
                    keys: keys, scale: scale, site: try text("site"), kiosk: try text("kiosk"), survey: try text("survey", default: "kiosk")
                )
                buttons.debounceMilliseconds = Int64(try number("debounceMs", in: 0...10_000) ?? 30)
                if let misuse = fields["misuse"] {
                    guard misuse is [String: Any], let presses = try number("presses", in: 1...10_000, inside: "misuse"),
                        let seconds = try number("seconds", in: 1...86_400, inside: "misuse")
                    else { throw fail("misuse", "must be {presses: N, seconds: S}") }
                    buttons.misuseLimit = presses
                    buttons.misuseWindowMilliseconds = Int64(seconds) * 1000
                }
                source = SourceConfiguration(name: name, kind: .kiosk(device: resolve(try text("device")), buttons: buttons))
            case "asterisk":
                var columns = AsteriskCDRParser.baseColumns
                if let explicit = fields["columns"] {
                    guard let list = explicit as? [String], !list.isEmpty else { throw fail("columns", "must be a list of column names") }
                    columns = list
                } else {
                    if fields["userfield"] as? Bool ?? true { columns += AsteriskCDRParser.uniqueIDColumns }
                    if fields["newColumns"] as? Bool ?? false { columns += AsteriskCDRParser.newColumns }
                }
                guard columns.contains("start") else { throw fail("columns", "must include start") }
                let zoneName = try text("timeZone", default: "UTC")
                guard let zone = TimeZone(identifier: zoneName) else { throw fail("timeZone", "\(TerminalText.excerpt(zoneName)) is not a time zone") }
                let scale = try text("scale", default: "csat")
                guard FeedbackRecord.Scale(name: scale) != nil else { throw fail("scale", "\(TerminalText.excerpt(scale)) is not a scale") }
                let score = try extract("score") ?? AsteriskCDRParser.Extract(column: "userfield", pattern: #"survey=(\d+)"#)
                for (key, extract) in [("score", score), ("subject", try extract("subject")), ("siteColumn", try extract("siteColumn"))] {
                    if let extract, !columns.contains(extract.column) {
                        throw fail("\(key).column", "\(TerminalText.excerpt(extract.column)) is not one of the columns \(TerminalText.excerpt(columns.joined(separator: ","), limit: 200))")
                    }
                }
                let parser = AsteriskCDRParser(
                    columns: columns, score: score, scale: scale, subject: try extract("subject"), site: try text("site"),
                    siteColumn: try extract("siteColumn"), timeZone: zone, survey: try text("survey", default: "post-call")
                )
                if let log = fields["surveyLog"] {
                    guard let spec = log as? [String: Any], let logPath = spec["path"] as? String, !logPath.isEmpty
                    else { throw fail("surveyLog", "must be {path: FILE, wait: 300s}") }
                    guard columns.contains("linkedid") else {
                        throw fail("surveyLog", "joins on linkedid: set newColumns: true (or list linkedid in columns)")
                    }
                    var wait: Int64 = 300_000
                    if let value = spec["wait"] {
                        let text = "\(value)"
                        let factor: Int64 = text.hasSuffix("m") ? 60_000 : 1_000
                        // Compared before multiplying, so no number can overflow.
                        guard let number = Int64(text.hasSuffix("m") || text.hasSuffix("s") ? String(text.dropLast()) : text),
                            (0...86_400_000 / factor).contains(number)
                        else {
                            throw fail("surveyLog.wait", "must be seconds or minutes from 0s to 86400s (1440m), such as 300s or 5m, got \(TerminalText.excerpt(text))")
                        }
                        wait = number * factor
                    }
                    source = SourceConfiguration(
                        name: name,
                        kind: .asteriskSurveys(cdrPath: resolve(try text("path")), surveyPath: resolve(logPath), parser: parser, waitMilliseconds: wait)
                    )
                } else {
                    source = SourceConfiguration(name: name, kind: .asterisk(path: resolve(try text("path")), parser: parser))
                }
            case "jsonl":
                source = SourceConfiguration(name: name, kind: .jsonLines(path: resolve(try text("path"))))
            default:
                throw fail("kind", "\(TerminalText.excerpt(kind)) is not one of kiosk, asterisk, jsonl")
            }
            sources.append(source)
        }
        return sources
    }
}

/// The sites a node's enrollment allows it to report for: exact site names, and patterns in
/// which `*` stands for any run of characters (`branch-*`, or `*` for every site).
///
/// A hub (and a relay) refuses a batch holding a record whose site is outside its origin's
/// scope, with `siteNotAllowed` (PROTOCOL.md §3.7). An empty site is inside `*` only.
public struct SiteScope: Sendable, Hashable, CustomStringConvertible {
    /// The names and patterns, in the order given, without repeats.
    public let patterns: [String]

    /// Most patterns in one scope.
    public static let maxPatterns = 256

    /// Every site.
    public static let any = SiteScope(checked: ["*"])

    /// No site at all: what a stored scope that is no longer valid reads as (a site kept by
    /// an earlier release that no record can name), so the node stays listed but reports
    /// nothing. Its stored form is empty.
    public static let none = SiteScope(checked: [])

    /// A scope of `patterns`.
    ///
    /// - Throws: ``WireError`` (`invalidRecord`, field `sites`) for no pattern, more than
    ///   ``maxPatterns``, an empty pattern, one longer than a site may be, or one holding a
    ///   control character.
    public init(_ patterns: [String]) throws {
        guard !patterns.isEmpty else { throw WireError.invalid("sites", "a node needs at least one site or pattern (`*` for any)") }
        guard patterns.count <= Self.maxPatterns else {
            throw WireError.invalid("sites", "at most \(Self.maxPatterns) sites or patterns, got \(patterns.count)")
        }
        var seen = Set<String>()
        var kept: [String] = []
        for pattern in patterns {
            guard !pattern.isEmpty else { throw WireError.invalid("sites", "a site pattern is empty") }
            guard pattern.utf8.count <= RecordLimits.protocolMaximum.site else {
                throw WireError.invalid("sites", "a site pattern is longer than a site may be (\(RecordLimits.protocolMaximum.site) bytes)")
            }
            guard !pattern.unicodeScalars.contains(where: { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }) else {
                throw WireError.invalid("sites", "a site pattern holds a control character")
            }
            if seen.insert(pattern).inserted { kept.append(pattern) }
        }
        self.patterns = kept
    }

    private init(checked patterns: [String]) {
        self.patterns = patterns
    }

    /// Whether a record with `site` is inside the scope.
    public func allows(_ site: String) -> Bool {
        self.patterns.contains { Self.matches(Array($0.utf8), Array(site.utf8)) }
    }

    /// Whether the scope allows every site.
    public var allowsAnySite: Bool { self.patterns.contains("*") }

    /// The patterns, comma-separated; `(none)` for ``none``.
    public var description: String { self.patterns.isEmpty ? "(none)" : self.patterns.joined(separator: ", ") }

    /// The patterns one per line, as stores keep them (patterns hold no control characters).
    public var storedForm: String { self.patterns.joined(separator: "\n") }

    /// Reads the stored form.
    public init(storedForm: String) throws {
        try self.init(storedForm.split(separator: "\n", omittingEmptySubsequences: false).map(String.init))
    }

    /// Reads the stored form; a form that is not a valid scope is ``none``.
    public init(storedFormOrNone storedForm: String) {
        self = (try? SiteScope(storedForm: storedForm)) ?? .none
    }

    /// `*`-only glob matching over UTF-8 bytes, linear in practice: on a mismatch it resumes
    /// after the last `*`, one byte further into the text.
    static func matches(_ pattern: [UInt8], _ text: [UInt8]) -> Bool {
        let star = UInt8(ascii: "*")
        var p = 0
        var t = 0
        var resumePattern: Int?
        var resumeText = 0
        while t < text.count {
            if p < pattern.count, pattern[p] == star {
                resumePattern = p + 1
                resumeText = t
                p += 1
            } else if p < pattern.count, pattern[p] == text[t] {
                p += 1
                t += 1
            } else if let after = resumePattern {
                resumeText += 1
                p = after
                t = resumeText
            } else {
                return false
            }
        }
        while p < pattern.count, pattern[p] == star { p += 1 }
        return p == pattern.count
    }
}

/// A number outside what a flag or setting allows, as one line naming both:
/// `--ttl-hours must be 1–8760, got 9223372036854775807`.
///
/// Every numeric flag of both CLIs and every numeric setting of hub.yaml, agent.yaml and
/// alerts.yaml is checked with it before use, so no value can overflow arithmetic later or
/// ask for unbounded work; docs/OPERATIONS.md and docs/AGENT.md list the ranges.
public struct RangeError: Error, Sendable, CustomStringConvertible {
    /// The flag or setting: `--ttl-hours`, `limits.credit`.
    public var name: String
    /// What is allowed: `1–8760`.
    public var allowed: String
    /// What was given.
    public var value: String

    /// Creates the error; `allowed` and `value` are shown as given.
    public init(name: String, allowed: String, value: String) {
        self.name = name
        self.allowed = allowed
        self.value = value
    }

    /// `NAME must be ALLOWED, got VALUE`.
    public var description: String { "\(self.name) must be \(self.allowed), got \(self.value)" }

    /// Throws unless `value` is in `range`.
    public static func check<T: BinaryInteger>(_ value: T, _ range: ClosedRange<T>, _ name: String) throws(RangeError) {
        guard range.contains(value) else {
            throw RangeError(name: name, allowed: "\(range.lowerBound)–\(range.upperBound)", value: "\(value)")
        }
    }
}

/// Bounds for one HTTP listener (the hub's operations port, the agent's intake), so slow or
/// idle clients cannot hold it and one port's load cannot starve another.
///
/// In configuration files: `maxConnections`, `maxConnectionsPerAddress`, `headerTimeoutMs`,
/// `bodyTimeoutMs`, `idleTimeoutMs`, each optional.
public struct HTTPListenerLimits: Sendable, Hashable, Codable {
    /// Most simultaneous connections; more are closed at once.
    public var maxConnections = 256
    /// Most simultaneous connections from one source address.
    public var maxConnectionsPerAddress = 32
    /// A connection's first request head must be complete within this many milliseconds.
    public var headerTimeoutMs = 10_000
    /// A request body must be complete within this many milliseconds of its head.
    public var bodyTimeoutMs = 30_000
    /// After a response, the next request head must be complete within this many milliseconds.
    public var idleTimeoutMs = 60_000

    /// The defaults.
    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case maxConnections, maxConnectionsPerAddress, headerTimeoutMs, bodyTimeoutMs, idleTimeoutMs
    }

    /// The setting names, for configuration files' unknown-key checks.
    public static let settingNames: Set<String> = Set(CodingKeys.allCases.map(\.rawValue))

    /// Reads the settings present; the others keep their defaults.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.maxConnections = try c.decodeIfPresent(Int.self, forKey: .maxConnections) ?? self.maxConnections
        self.maxConnectionsPerAddress =
            try c.decodeIfPresent(Int.self, forKey: .maxConnectionsPerAddress) ?? self.maxConnectionsPerAddress
        self.headerTimeoutMs = try c.decodeIfPresent(Int.self, forKey: .headerTimeoutMs) ?? self.headerTimeoutMs
        self.bodyTimeoutMs = try c.decodeIfPresent(Int.self, forKey: .bodyTimeoutMs) ?? self.bodyTimeoutMs
        self.idleTimeoutMs = try c.decodeIfPresent(Int.self, forKey: .idleTimeoutMs) ?? self.idleTimeoutMs
    }

    /// The first setting outside its range, as "NAME must be MIN–MAX, got VALUE"; nil when all fit.
    public var problem: String? {
        let checks: [(String, Int, ClosedRange<Int>)] = [
            ("maxConnections", self.maxConnections, 1...100_000),
            ("maxConnectionsPerAddress", self.maxConnectionsPerAddress, 1...100_000),
            ("headerTimeoutMs", self.headerTimeoutMs, 100...600_000),
            ("bodyTimeoutMs", self.bodyTimeoutMs, 100...3_600_000),
            ("idleTimeoutMs", self.idleTimeoutMs, 100...3_600_000),
        ]
        for (name, value, range) in checks where !range.contains(value) {
            return "\(name) must be \(range.lowerBound)–\(range.upperBound), got \(value)"
        }
        return nil
    }
}

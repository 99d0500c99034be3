/// Reconnect delays: exponential with full jitter (each delay drawn uniformly from zero up
/// to the capped exponential), so a fleet of agents that lost the same hub does not come
/// back in lockstep.
///
/// A value type with the random source injected, so tests see exact delays.
public struct Backoff: Sendable {
    /// The first ceiling.
    public var initial: Duration
    /// The largest ceiling.
    public var maximum: Duration
    /// Failures since the last success.
    public private(set) var attempt = 0

    /// Creates a backoff; defaults 200 ms growing to 30 s.
    public init(initial: Duration = .milliseconds(200), maximum: Duration = .seconds(30)) {
        self.initial = initial
        self.maximum = max(initial, maximum)
    }

    /// The ceiling for the current attempt: `initial × 2^attempt`, at most `maximum`.
    public var ceiling: Duration {
        var value = self.initial
        for _ in 0..<min(self.attempt, 40) {
            value *= 2
            if value >= self.maximum { return self.maximum }
        }
        return value
    }

    /// The next delay, drawn from `0...ceiling`, and one more attempt counted.
    public mutating func next<R: RandomNumberGenerator>(using rng: inout R) -> Duration {
        let ceiling = self.ceiling
        self.attempt += 1
        let nanoseconds = ceiling.components.seconds * 1_000_000_000 + ceiling.components.attoseconds / 1_000_000_000
        guard nanoseconds > 0 else { return .zero }
        return .nanoseconds(Int64.random(in: 0...nanoseconds, using: &rng))
    }

    /// The next delay from the system's random source.
    public mutating func next() -> Duration {
        var rng = SystemRandomNumberGenerator()
        return self.next(using: &rng)
    }

    /// A connection succeeded: start again from `initial`.
    public mutating func reset() {
        self.attempt = 0
    }
}

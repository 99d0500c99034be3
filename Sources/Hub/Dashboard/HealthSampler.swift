import Foundation
import ServiceLifecycle
import Synchronization

/// Samples the hub's own metrics every ``interval`` for the dashboard's health page: what
/// `/metrics` shows, kept for the last ``keep`` samples, so the page shows rates (ratings
/// stored per second, rejects in the last minute) and a commit latency of the last minute,
/// not only totals since the start. Only `feedback_hub_…` series are kept; their labels have
/// bounded values (HubMetrics), so a sample is small.
///
/// These are this hub's figures: with several hubs on one PostgreSQL each dashboard shows its
/// own hub (the reports and cases are the whole store's).
final class HealthSampler: Service, Sendable {
    /// One reading: when, and each series' value by its name and labels as exposed
    /// (`feedback_hub_rejects_total{code="badSignature"}`).
    struct Sample: Sendable {
        var at: Int64
        var values: [String: Double]
    }

    /// Time between samples.
    static let interval = Duration.seconds(10)
    /// Samples kept: ten minutes and one.
    static let keep = 61

    private let text: @Sendable () -> String
    private let clock: @Sendable () -> Int64
    private let samples = Mutex<[Sample]>([])

    /// Samples `text` (the Prometheus exposition of the hub's registry) at `clock`'s times.
    init(text: @escaping @Sendable () -> String, clock: @escaping @Sendable () -> Int64) {
        self.text = text
        self.clock = clock
    }

    func run() async throws {
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            self.sample()
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: Self.interval) }
        }
    }

    /// Takes one sample now.
    func sample() {
        let sample = Sample(at: self.clock(), values: Self.parse(self.text()))
        self.samples.withLock { samples in
            samples.append(sample)
            if samples.count > Self.keep { samples.removeFirst(samples.count - Self.keep) }
        }
    }

    /// The samples kept, oldest first.
    var kept: [Sample] { self.samples.withLock { $0 } }

    /// The `feedback_hub_…` series of a Prometheus text exposition: comments and other
    /// prefixes skipped, a line that does not parse skipped.
    static func parse(_ exposition: String) -> [String: Double] {
        var values: [String: Double] = [:]
        for line in exposition.split(separator: "\n") where line.hasPrefix("feedback_hub_") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            values[String(line[..<space])] = value
        }
        return values
    }

    /// The sum of every series of `name`, whatever their labels; nil when there is none.
    static func value(_ values: [String: Double], _ name: String) -> Double? {
        let matching = values.filter { $0.key == name || $0.key.hasPrefix(name + "{") }
        return matching.isEmpty ? nil : matching.values.reduce(0, +)
    }

    /// Each value of `label` among the series of `name`, with its value: rejects by code,
    /// deliveries by outcome.
    static func byLabel(_ values: [String: Double], _ name: String, label: String) -> [String: Double] {
        var result: [String: Double] = [:]
        for (key, value) in values where key.hasPrefix(name + "{") {
            guard let found = Self.label(label, in: key) else { continue }
            result[found, default: 0] += value
        }
        return result
    }

    /// The value of `label` in a series key `name{a="x",b="y"}`; label values here are our
    /// own bounded names, without quotes or backslashes.
    static func label(_ label: String, in key: String) -> String? {
        guard let open = key.firstIndex(of: "{") else { return nil }
        for pair in key[key.index(after: open)...].dropLast().split(separator: ",") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, parts[0] == label else { continue }
            return String(parts[1].trimmingCharacters(in: CharacterSet(charactersIn: "\"")))
        }
        return nil
    }

    /// The upper bound (seconds) of the histogram bucket where the `quantile` of the
    /// observations between two samples falls: "p99 ≤ this". Nil without observations.
    static func quantile(_ quantile: Double, histogram name: String, from old: [String: Double], to new: [String: Double]) -> Double? {
        var buckets: [(bound: Double, count: Double)] = []
        for (key, value) in new where key.hasPrefix(name + "_bucket{") {
            guard let text = Self.label("le", in: key) else { continue }
            let bound = text == "+Inf" ? Double.infinity : Double(text)
            guard let bound else { continue }
            buckets.append((bound, value - (old[key] ?? 0)))
        }
        buckets.sort { $0.bound < $1.bound }
        guard let total = buckets.last?.count, total > 0 else { return nil }
        return buckets.first { $0.count >= quantile * total }?.bound
    }
}

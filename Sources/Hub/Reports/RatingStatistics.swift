import Foundation
import Wire

/// What a group of ratings says, each figure with its 95 % interval: NPS (adjusted Wald),
/// CSAT and the binary scale's share positive (Wilson), CES and the smiley index (mean with
/// Student's t). Ratings flagged as misuse are counted apart and left out of every figure.
public struct RatingStatistics: Sendable, Hashable {
    /// Ratings counted (misuse left out), every scale.
    public var responses: Int64 = 0
    /// Ratings flagged as misuse, left out of every figure.
    public var misuse: Int64 = 0
    /// NPS (0–10 scale).
    public var nps: NPS?
    /// CSAT: the share of 4–5 on the 1–5 scale.
    public var csat: Share?
    /// CES: the mean effort on the 1–7 scale.
    public var ces: Mean?
    /// Smiley index: the mean face on 0–100 (very unhappy 0, unhappy 33.3, happy 66.7,
    /// very happy 100).
    public var smiley: Mean?
    /// Binary scale: the share of 1 (yes, thumbs up).
    public var binary: Share?

    /// The z of a two-sided 95 % interval.
    public static let z = 1.959_964

    /// A Net Promoter Score with its counts and interval, in points (−100…100).
    public struct NPS: Sendable, Hashable {
        /// NPS ratings.
        public var responses: Int64
        /// 9–10.
        public var promoters: Int64
        /// 7–8.
        public var passives: Int64
        /// 0–6.
        public var detractors: Int64
        /// % promoters − % detractors.
        public var score: Double
        /// The interval's ends (adjusted Wald: n′ = n + 3, p′ = (P + ¾)/n′, d′ = (D + ¾)/n′,
        /// p′ − d′ ± z·√((p′ + d′ − (p′ − d′)²)/n′)), clamped to −100…100.
        public var low: Double
        /// See ``low``.
        public var high: Double
        /// The interval's half-width before clamping, in points: what a change is judged by.
        public var margin: Double
    }

    /// A share in percent (0–100) with its Wilson interval.
    public struct Share: Sendable, Hashable {
        /// Ratings on the scale.
        public var responses: Int64
        /// Those counted as positive.
        public var positive: Int64
        /// positive / responses, in percent.
        public var percent: Double
        /// The Wilson interval's ends, in percent.
        public var low: Double
        /// See ``low``.
        public var high: Double
        /// Half the interval's width, in points: what a change is judged by.
        public var margin: Double
    }

    /// A mean with its interval (Student's t, n − 1 degrees of freedom); a single rating
    /// has a mean and no interval (both ends equal to it).
    public struct Mean: Sendable, Hashable {
        /// Ratings on the scale.
        public var responses: Int64
        /// The mean.
        public var mean: Double
        /// The interval's ends.
        public var low: Double
        /// See ``low``.
        public var high: Double
        /// The interval's half-width; nil for a single rating, whose spread is unknown (no
        /// change can then be judged).
        public var margin: Double?
    }

    /// Statistics of `counts`: ratings per (scale, score), and the misuse count apart.
    public init(counts: [ScaleScore: Int64], misuse: Int64) {
        self.misuse = misuse
        self.responses = counts.values.reduce(0, +)
        func scores(_ scale: FeedbackRecord.Scale) -> [(score: Int, count: Int64)] {
            counts.compactMap { key, count in key.scale == scale.rawValue && count > 0 ? (Int(key.score), count) : nil }
        }
        self.nps = Self.nps(scores(.nps))
        self.csat = Self.share(scores(.csat), positiveFrom: 4)
        self.binary = Self.share(scores(.binary), positiveFrom: 1)
        self.ces = Self.mean(scores(.ces).map { (Double($0.score), $0.count) })
        self.smiley = Self.mean(scores(.smiley).map { (Double($0.score - 1) * 100 / 3, $0.count) })
    }

    /// A scale and a score: the key of the counts statistics are made from.
    public struct ScaleScore: Sendable, Hashable {
        /// The scale's raw value.
        public var scale: UInt8
        /// The score.
        public var score: UInt8

        /// Creates a key.
        public init(scale: UInt8, score: UInt8) {
            self.scale = scale
            self.score = score
        }
    }

    static func nps(_ scores: [(score: Int, count: Int64)]) -> NPS? {
        let n = scores.reduce(0) { $0 + $1.count }
        guard n > 0 else { return nil }
        let promoters = scores.filter { $0.score >= 9 }.reduce(0) { $0 + $1.count }
        let detractors = scores.filter { $0.score <= 6 }.reduce(0) { $0 + $1.count }
        let adjusted = Double(n) + 3
        let p = (Double(promoters) + 0.75) / adjusted
        let d = (Double(detractors) + 0.75) / adjusted
        let center = p - d
        let half = Self.z * ((p + d - center * center) / adjusted).squareRoot()
        return NPS(
            responses: n, promoters: promoters, passives: n - promoters - detractors, detractors: detractors,
            score: Double(promoters - detractors) * 100 / Double(n), low: max(-100, (center - half) * 100), high: min(100, (center + half) * 100),
            margin: half * 100
        )
    }

    static func share(_ scores: [(score: Int, count: Int64)], positiveFrom threshold: Int) -> Share? {
        let n = scores.reduce(0) { $0 + $1.count }
        guard n > 0 else { return nil }
        let positive = scores.filter { $0.score >= threshold }.reduce(0) { $0 + $1.count }
        let (low, high) = Self.wilson(positive: positive, of: n)
        return Share(
            responses: n, positive: positive, percent: Double(positive) * 100 / Double(n), low: low * 100, high: high * 100,
            margin: (high - low) * 50
        )
    }

    /// The Wilson score interval of `positive` out of `n` (n > 0), as fractions.
    static func wilson(positive: Int64, of n: Int64) -> (Double, Double) {
        let (x, count, z) = (Double(positive), Double(n), Self.z)
        let p = x / count
        let denominator = 1 + z * z / count
        let center = (p + z * z / (2 * count)) / denominator
        let half = z * (p * (1 - p) / count + z * z / (4 * count * count)).squareRoot() / denominator
        return (max(0, center - half), min(1, center + half))
    }

    static func mean(_ values: [(value: Double, count: Int64)]) -> Mean? {
        let n = values.reduce(0) { $0 + $1.count }
        guard n > 0 else { return nil }
        let mean = values.reduce(0.0) { $0 + $1.value * Double($1.count) } / Double(n)
        guard n > 1 else { return Mean(responses: n, mean: mean, low: mean, high: mean, margin: nil) }
        let squares = values.reduce(0.0) { $0 + ($1.value - mean) * ($1.value - mean) * Double($1.count) }
        let deviation = (squares / Double(n - 1)).squareRoot()
        let half = Self.t95(degreesOfFreedom: n - 1) * deviation / Double(n).squareRoot()
        return Mean(responses: n, mean: mean, low: mean - half, high: mean + half, margin: half)
    }

    /// Student's t for a two-sided 95 % interval: the table to 30 degrees of freedom, then
    /// z + (z³ + z)/(4·df) (within 0.003 of the table at 30, closer beyond).
    static func t95(degreesOfFreedom df: Int64) -> Double {
        let table: [Double] = [
            12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101,
            2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
        ]
        if df >= 1, df <= Int64(table.count) { return table[Int(df) - 1] }
        let z = Self.z
        return z + (z * z * z + z) / (4 * Double(df))
    }
}

/// How a figure moved from the previous period: the difference, and whether it is beyond
/// what chance explains at 95 % — |Δ| greater than √(m₁² + m₂²), m the two periods'
/// margins (half-widths of their intervals, before clamping).
public struct RatingChange: Sendable, Hashable {
    /// This period's figure minus the previous one's.
    public var delta: Double
    /// Whether the difference is beyond the intervals.
    public var significant: Bool

    /// The change from `previous` to `current` (value and margin); nil if either is missing
    /// or has no margin (a mean of one rating).
    public init?(current: (value: Double, margin: Double?)?, previous: (value: Double, margin: Double?)?) {
        guard let current, let previous, let m1 = current.margin, let m2 = previous.margin else { return nil }
        self.delta = current.value - previous.value
        self.significant = abs(self.delta) > (m1 * m1 + m2 * m2).squareRoot()
    }
}

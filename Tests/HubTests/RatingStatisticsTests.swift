import Foundation
import Hub
import Testing
import Wire

/// The report's figures and intervals against values worked out by hand (and checked with a
/// second implementation in Python): a manager acts on these numbers.
@Suite struct RatingStatisticsTests {
    typealias Key = RatingStatistics.ScaleScore

    static func counts(_ scale: FeedbackRecord.Scale, _ scores: [UInt8: Int64]) -> [Key: Int64] {
        Dictionary(uniqueKeysWithValues: scores.map { (Key(scale: scale.rawValue, score: $0.key), $0.value) })
    }

    @Test func npsHasTheAdjustedWaldInterval() throws {
        // 60 promoters, 20 passives, 20 detractors.
        let statistics = RatingStatistics(counts: Self.counts(.nps, [10: 40, 9: 20, 8: 15, 7: 5, 6: 10, 0: 10]), misuse: 0)
        let nps = try #require(statistics.nps)
        #expect(nps.responses == 100 && nps.promoters == 60 && nps.passives == 20 && nps.detractors == 20)
        #expect(abs(nps.score - 40) < 1e-9)
        #expect(abs(nps.low - 23.3799) < 0.001 && abs(nps.high - 54.2900) < 0.001)
        // One detractor: −100 with a wide interval, clamped to the scale.
        let one = try #require(RatingStatistics(counts: Self.counts(.nps, [3: 1]), misuse: 0).nps)
        #expect(one.score == -100 && abs(one.low - -98.4987) < 0.001 && abs(one.high - 48.4987) < 0.001)
        #expect(RatingStatistics(counts: [:], misuse: 0).nps == nil, "no NPS without NPS ratings")
    }

    @Test func sharesHaveTheWilsonIntervalAndMeansStudentsT() throws {
        // CSAT: 8 of 10 gave 4–5.
        let csat = try #require(RatingStatistics(counts: Self.counts(.csat, [5: 5, 4: 3, 2: 2]), misuse: 0).csat)
        #expect(csat.positive == 8 && csat.responses == 10 && csat.percent == 80)
        #expect(abs(csat.low - 49.0162) < 0.001 && abs(csat.high - 94.3318) < 0.001)
        // None positive: the interval still leaves room above zero.
        let none = try #require(RatingStatistics(counts: Self.counts(.binary, [0: 5]), misuse: 0).binary)
        #expect(none.percent == 0 && none.low == 0 && abs(none.high - 43.4482) < 0.001)
        // CES 2, 4, 6: mean 4, s = 2, t(2) = 4.303.
        let ces = try #require(RatingStatistics(counts: Self.counts(.ces, [2: 1, 4: 1, 6: 1]), misuse: 0).ces)
        #expect(ces.mean == 4 && abs(ces.low - -0.9687) < 0.001 && abs(ces.high - 8.9687) < 0.001)
        // Smiley: very unhappy (0) and very happy (100) → 50; one face has no spread.
        let smiley = try #require(RatingStatistics(counts: Self.counts(.smiley, [1: 1, 4: 1]), misuse: 0).smiley)
        #expect(smiley.mean == 50)
        let single = try #require(RatingStatistics(counts: Self.counts(.smiley, [3: 1]), misuse: 0).smiley)
        #expect(abs(single.mean - 66.6667) < 0.001 && single.low == single.mean && single.high == single.mean)
    }

    @Test func misuseIsCountedApartAndTheScalesDoNotMix() {
        var counts = Self.counts(.nps, [10: 3])
        counts.merge(Self.counts(.smiley, [1: 2]), uniquingKeysWith: +)
        let statistics = RatingStatistics(counts: counts, misuse: 7)
        #expect(statistics.responses == 5 && statistics.misuse == 7)
        #expect(statistics.nps?.responses == 3 && statistics.smiley?.responses == 2 && statistics.csat == nil && statistics.ces == nil)
    }

    @Test func aChangeIsSignificantOnlyBeyondBothIntervals() throws {
        // Margins 10 and 10: beyond √200 ≈ 14.14.
        #expect(RatingChange(current: (30, 10), previous: (15, 10))?.significant == true)
        #expect(RatingChange(current: (30, 10), previous: (17, 10))?.significant == false)
        #expect(RatingChange(current: (30, 10), previous: (17, 10))?.delta == 13)
        #expect(RatingChange(current: nil, previous: (17, 10)) == nil)
        // A mean of one rating has no spread: no change can be judged against it.
        let one = try #require(RatingStatistics(counts: Self.counts(.ces, [5: 1]), misuse: 0).ces)
        #expect(one.margin == nil)
        #expect(RatingChange(current: (6, 0.5), previous: (one.mean, one.margin)) == nil)
        // Ten detractors: the interval is clamped at −100, the margin is not.
        let clamped = try #require(RatingStatistics(counts: Self.counts(.nps, [0: 10]), misuse: 0).nps)
        #expect(clamped.low == -100 && abs(clamped.high - -47.5036) < 0.001)
        #expect(abs(clamped.margin - 29.4195) < 0.001, "judged by the whole half-width, not (high − low)/2 = 26.2")
    }
}

import Foundation

extension RatingReport {
    /// The report as a JSON object (docs/REPORTS.md): figures rounded to two decimals, times
    /// as ISO 8601 in the request's time zone.
    public var jsonObject: [String: Any] {
        let format = Self.formatter(self.request.timeZone)
        func period(_ range: (from: Date, to: Date)) -> [String: Any] {
            ["from": format.string(from: range.from), "to": format.string(from: range.to)]
        }
        var object: [String: Any] = [
            "period": period(self.period).merging(["timeZone": self.request.timeZone.identifier]) { a, _ in a },
            "previousPeriod": period(self.previousPeriod),
            "groupBy": self.request.groupBy.map(\.rawValue),
            "total": Self.comparison(self.total.current, self.total.previous),
        ]
        if let bucket = self.request.bucket { object["bucket"] = bucket.rawValue }
        object["groups"] = self.groups.map { group -> [String: Any] in
            var entry = Self.comparison(group.current, group.previous)
            entry["key"] = Dictionary(uniqueKeysWithValues: zip(self.request.groupBy.map(\.rawValue), group.key))
            if self.request.bucket != nil {
                entry["buckets"] = group.buckets.map { ["start": format.string(from: $0.start), "statistics": Self.object($0.statistics)] }
            }
            return entry
        }
        return object
    }

    /// The report as CSV (RFC 4180, CRLF): a row per group with the period's figures, the
    /// previous period's and the changes, then, with buckets, a row per group and bucket
    /// (`bucket` set, previous and change columns empty). Text that a spreadsheet would run
    /// as a formula (`=`, `+`, `-`, `@`, tab, CR first) is prefixed with `'`.
    public var csv: String {
        let figures = ["nps", "csat", "ces", "smiley", "binary"]
        var header = self.request.groupBy.map(\.rawValue) + ["bucket", "responses", "misuse"]
        header += ["nps", "nps_low", "nps_high", "promoters", "passives", "detractors"]
        for figure in figures.dropFirst() { header += [figure, "\(figure)_low", "\(figure)_high"] }
        header += ["previous_responses"] + figures.map { "previous_\($0)" }
        header += figures.flatMap { ["\($0)_change", "\($0)_change_significant"] }
        var lines = [header.map(Self.csvField).joined(separator: ",")]
        let format = Self.formatter(self.request.timeZone)
        func row(_ key: [String], bucket: String, _ statistics: RatingStatistics, previous: RatingStatistics?) -> String {
            var fields = key + [bucket, "\(statistics.responses)", "\(statistics.misuse)"]
            let nps = statistics.nps
            fields += [nps.map { Self.number($0.score) }, nps.map { Self.number($0.low) }, nps.map { Self.number($0.high) }].map { $0 ?? "" }
            fields += [nps.map { "\($0.promoters)" }, nps.map { "\($0.passives)" }, nps.map { "\($0.detractors)" }].map { $0 ?? "" }
            for value in Self.interval(statistics).dropFirst() {
                fields += [value.map { Self.number($0.value) }, value.map { Self.number($0.low) }, value.map { Self.number($0.high) }]
                    .map { $0 ?? "" }
            }
            if let previous {
                fields.append("\(previous.responses)")
                fields += Self.interval(previous).map { $0.map { Self.number($0.value) } ?? "" }
                for (now, before) in zip(Self.margins(statistics), Self.margins(previous)) {
                    let change = RatingChange(current: now, previous: before)
                    fields += [change.map { Self.number($0.delta) } ?? "", change.map { $0.significant ? "true" : "false" } ?? ""]
                }
            } else {
                fields += Array(repeating: "", count: 1 + figures.count * 3)
            }
            return fields.map(Self.csvField).joined(separator: ",")
        }
        for group in self.groups {
            lines.append(row(group.key, bucket: "", group.current, previous: group.previous))
        }
        if self.request.bucket != nil {
            for group in self.groups {
                for (start, statistics) in group.buckets {
                    lines.append(row(group.key, bucket: format.string(from: start), statistics, previous: nil))
                }
            }
        }
        return lines.joined(separator: "\r\n") + "\r\n"
    }

    /// Each figure as (value, margin), in the order nps, csat, ces, smiley, binary: what a
    /// change is judged by.
    static func margins(_ statistics: RatingStatistics) -> [(value: Double, margin: Double?)?] {
        [
            statistics.nps.map { ($0.score, $0.margin) }, statistics.csat.map { ($0.percent, $0.margin) },
            statistics.ces.map { ($0.mean, $0.margin) }, statistics.smiley.map { ($0.mean, $0.margin) },
            statistics.binary.map { ($0.percent, $0.margin) },
        ]
    }

    /// Each figure as (value, low, high), in the order nps, csat, ces, smiley, binary.
    static func interval(_ statistics: RatingStatistics) -> [(value: Double, low: Double, high: Double)?] {
        [
            statistics.nps.map { ($0.score, $0.low, $0.high) }, statistics.csat.map { ($0.percent, $0.low, $0.high) },
            statistics.ces.map { ($0.mean, $0.low, $0.high) }, statistics.smiley.map { ($0.mean, $0.low, $0.high) },
            statistics.binary.map { ($0.percent, $0.low, $0.high) },
        ]
    }

    static func comparison(_ current: RatingStatistics, _ previous: RatingStatistics) -> [String: Any] {
        var change: [String: Any] = [:]
        for (name, (now, before)) in zip(["nps", "csat", "ces", "smiley", "binary"], zip(Self.margins(current), Self.margins(previous))) {
            if let moved = RatingChange(current: now, previous: before) {
                change[name] = ["delta": Self.rounded(moved.delta), "significant": moved.significant]
            }
        }
        return ["current": Self.object(current), "previous": Self.object(previous), "change": change]
    }

    static func object(_ statistics: RatingStatistics) -> [String: Any] {
        var object: [String: Any] = ["responses": statistics.responses, "misuse": statistics.misuse]
        if let nps = statistics.nps {
            object["nps"] = [
                "score": Self.rounded(nps.score), "low": Self.rounded(nps.low), "high": Self.rounded(nps.high), "responses": nps.responses,
                "promoters": nps.promoters, "passives": nps.passives, "detractors": nps.detractors,
            ]
        }
        for (name, share) in [("csat", statistics.csat), ("binary", statistics.binary)] {
            guard let share else { continue }
            object[name] = [
                "percent": Self.rounded(share.percent), "low": Self.rounded(share.low), "high": Self.rounded(share.high),
                "responses": share.responses, "positive": share.positive,
            ]
        }
        for (name, mean) in [("ces", statistics.ces), ("smiley", statistics.smiley)] {
            guard let mean else { continue }
            object[name] = ["mean": Self.rounded(mean.mean), "low": Self.rounded(mean.low), "high": Self.rounded(mean.high), "responses": mean.responses]
        }
        return object
    }

    static func rounded(_ value: Double) -> Double {
        (value * 100).rounded() / 100
    }

    static func number(_ value: Double) -> String {
        String(format: "%.2f", value)
    }

    static func formatter(_ zone: TimeZone) -> ISO8601DateFormatter {
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = zone
        formatter.formatOptions = [.withInternetDateTime]
        return formatter
    }

    /// One CSV field: quoted when it holds a comma, quote or line break; prefixed with `'`
    /// when a spreadsheet would read it as a formula.
    static func csvField(_ text: String) -> String {
        var text = text
        if let first = text.unicodeScalars.first, ["=", "+", "-", "@", "\t", "\r"].contains(first), Double(text) == nil {
            text = "'" + text
        }
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

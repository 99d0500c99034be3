import Foundation

/// Charts the hub draws itself, as inline SVG: no script and no asset from elsewhere, so a
/// branch office without internet sees them. Each chart is an `<svg role="img">` with a
/// `<title>` and a `<desc>` that says what it shows in words, for screen readers; colours
/// come from the stylesheet's classes (`bar`, `line`, `band`, `axis`), so the page's
/// Content-Security-Policy needs no inline style.
///
/// Every text drawn is escaped; numbers are written with a fixed number of decimals. Each
/// chart has its figures as a table too (``table(_:id:caption:summary:label:value:interval:decimals:)``).
enum SVGChart {
    /// One point of a series: a label for the x axis, a value (nil: no data), and optional
    /// interval bounds drawn as a band around it.
    struct Point: Sendable, Hashable {
        var label: String
        var value: Double?
        var low: Double?
        var high: Double?

        init(label: String, value: Double?, low: Double? = nil, high: Double? = nil) {
            self.label = label
            self.value = value
            self.low = low
            self.high = high
        }
    }

    static let width = 640.0
    static let height = 180.0
    /// Room for the axis labels: left, right, top, bottom.
    static let inset = (left: 44.0, right: 8.0, top: 10.0, bottom: 24.0)

    /// Bars, one per point, from zero up to the value; the y axis from 0 to the largest value.
    static func bars(_ points: [Point], id: String, title: String, description: String) -> String {
        let top = Self.niceCeiling(points.compactMap(\.value).max() ?? 0)
        let scale = Scale(count: points.count, range: 0...top)
        var body = Self.axes(scale, range: 0...top)
        let slot = scale.plotWidth / Double(max(points.count, 1))
        for (index, point) in points.enumerated() {
            guard let value = point.value, value > 0 else { continue }
            let x = Self.inset.left + Double(index) * slot + slot * 0.1
            let y = scale.y(value)
            body += #"<rect class="bar" x="\#(Self.n(x))" y="\#(Self.n(y))" width="\#(Self.n(slot * 0.8))" height="\#(Self.n(scale.y(0) - y))">"#
            body += "<title>\(Self.escape(point.label)): \(Self.n(value, decimals: 0))</title></rect>"
        }
        body += Self.xLabels(points, scale: scale)
        return Self.frame(body, id: id, title: title, description: description)
    }

    /// A line through the values with its interval drawn as a band; the y axis over `range`
    /// (NPS: −100…100), with a zero line when the range spans zero.
    static func band(_ points: [Point], range: ClosedRange<Double>, id: String, title: String, description: String) -> String {
        let scale = Scale(count: points.count, range: range)
        var body = Self.axes(scale, range: range)
        // The band: upper bounds left to right, lower bounds back; broken where data is missing.
        for run in Self.runs(points) {
            let upper = run.map { "\(Self.n(scale.x($0.index))),\(Self.n(scale.y(Self.clamp($0.point.high ?? $0.point.value ?? 0, range))))" }
            let lower = run.reversed().map { "\(Self.n(scale.x($0.index))),\(Self.n(scale.y(Self.clamp($0.point.low ?? $0.point.value ?? 0, range))))" }
            body += #"<polygon class="band" points="\#((upper + lower).joined(separator: " "))"/>"#
            let line = run.map { "\(Self.n(scale.x($0.index))),\(Self.n(scale.y(Self.clamp($0.point.value ?? 0, range))))" }
            body += #"<polyline class="line" points="\#(line.joined(separator: " "))"/>"#
            // A lone point has no band to fill: its interval is drawn as a bar through it.
            if run.count == 1, let only = run.first, let low = only.point.low, let high = only.point.high {
                let x = Self.n(scale.x(only.index))
                body += #"<line class="whisker" x1="\#(x)" x2="\#(x)" y1="\#(Self.n(scale.y(Self.clamp(high, range))))" y2="\#(Self.n(scale.y(Self.clamp(low, range))))"/>"#
            }
        }
        for (index, point) in points.enumerated() {
            guard let value = point.value else { continue }
            var tip = "\(Self.escape(point.label)): \(Self.n(value, decimals: 1))"
            if let low = point.low, let high = point.high { tip += " (\(Self.n(low, decimals: 1)) … \(Self.n(high, decimals: 1)))" }
            body += #"<circle class="dot" cx="\#(Self.n(scale.x(index)))" cy="\#(Self.n(scale.y(Self.clamp(value, range))))" r="3"><title>\#(tip)</title></circle>"#
        }
        body += Self.xLabels(points, scale: scale)
        return Self.frame(body, id: id, title: title, description: description)
    }

    /// The chart's numbers as a table, folded under `summary` below it: what a screen-reader
    /// user or anyone who wants the figures reads instead of the drawing. Points without a
    /// value show "—"; the interval column only when `interval` names it. `id` (the chart's)
    /// names it, so a live refresh keeps it open.
    static func table(
        _ points: [Point], id: String, caption: String, summary: String, label: String, value: String, interval: String? = nil, decimals: Int = 0
    ) -> String {
        var html = #"<details class="chart-table" id="\#(id)-table"><summary>\#(Self.escape(summary))</summary><table><caption>\#(Self.escape(caption))</caption>"#
        html += #"<thead><tr><th scope="col">\#(Self.escape(label))</th><th scope="col">\#(Self.escape(value))</th>"#
        if let interval { html += #"<th scope="col">\#(Self.escape(interval))</th>"# }
        html += "</tr></thead><tbody>"
        for point in points {
            html += #"<tr><th scope="row">\#(Self.escape(point.label))</th><td>\#(point.value.map { Self.n($0, decimals: decimals) } ?? "—")</td>"#
            if interval != nil {
                let bounds = point.low.flatMap { low in point.high.map { "\(Self.n(low, decimals: decimals)) … \(Self.n($0, decimals: decimals))" } }
                html += "<td>\(bounds ?? "—")</td>"
            }
            html += "</tr>"
        }
        return html + "</tbody></table></details>"
    }

    /// Maps indices and values to the plot area.
    struct Scale {
        let count: Int
        let range: ClosedRange<Double>

        var plotWidth: Double { SVGChart.width - SVGChart.inset.left - SVGChart.inset.right }
        var plotHeight: Double { SVGChart.height - SVGChart.inset.top - SVGChart.inset.bottom }

        /// The centre of point `index`'s slot.
        func x(_ index: Int) -> Double {
            SVGChart.inset.left + (Double(index) + 0.5) * self.plotWidth / Double(max(self.count, 1))
        }

        func y(_ value: Double) -> Double {
            let span = self.range.upperBound - self.range.lowerBound
            let share = span > 0 ? (value - self.range.lowerBound) / span : 0
            return SVGChart.inset.top + (1 - share) * self.plotHeight
        }
    }

    /// The smallest of 1, 2, 5 × 10ⁿ at or above `value` (at least 1): round axis tops.
    static func niceCeiling(_ value: Double) -> Double {
        guard value > 1 else { return 1 }
        let power = pow(10, floor(log10(value)))
        for step in [1.0, 2.0, 5.0, 10.0] where step * power >= value { return step * power }
        return 10 * power
    }

    /// Consecutive points that have a value: a line is not drawn across a gap.
    static func runs(_ points: [Point]) -> [[(index: Int, point: Point)]] {
        var runs: [[(index: Int, point: Point)]] = []
        var current: [(index: Int, point: Point)] = []
        for (index, point) in points.enumerated() {
            if point.value == nil {
                if !current.isEmpty { runs.append(current) }
                current = []
            } else {
                current.append((index, point))
            }
        }
        if !current.isEmpty { runs.append(current) }
        return runs
    }

    private static func axes(_ scale: Scale, range: ClosedRange<Double>) -> String {
        var body = ""
        let ticks = range.lowerBound < 0 ? [range.lowerBound, 0, range.upperBound] : [range.lowerBound, range.upperBound / 2, range.upperBound]
        for tick in ticks {
            let y = scale.y(tick)
            body += #"<line class="grid" x1="\#(Self.n(Self.inset.left))" x2="\#(Self.n(Self.width - Self.inset.right))" y1="\#(Self.n(y))" y2="\#(Self.n(y))"/>"#
            body += #"<text class="axis" x="\#(Self.n(Self.inset.left - 4))" y="\#(Self.n(y + 4))" text-anchor="end">\#(Self.n(tick, decimals: tick == tick.rounded() ? 0 : 1))</text>"#
        }
        return body
    }

    /// At most eight x labels, evenly spaced, the last always shown.
    private static func xLabels(_ points: [Point], scale: Scale) -> String {
        guard !points.isEmpty else { return "" }
        let step = max(1, Int((Double(points.count) / 8).rounded(.up)))
        var body = ""
        for index in stride(from: points.count - 1, through: 0, by: -step) {
            body += #"<text class="axis" x="\#(Self.n(scale.x(index)))" y="\#(Self.n(Self.height - 6))" text-anchor="middle">\#(Self.escape(points[index].label))</text>"#
        }
        return body
    }

    /// The `<svg>` around `body`; `id` (a fixed name of ours, unique on the page) names its
    /// title and description for `aria-labelledby`.
    private static func frame(_ body: String, id: String, title: String, description: String) -> String {
        #"<svg class="chart" viewBox="0 0 \#(Self.n(Self.width, decimals: 0)) \#(Self.n(Self.height, decimals: 0))" role="img" aria-labelledby="\#(id)-t \#(id)-d" xmlns="http://www.w3.org/2000/svg">"#
            + #"<title id="\#(id)-t">\#(Self.escape(title))</title><desc id="\#(id)-d">\#(Self.escape(description))</desc>"#
            + body + "</svg>"
    }

    private static func clamp(_ value: Double, _ range: ClosedRange<Double>) -> Double {
        min(max(value, range.lowerBound), range.upperBound)
    }

    /// A number with `decimals` decimals and a dot, whatever the locale.
    static func n(_ value: Double, decimals: Int = 1) -> String {
        guard value.isFinite else { return "0" }
        return String(format: "%.\(decimals)f", locale: Locale(identifier: "en_US_POSIX"), value)
    }

    /// Text for SVG or HTML: `& < > " '` escaped.
    static func escape(_ text: String) -> String {
        var escaped = ""
        escaped.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            case "'": escaped += "&#39;"
            default: escaped.append(character)
            }
        }
        return escaped
    }
}

import Foundation
import Wire

/// What each page shows: its values for the templates, read from the store (on the store
/// threads) or from the health sampler.
extension Dashboard {
    /// Periods the overview offers, in days.
    static let periods = [1, 7, 30, 90]

    /// Overview: ratings per hour over the last 48 hours, NPS per day over the last 30 with
    /// its interval, and each site this period against the one before. Read from rollups.
    func overview(_ page: PageRequest) throws -> [String: Any] {
        let days = page.parameter("days").flatMap(Int.init).flatMap { Self.periods.contains($0) ? $0 : nil } ?? 7
        let scope = page.caller?.sites ?? .none
        let now = Date(timeIntervalSince1970: Double(page.now) / 1000)
        // The charts show one period; only the site table compares with the one before.
        func report(days: Double, groupBy: [RollupQuery.Dimension], bucket: RatingReport.Bucket?, zone: TimeZone? = nil) throws -> RatingReport {
            try RatingReport.make(
                .init(
                    from: now.addingTimeInterval(-days * 86_400), to: now, timeZone: zone ?? page.zone, groupBy: groupBy, bucket: bucket, filters: [:],
                    scope: scope, comparesPrevious: bucket == nil
                ),
                from: self.store
            )
        }
        let sites: RatingReport
        do {
            sites = try report(days: Double(days), groupBy: [.site], bucket: nil)
        } catch let refusal as RatingReport.Refusal {
            return ["error": refusal.description, "periods": [], "sites": [], "hasSites": false]
        }
        // Hours as the rollups count them (UTC), so a zone half an hour off UTC shifts no bar;
        // each is labelled with its start in the page's zone.
        let hourly = try report(days: 2, groupBy: [], bucket: .hour, zone: .gmt)
        let daily = try report(days: 30, groupBy: [], bucket: .day)

        // Hours keyed by their number since the epoch, so an hour without ratings is a gap.
        let firstHour = Int64(hourly.period.from.timeIntervalSince1970 / 3_600)
        var perHour: [Int64: Int64] = [:]
        for (start, statistics) in hourly.groups.flatMap(\.buckets) { perHour[Int64(start.timeIntervalSince1970 / 3_600), default: 0] += statistics.responses }
        let hourFormat = Self.formatter(page.zone.secondsFromGMT() % 3_600 == 0 ? "HH" : "HH:mm", page.zone)
        let hours = Int64(hourly.period.to.timeIntervalSince1970 / 3_600) - firstHour
        let ratePoints = (0..<max(hours, 0)).map { offset in
            let hour = firstHour + offset
            return SVGChart.Point(label: hourFormat.string(from: Date(timeIntervalSince1970: Double(hour) * 3_600)), value: Double(perHour[hour] ?? 0))
        }

        var calendar = Calendar(identifier: .iso8601)
        calendar.timeZone = page.zone
        let dayFormat = Self.formatter("MM-dd", page.zone)
        let dayKey = Self.formatter("yyyy-MM-dd", page.zone)
        var perDay: [String: RatingStatistics.NPS] = [:]
        for (start, statistics) in daily.groups.flatMap(\.buckets) { perDay[dayKey.string(from: start)] = statistics.nps }
        var npsPoints: [SVGChart.Point] = []
        var day = calendar.date(byAdding: .day, value: -29, to: calendar.startOfDay(for: now)) ?? now
        while day <= now, npsPoints.count < 31 {
            let nps = perDay[dayKey.string(from: day)]
            npsPoints.append(SVGChart.Point(label: dayFormat.string(from: day), value: nps?.score, low: nps?.low, high: nps?.high))
            guard let next = calendar.date(byAdding: .day, value: 1, to: day) else { break }
            day = next
        }

        let t = page.t
        var rows = sites.groups.prefix(Self.maxRows).map { Self.siteRow(name: $0.key.first ?? "", current: $0.current, previous: $0.previous, t: t) }
        if !rows.isEmpty { rows.append(Self.siteRow(name: t["total"] ?? "", current: sites.total.current, previous: sites.total.previous, t: t)) }
        return [
            "periods": Self.periods.map { ["value": $0, "label": t["days\($0)"] ?? "\($0)", "selected": $0 == days] as [String: Any] },
            "periodText": "\(page.format(Int64(sites.period.from.timeIntervalSince1970 * 1000))) – \(page.format(Int64(sites.period.to.timeIntervalSince1970 * 1000))) (\(page.zone.identifier))",
            "rateChart": SVGChart.bars(ratePoints, id: "rate", title: t["ratingsPerHour"] ?? "", description: t["ratingsPerHourDesc"] ?? "")
                + SVGChart.table(ratePoints, id: "rate", caption: t["ratingsPerHour"] ?? "", summary: t["asTable"] ?? "", label: t["hour"] ?? "", value: t["responses"] ?? ""),
            "npsChart": SVGChart.band(npsPoints, range: -100...100, id: "nps", title: t["npsTrend"] ?? "", description: t["npsTrendDesc"] ?? "")
                + SVGChart.table(
                    npsPoints, id: "nps", caption: t["npsTrend"] ?? "", summary: t["asTable"] ?? "", label: t["day"] ?? "", value: "NPS",
                    interval: t["interval95"] ?? "", decimals: 1
                ),
            "sites": rows, "hasSites": !rows.isEmpty, "cut": sites.groups.count > Self.maxRows,
        ]
    }

    /// One row of the overview's site table.
    static func siteRow(name: String, current: RatingStatistics, previous: RatingStatistics, t: [String: String]) -> [String: Any] {
        func nps(_ nps: RatingStatistics.NPS?) -> String {
            guard let nps else { return "—" }
            return "\(Self.signed(nps.score)) (\(Self.signed(nps.low)) … \(Self.signed(nps.high)))"
        }
        var row: [String: Any] = [
            "name": name, "responses": current.responses, "previousResponses": previous.responses, "nps": nps(current.nps), "previousNps": nps(previous.nps),
            "csat": current.csat.map { "\(SVGChart.n($0.percent)) % (\(SVGChart.n($0.low)) … \(SVGChart.n($0.high)))" } ?? "—",
            "detractors": current.nps?.detractors ?? 0, "misuse": current.misuse,
        ]
        if let change = RatingChange(
            current: current.nps.map { ($0.score, $0.margin) }, previous: previous.nps.map { ($0.score, $0.margin) }
        ) {
            row["change"] = "\(Self.signed(change.delta))\(change.significant ? (change.delta > 0 ? " ▲" : " ▼") : " ≈")"
            row["changeClass"] = change.significant ? (change.delta > 0 ? "good" : "bad") : "muted"
            row["changeTitle"] = change.significant ? t["beyond"] ?? "" : t["within"] ?? ""
        }
        return row
    }

    /// Cases: the filters of the query, overdue cases first (the longest overdue at the top),
    /// then stuck ones, then the newest. Overdue and stuck cases are asked of the store on
    /// their own, so an old one is shown even when more than ``maxCases`` are newer.
    func cases(_ page: PageRequest) throws -> [String: Any] {
        let t = page.t
        let caller = page.caller
        // One more than shown: a full answer says the list was cut.
        var query = AlertQuery(scope: caller?.sites ?? .none, limit: Self.maxCases + 1)
        let status = page.parameter("status") ?? "unclosed"
        var errors: [String] = []
        switch status {
        case "unclosed": query.statuses = [.open, .inProgress, .waiting]
        case "all": break
        default:
            if let one = Alert.Status(rawValue: status) {
                query.statuses = [one]
            } else {
                errors.append("\(t["status"] ?? ""): \(status)")
                query.statuses = [.open, .inProgress, .waiting]
            }
        }
        let site = page.parameter("site").flatMap { $0.isEmpty ? nil : $0 }
        if let site, site.unicodeScalars.count <= 1_024 { query.site = site } else if site != nil { errors.append(t["site"] ?? "") }
        let owner = page.parameter("owner").flatMap { $0.isEmpty ? nil : $0 }
        if let owner, owner.unicodeScalars.count <= CaseChange.maxOwnerLength { query.owner = owner } else if owner != nil { errors.append(t["owner"] ?? "") }
        let overdueOnly = page.parameter("overdue") == "true"
        if overdueOnly { query.overdueAt = page.now }
        var stuckHours = 24
        if let text = page.parameter("stuckFor"), !text.isEmpty {
            if let hours = Int(text), (1...8_760).contains(hours) { stuckHours = hours } else { errors.append(t["stuckFor"] ?? "") }
        }
        let stuckBefore = page.now - Int64(stuckHours) * 3_600_000
        var overdueQuery = query
        overdueQuery.overdueAt = page.now
        var stuckQuery = query
        stuckQuery.unchangedSince = stuckBefore
        var seen = Set<UUID>()
        var found: [Alert] = []
        var asked: [AlertQuery] = []
        // With "overdue only", the overdue query is the list itself: asked once.
        for next in [overdueQuery, stuckQuery, query] where found.count <= Self.maxCases && !asked.contains(next) {
            asked.append(next)
            for alert in try self.store.alerts(next) where query.scope.allows(alert.site) && seen.insert(alert.id).inserted {
                found.append(alert)
            }
        }
        let cut = found.count > Self.maxCases
        found = Array(found.prefix(Self.maxCases))
        func overdueSince(_ alert: Alert) -> Int64? { Self.overdueSince(alert, now: page.now) }
        func isStuck(_ alert: Alert) -> Bool { Self.isStuck(alert, before: stuckBefore) }
        let ordered = Self.ordered(found, now: page.now, stuckBefore: stuckBefore)
        let canAct = caller?.role.allows(.act) ?? false
        let rows: [[String: Any]] = ordered.map { alert in
            let actions = canAct ? Self.actions(from: alert.status) : []
            var row: [String: Any] = [
                "id": alert.id.uuidString.lowercased(), "summary": alert.summary, "status": alert.status.rawValue,
                "statusLabel": t[alert.status.rawValue] ?? alert.status.rawValue,
                "statusClass": alert.status == .open ? "bad" : (alert.status.isClosed ? "good" : "warn"),
                "overdue": overdueSince(alert) != nil, "stuck": isStuck(alert), "site": alert.site, "subject": alert.subject,
                "owner": alert.owner.isEmpty ? "—" : alert.owner, "ownerValue": alert.owner, "raised": page.formatWithAge(alert.createdAt),
                "due": alert.dueAt.map(page.formatWithAge) ?? "—", "changed": page.formatWithAge(alert.updatedAt),
                "actions": actions.map { ["name": $0, "label": t[$0] ?? $0] }, "hasActions": canAct && !alert.status.isClosed,
                "canComplete": actions.contains("complete"),
            ]
            if !alert.note.isEmpty { row["note"] = String(alert.note.suffix(300)) }
            return row
        }
        var values: [String: Any] = [
            "statusChoices": (["unclosed", "all"] + Alert.Status.allCases.map(\.rawValue)).map { value in
                ["value": value, "label": t[value == "unclosed" ? "statusOpenOnly" : (value == "all" ? "statusAll" : value)] ?? value, "selected": value == status] as [String: Any]
            },
            "site": site ?? "", "owner": owner ?? "", "stuckFor": stuckHours, "overdueOnly": overdueOnly, "canAct": canAct,
            "cases": rows, "count": rows.count, "cut": cut,
        ]
        // Set only when there is one: an empty string would still open the section.
        if !errors.isEmpty { values["error"] = "? " + errors.joined(separator: ", ") }
        return values
    }

    /// Since when `alert` is overdue at `now`, as the store's overdue condition has it: open
    /// past its first-action deadline, or not closed past its due time; nil if it is not.
    static func overdueSince(_ alert: Alert, now: Int64) -> Int64? {
        [alert.status == .open ? alert.deadlineAt : nil, alert.status.isClosed ? nil : alert.dueAt].compactMap { $0 }.filter { $0 <= now }.min()
    }

    /// Not closed and unchanged since `before`.
    static func isStuck(_ alert: Alert, before: Int64) -> Bool {
        !alert.status.isClosed && alert.updatedAt <= before
    }

    /// The cases page's order: overdue first, the longest overdue at the top; then stuck;
    /// then the newest.
    static func ordered(_ alerts: [Alert], now: Int64, stuckBefore: Int64) -> [Alert] {
        alerts.sorted { a, b in
            (Self.overdueSince(a, now: now) ?? .max, Self.isStuck(a, before: stuckBefore) ? 0 : 1, -a.createdAt)
                < (Self.overdueSince(b, now: now) ?? .max, Self.isStuck(b, before: stuckBefore) ? 0 : 1, -b.createdAt)
        }
    }

    /// The status changes a case in `status` offers (``CaseChange`` decides; these are the
    /// ones it allows).
    static func actions(from status: Alert.Status) -> [String] {
        switch status {
        case .open: ["start", "wait", "complete", "cancel"]
        case .inProgress: ["wait", "complete", "cancel"]
        case .waiting: ["start", "complete", "cancel"]
        case .completed, .cancelled: []
        }
    }

    /// Fleet: the nodes whose every enrolled site the caller's sites cover, silent ones first
    /// (the longest silent at the top), then those never seen, the active, the revoked.
    func fleet(_ page: PageRequest) throws -> [String: Any] {
        let t = page.t
        let scope = page.caller?.sites ?? .none
        let visible = try self.store.fleet().filter { entry in
            scope.allowsAnySite || (!entry.node.sites.patterns.isEmpty && entry.node.sites.patterns.allSatisfy { scope.allows($0) })
        }
        func rank(_ entry: FleetNode) -> Int {
            if entry.node.revoked { return 3 }
            if entry.isSilent(at: page.now, after: self.silentAfterMilliseconds) { return 0 }
            return entry.lastSeenAt == nil ? 1 : 2
        }
        let ordered = visible.sorted { a, b in
            (rank(a), a.lastSeenAt ?? .max, a.node.nodeID.uuidString) < (rank(b), b.lastSeenAt ?? .max, b.node.nodeID.uuidString)
        }
        let rows: [[String: Any]] = ordered.prefix(Self.maxRows).map { entry in
            let status = entry.status?.status
            let state = ["silent", "never", "active", "revoked"][rank(entry)]
            let failing = status?.sources.filter { $0.errors > 0 }.map { "\($0.name): \($0.errors)" } ?? []
            return [
                "id": entry.node.nodeID.uuidString.lowercased(), "shortId": String(entry.node.nodeID.uuidString.lowercased().prefix(8)),
                "state": t[state] ?? state, "stateClass": ["bad", "muted", "good", "muted"][rank(entry)],
                "sites": entry.node.sites.description, "role": entry.node.role == .relay ? "relay" : "agent", "version": status?.version ?? "—",
                "lastSeen": entry.lastSeenAt.map(page.age) ?? "—",
                "backlog": status.map { "\($0.backlogRecords) / \($0.backlogBatches)" } ?? "—",
                "oldest": status?.oldestPendingAt.map(page.age) ?? "—", "upstream": status?.upstream ?? "—",
                "errors": failing.isEmpty ? "—" : failing.joined(separator: ", "),
            ]
        }
        return ["nodes": rows, "hasNodes": !rows.isEmpty, "count": rows.count, "cut": ordered.count > Self.maxRows]
    }

    /// Hub health from the sampler: the newest sample against the one a minute before.
    func health(_ page: PageRequest) -> [String: Any] {
        let t = page.t
        let samples = self.sampler.kept
        guard let latest = samples.last else { return ["ready": false, "rate": "—", "commit": "—", "connections": "—", "handshakes": "—", "store": "—", "silent": "—", "tables": []] }
        let earlier = samples.last { $0.at <= latest.at - 55_000 } ?? samples.first ?? latest
        let seconds = Double(latest.at - earlier.at) / 1000
        let stored = "feedback_hub_records_stored_total"
        func value(_ name: String) -> Double { HealthSampler.value(latest.values, name) ?? 0 }
        let rate = seconds > 0 ? (value(stored) - (HealthSampler.value(earlier.values, stored) ?? 0)) / seconds : nil
        let p50 = HealthSampler.quantile(0.5, histogram: "feedback_hub_commit_duration_seconds", from: earlier.values, to: latest.values)
        let p99 = HealthSampler.quantile(0.99, histogram: "feedback_hub_commit_duration_seconds", from: earlier.values, to: latest.values)
        func milliseconds(_ bound: Double?) -> String {
            guard let bound else { return "—" }
            return bound.isInfinite ? "> 10 s" : "≤ \(SVGChart.n(bound * 1000, decimals: 0)) ms"
        }
        let timeFormat = Self.formatter("HH:mm:ss", page.zone)
        let ingest = zip(samples, samples.dropFirst()).map { old, new in
            let interval = Double(new.at - old.at) / 1000
            let count = (HealthSampler.value(new.values, stored) ?? 0) - (HealthSampler.value(old.values, stored) ?? 0)
            return SVGChart.Point(label: timeFormat.string(from: Date(timeIntervalSince1970: Double(new.at) / 1000)), value: interval > 0 ? max(0, count / interval) : 0)
        }
        func table(_ id: String, _ title: String, _ column: String, _ metric: String, label: String) -> [String: Any] {
            let now = HealthSampler.byLabel(latest.values, metric, label: label)
            let before = HealthSampler.byLabel(earlier.values, metric, label: label)
            let rows = now.keys.sorted().map { key in
                ["name": key, "recent": SVGChart.n((now[key] ?? 0) - (before[key] ?? 0), decimals: 0), "total": SVGChart.n(now[key] ?? 0, decimals: 0)]
            }
            return ["id": id, "title": title, "column": column, "rows": rows]
        }
        let storeUp = value("feedback_hub_store_up") > 0
        return [
            "ready": samples.count > 1, "rate": rate.map { SVGChart.n($0) } ?? "—", "commit": "p50 \(milliseconds(p50)) · p99 \(milliseconds(p99))",
            "connections": SVGChart.n(value("feedback_hub_connections"), decimals: 0), "handshakes": SVGChart.n(value("feedback_hub_handshakes"), decimals: 0),
            "store": storeUp ? t["yes"] ?? "yes" : t["no"] ?? "no", "storeClass": storeUp ? "good" : "bad",
            "silent": SVGChart.n(value("feedback_hub_nodes_silent"), decimals: 0),
            "ingestChart": SVGChart.bars(ingest, id: "ingest", title: t["ingestChart"] ?? "", description: t["ingestChartDesc"] ?? "")
                + SVGChart.table(ingest, id: "ingest", caption: t["ingestChart"] ?? "", summary: t["asTable"] ?? "", label: t["time"] ?? "", value: t["perSecond"] ?? "", decimals: 1),
            "tables": [
                table("rejects", t["rejects"] ?? "", t["code"] ?? "", "feedback_hub_rejects_total", label: "code"),
                table("deliveries", t["deliveries"] ?? "", t["outcome"] ?? "", "feedback_hub_alert_deliveries_total", label: "outcome"),
                table("refusals", t["authRefusals"] ?? "", t["reason"] ?? "", "feedback_hub_http_auth_refusals_total", label: "reason"),
            ],
        ]
    }

    /// `+12.3`, `-4.0`: a signed figure with one decimal.
    static func signed(_ value: Double) -> String {
        (value > 0 ? "+" : "") + SVGChart.n(value)
    }

    static func formatter(_ format: String, _ zone: TimeZone) -> DateFormatter {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = zone
        formatter.dateFormat = format
        return formatter
    }
}

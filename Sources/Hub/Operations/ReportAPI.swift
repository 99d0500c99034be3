import Foundation
import Hummingbird
import HummingbirdCore
import NIOCore
import Wire

/// The report API on the operations port (docs/REPORTS.md); any token (viewer and up), its
/// sites only:
///
/// - `GET /v1/reports/ratings?from=&to=&tz=&groupBy=site,subject&bucket=day&site=&…&format=csv`:
///   statistics per group with 95 % intervals, beside the previous period, JSON or CSV.
/// - `GET /v1/ratings?site=&from=&to=&negative=true&comment=true&limit=&after=`: individual
///   ratings, newest first, a page at a time (customer ids for managers and admins only).
///
/// Errors are `{"error":{"code","message","field"}}` with 400, 401 or 403.
struct ReportAPI: Sendable {
    let store: any ReportStore
    let clock: @Sendable () -> Int64

    func register(on router: Router<OperationsContext>) {
        let store = self.store
        let clock = self.clock
        router.get("v1/reports/ratings") { request, context -> Response in
            let caller: APIToken
            switch context.caller(allowedTo: .read) {
            case .success(let token): caller = token
            case .failure(let refusal): return refusal.response
            }
            let parsed: (RatingReport.Request, csv: Bool)
            switch Self.parse(request, scope: caller.sites, now: clock()) {
            case .success(let value): parsed = value
            case .failure(let refusal): return refusal.response
            }
            let wanted = parsed.0
            let report: RatingReport
            do {
                report = try await StoreAccess.run { try RatingReport.make(wanted, from: store) }
            } catch let refusal as RatingReport.Refusal {
                return OperationsJSON.error(.badRequest, "invalidQuery", refusal.description, field: refusal.field)
            }
            if parsed.csv {
                return Response(
                    status: .ok,
                    headers: [.contentType: "text/csv; charset=utf-8", .contentDisposition: #"attachment; filename="ratings.csv""#],
                    body: .init(byteBuffer: ByteBuffer(string: report.csv))
                )
            }
            return OperationsJSON.response(.ok, report.jsonObject)
        }
    }

    /// `GET /v1/ratings`: individual ratings of the caller's sites, newest first.
    func registerRatings(on router: Router<OperationsContext>) {
        let store = self.store
        let clock = self.clock
        router.get("v1/ratings") { request, context -> Response in
            let caller: APIToken
            switch context.caller(allowedTo: .read) {
            case .success(let token): caller = token
            case .failure(let refusal): return refusal.response
            }
            let wanted: RatingQuery
            switch Self.parseRatings(request, scope: caller.sites, now: clock()) {
            case .success(let query): wanted = query
            case .failure(let refusal): return refusal.response
            }
            let ratings = try await StoreAccess.run { try store.ratings(wanted) }
            // Customer ids are for those who call customers back: managers and admins.
            let showCustomer = caller.role.allows(.act)
            var object: [String: Any] = [
                "ratings": ratings.map { record -> [String: Any] in
                    var entry: [String: Any] = [
                        "id": record.id.uuidString.lowercased(), "source": record.source.name, "scale": record.scale.name, "score": Int(record.score),
                        "negative": record.isNegative, "occurredAt": record.occurredAt, "site": record.site, "channel": record.channel,
                        "subject": record.subject, "topic": record.topic, "survey": record.survey, "comment": record.comment,
                    ]
                    if showCustomer { entry["customer"] = record.customer }
                    return entry
                }
            ]
            if ratings.count == wanted.limit, let last = ratings.last {
                object["next"] = "\(last.occurredAt)_\(last.id.uuidString.lowercased())"
            }
            return OperationsJSON.response(.ok, object)
        }
    }

    /// The listing a query asks for, or the 400 naming the parameter at fault.
    static func parseRatings(_ request: Request, scope: SiteScope, now: Int64) -> Result<RatingQuery, OperationsRefusal> {
        func refuse(_ field: String, _ message: String) -> Result<RatingQuery, OperationsRefusal> {
            .failure(OperationsRefusal(status: .badRequest, code: "invalidQuery", message: message, field: field))
        }
        let query = request.uri.queryParameters
        let known: Set<String> = ["from", "to", "tz", "site", "negative", "comment", "limit", "after"]
        if let unknown = query.map({ String($0.key) }).first(where: { !known.contains($0) }) {
            return refuse(unknown, "unknown parameter; known: \(known.sorted().joined(separator: ", "))")
        }
        let period: (from: Date, to: Date, zone: TimeZone)
        switch Self.period(query, now: now) {
        case .success(let value): period = value
        case .failure(let refusal): return .failure(refusal)
        }
        let (from, to) = (Int64((period.from.timeIntervalSince1970 * 1000).rounded()), Int64((period.to.timeIntervalSince1970 * 1000).rounded()))
        var flags: [String: Bool] = [:]
        for name in ["negative", "comment"] {
            guard let text = query.get(name) else { continue }
            guard let value = Bool(text) else { return refuse(name, "\(name) must be true or false") }
            flags[name] = value
        }
        var limit = 100
        if let text = query.get("limit") {
            guard let parsed = Int(text), (1...1_000).contains(parsed) else { return refuse("limit", "limit must be 1...1000") }
            limit = parsed
        }
        var after: RatingQuery.Cursor?
        if let text = query.get("after") {
            let parts = text.split(separator: "_", maxSplits: 1)
            let digits = parts.first.map { $0.hasPrefix("-") ? $0.dropFirst() : $0[...] } ?? ""
            guard parts.count == 2, (1...18).contains(digits.count), digits.allSatisfy({ ("0"..."9").contains($0) }), let time = Int64(parts[0]),
                let id = UUID(uuidString: String(parts[1]))
            else {
                return refuse("after", "after must be the `next` of the previous page")
            }
            after = .init(occurredAt: time, id: id)
        }
        let site = query.get("site")
        if let site, site.unicodeScalars.count > 1_024 { return refuse("site", "site is longer than 1024 characters") }
        return .success(
            RatingQuery(
                from: from, to: to, site: site, negativeOnly: flags["negative"] ?? false, withComment: flags["comment"] ?? false, scope: scope,
                limit: limit, after: after
            )
        )
    }

    /// The request a query asks for, or the 400 naming the parameter at fault.
    static func parse(_ request: Request, scope: SiteScope, now: Int64) -> Result<(RatingReport.Request, csv: Bool), OperationsRefusal> {
        func refuse(_ field: String, _ message: String) -> Result<(RatingReport.Request, csv: Bool), OperationsRefusal> {
            .failure(OperationsRefusal(status: .badRequest, code: "invalidQuery", message: message, field: field))
        }
        let query = request.uri.queryParameters
        let known = Set(["from", "to", "tz", "groupBy", "bucket", "format"] + RollupQuery.Dimension.allCases.map(\.rawValue))
        if let unknown = query.map({ String($0.key) }).first(where: { !known.contains($0) }) {
            return refuse(unknown, "unknown parameter; known: \(known.sorted().joined(separator: ", "))")
        }
        let period: (from: Date, to: Date, zone: TimeZone)
        switch Self.period(query, now: now) {
        case .success(let value): period = value
        case .failure(let refusal): return .failure(refusal)
        }
        let (from, to, zone) = period
        var groupBy: [RollupQuery.Dimension] = []
        if let text = query.get("groupBy"), !text.isEmpty {
            for name in text.split(separator: ",", omittingEmptySubsequences: false) {
                guard let dimension = RollupQuery.Dimension(rawValue: String(name)) else {
                    return refuse("groupBy", "groupBy takes site, subject, channel, topic, source and survey, comma-separated")
                }
                guard !groupBy.contains(dimension) else { return refuse("groupBy", "groupBy names \(dimension.rawValue) twice") }
                groupBy.append(dimension)
            }
        }
        var bucket: RatingReport.Bucket?
        if let text = query.get("bucket") {
            guard let parsed = RatingReport.Bucket(rawValue: text) else { return refuse("bucket", "bucket must be hour, day, week or month") }
            bucket = parsed
        }
        var filters: [RollupQuery.Dimension: String] = [:]
        for dimension in RollupQuery.Dimension.allCases {
            guard let value = query.get(dimension.rawValue) else { continue }
            if dimension == .source, FeedbackRecord.Source(name: value) == nil {
                return refuse("source", "source must be popup, kiosk, call, api or import")
            }
            guard value.unicodeScalars.count <= 1_024 else {
                return refuse(dimension.rawValue, "\(dimension.rawValue) is longer than 1024 characters")
            }
            filters[dimension] = value
        }
        var csv = false
        if let format = query.get("format") {
            guard ["json", "csv"].contains(format) else { return refuse("format", "format must be json or csv") }
            csv = format == "csv"
        } else if let accept = request.headers[.accept], accept.contains("text/csv") {
            csv = true
        }
        return .success(
            (RatingReport.Request(from: from, to: to, timeZone: zone, groupBy: groupBy, bucket: bucket, filters: filters, scope: scope), csv)
        )
    }

    /// `from`, `to` and `tz` of a query: the 7 days before `now` (ms) in UTC by default.
    static func period(_ query: FlatDictionary<Substring, Substring>, now: Int64) -> Result<(from: Date, to: Date, zone: TimeZone), OperationsRefusal> {
        func refuse(_ field: String, _ message: String) -> Result<(from: Date, to: Date, zone: TimeZone), OperationsRefusal> {
            .failure(OperationsRefusal(status: .badRequest, code: "invalidQuery", message: message, field: field))
        }
        var zone = TimeZone(identifier: "UTC") ?? .gmt
        if let name = query.get("tz") {
            guard let named = TimeZone(identifier: name) else { return refuse("tz", "tz must be an IANA time zone such as Europe/Berlin") }
            zone = named
        }
        var to = Date(timeIntervalSince1970: Double(now) / 1000)
        if let text = query.get("to") {
            guard let date = Self.date(text, zone: zone) else { return refuse("to", "to must be YYYY-MM-DD or an ISO 8601 time with its offset") }
            to = date
        }
        var from = to.addingTimeInterval(-7 * 86_400)
        if let text = query.get("from") {
            guard let date = Self.date(text, zone: zone) else {
                return refuse("from", "from must be YYYY-MM-DD or an ISO 8601 time with its offset")
            }
            from = date
        }
        guard from < to else { return refuse("from", "from must be before to") }
        return .success((from, to, zone))
    }

    /// `YYYY-MM-DD` (midnight in `zone`) or an ISO 8601 time with its offset.
    static func date(_ text: String, zone: TimeZone) -> Date? {
        let full = ISO8601DateFormatter()
        full.formatOptions = [.withInternetDateTime]
        if let date = full.date(from: text) { return date }
        full.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = full.date(from: text) { return date }
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
            let year = Int(parts[0]), let month = Int(parts[1]), let day = Int(parts[2]), (1...12).contains(month), (1...31).contains(day)
        else { return nil }
        var calendar = Calendar(identifier: .iso8601)
        calendar.timeZone = zone
        let components = DateComponents(year: year, month: month, day: day)
        guard let date = calendar.date(from: components), calendar.component(.day, from: date) == day else { return nil }
        return date
    }
}

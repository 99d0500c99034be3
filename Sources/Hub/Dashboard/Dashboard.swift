import Crypto
import Foundation
import Hummingbird
import Mustache
import NIOCore
import Wire

/// The operations console: pages the hub renders on its operations port (docs/DASHBOARD.md).
///
/// - `/` overview: ratings per hour, NPS per day with its interval band, every site this
///   period against the last;
/// - `/cases`: cases overdue and stuck first, filtered, and (for managers and admins) assign,
///   start, wait, complete or cancel with a note;
/// - `/fleet`: every node the caller's sites cover, silent ones first;
/// - `/health`: this hub's ingest rate, commit latency, connections, rejects and deliveries;
/// - `/login`: a token exchanged for a session cookie (`POST /v1/session`).
///
/// Pages need what the API needs (``AccessGuard``): a session cookie or a bearer token, and a
/// caller sees its sites only. A page asked for without either is redirected to `/login`.
/// The pages load nothing but `/assets/dashboard.css`, `/assets/dashboard.js` and
/// `/assets/icon.svg`, which their
/// Content-Security-Policy enforces, and refresh their `<main>` every ``refreshSeconds``.
struct Dashboard: Sendable {
    let store: any FeedbackStore
    let sampler: HealthSampler
    let library: MustacheLibrary
    /// Whether the session cookie is `__Host-` named (``BrowserSession/isSecure(portTLS:origins:)``).
    let secureCookie: Bool
    let silentAfterMilliseconds: Int64
    let clock: @Sendable () -> Int64

    /// The pages that need a caller; asked for without one, they redirect to `/login`.
    static let pages: Set<String> = ["/", "/cases", "/fleet", "/health"]
    /// What is served without a caller: the sign-in page and the two assets.
    static let openPaths: Set<String> = ["/login", "/assets/dashboard.css", "/assets/dashboard.js", "/assets/icon.svg"]
    /// Seconds between live refreshes of a page's content.
    static let refreshSeconds = 5
    /// Cases listed on the cases page at most.
    static let maxCases = 200
    /// Sites on the overview and nodes on the fleet page at most (most ratings, silent first).
    static let maxRows = 500

    /// The header every page carries: nothing loads from elsewhere, nothing frames it, no
    /// inline script runs.
    static let contentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

    func register(on router: Router<OperationsContext>) {
        let dashboard = self
        router.get("assets/dashboard.css") { request, _ in Self.asset(Self.stylesheet, type: "text/css; charset=utf-8", request: request) }
        router.get("assets/dashboard.js") { request, _ in Self.asset(Self.script, type: "text/javascript; charset=utf-8", request: request) }
        router.get("assets/icon.svg") { request, _ in Self.asset(Self.icon, type: "image/svg+xml", request: request) }
        router.get("login") { request, _ -> Response in
            let page = PageRequest(request, caller: nil, secureCookie: dashboard.secureCookie, zone: dashboard.store.reportZone, now: dashboard.clock())
            let next = request.uri.queryParameters.get("next").flatMap(Self.localPage) ?? "/"
            return dashboard.render(title: page.t["signIn"] ?? "", body: dashboard.body("login", ["next": next], page), page: page, current: nil)
        }
        for (path, name) in [("/", "overview"), ("cases", "cases"), ("fleet", "fleet"), ("health", "health")] {
            router.get(RouterPath(path)) { request, context -> Response in
                guard let caller = context.caller else { return Self.toLogin(request) }
                let page = PageRequest(request, caller: caller, secureCookie: dashboard.secureCookie, zone: dashboard.store.reportZone, now: dashboard.clock())
                // Read and rendered on the store threads: the values are not Sendable, the page is.
                let body: String
                switch name {
                case "overview": body = try await StoreAccess.run { dashboard.body(name, try dashboard.overview(page), page) }
                case "cases": body = try await StoreAccess.run { dashboard.body(name, try dashboard.cases(page), page) }
                case "fleet": body = try await StoreAccess.run { dashboard.body(name, try dashboard.fleet(page), page) }
                default: body = dashboard.body(name, dashboard.health(page), page)
                }
                return dashboard.render(title: page.t[name] ?? name, body: body, page: page, current: path == "/" ? "/" : "/\(path)")
            }
        }
    }

    /// A page's body: `template` rendered with `values` and the page's words.
    func body(_ template: String, _ values: [String: Any], _ page: PageRequest) -> String {
        var values = values
        values["t"] = page.t
        return self.library.render(values, withTemplate: template) ?? ""
    }

    /// A page's body in the layout, with the headers every page carries.
    func render(title: String, body: String, page: PageRequest, current: String?) -> Response {
        let nav: [[String: Any]] =
            page.caller == nil
            ? []
            : [("/", "overview"), ("/cases", "cases"), ("/fleet", "fleet"), ("/health", "health")].map { href, key in
                ["href": href, "label": page.t[key] ?? key, "current": href == current] as [String: Any]
            }
        var layout: [String: Any] = [
            "lang": page.language.rawValue, "t": page.t, "title": title, "csrf": page.csrf, "refresh": current == nil ? 0 : Self.refreshSeconds,
            "nav": nav, "signedIn": page.caller != nil && !page.csrf.isEmpty,
            "langHref": page.languageSwitch, "otherLang": page.language.other.rawValue, "otherLangName": page.language.other.name, "body": body,
            "updated": page.format(page.now),
        ]
        if let caller = page.caller { layout["who"] = "\(caller.name) · \(caller.role.rawValue)" }
        var response = Response(
            status: .ok,
            headers: [
                .contentType: "text/html; charset=utf-8", .cacheControl: "no-store", .contentSecurityPolicy: Self.contentSecurityPolicy,
                .xContentTypeOptions: "nosniff",
            ],
            body: .init(byteBuffer: ByteBuffer(string: self.library.render(layout, withTemplate: "layout") ?? ""))
        )
        if page.languageChosenByQuery {
            response.headers[.setCookie] = "fm_lang=\(page.language.rawValue); Path=/; SameSite=Strict; Max-Age=31536000\(self.secureCookie ? "; Secure" : "")"
        }
        return response
    }

    /// The 303 to the sign-in page that a page answers a browser without a session.
    static func toLogin(_ request: Request) -> Response {
        var next = Self.pages.contains(request.uri.path) ? request.uri.path : "/"
        if next != "/" || request.uri.path == "/", let query = request.uri.query, !query.isEmpty, query.utf8.count <= 2_048 { next += "?" + query }
        return Response(status: .seeOther, headers: [.location: "/login?next=\(next.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "/")", .cacheControl: "no-store"])
    }

    /// `next` when it is one of the pages, with a query of its own or none: never another
    /// site, never a scheme.
    static func localPage(_ next: String) -> String? {
        let path = next.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        return Self.pages.contains(path) ? next : nil
    }

    /// An asset and its entity tag: a digest of its text, fixed for the life of the binary.
    struct Asset: Sendable {
        let text: String
        let etag: String

        init(_ text: String) {
            self.text = text
            self.etag = "\"" + Array(SHA256.hash(data: Array(text.utf8))).prefix(12).map { String(format: "%02x", $0) }.joined() + "\""
        }
    }

    static let stylesheet = Asset(DashboardAssets.stylesheet)
    static let script = Asset(DashboardAssets.script)
    static let icon = Asset(DashboardAssets.icon)

    /// The asset, revalidated on each use (`no-cache`): a browser that has it sends its tag in
    /// `If-None-Match` and gets 304 without the body, and a new hub version is seen at once.
    static func asset(_ asset: Asset, type: String, request: Request) -> Response {
        let headers: HTTPFields = [.contentType: type, .cacheControl: "no-cache", .xContentTypeOptions: "nosniff", .eTag: asset.etag]
        if let known = request.headers[.ifNoneMatch], known.split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces) == asset.etag || $0.trimmingCharacters(in: .whitespaces) == "*" }) {
            return Response(status: .notModified, headers: headers)
        }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: asset.text)))
    }
}

/// What every page needs of its request: the language, the caller, the CSRF token of its
/// session, the zone times are shown in, and now.
struct PageRequest: Sendable {
    let language: DashboardText.Language
    let languageChosenByQuery: Bool
    let t: [String: String]
    let caller: APIToken?
    /// The session's CSRF token; empty for a caller that came with a bearer token.
    let csrf: String
    let zone: TimeZone
    /// Gregorian in ``zone``: times on the pages (a calendar is cheap to use, a date
    /// formatter to make).
    let calendar: Calendar
    let now: Int64
    let query: [(key: String, value: String)]
    let path: String

    init(_ request: Request, caller: APIToken?, secureCookie: Bool, zone: TimeZone, now: Int64) {
        let query = request.uri.queryParameters.map { (key: String($0.key), value: String($0.value)) }
        let lang = query.first { $0.key == "lang" }?.value
        var cookieLanguage: String?
        if case .one(let value) = BrowserSession.cookie(named: "fm_lang", in: request.headers[values: .cookie]) { cookieLanguage = value }
        self.language = DashboardText.Language.chosen(query: lang, cookie: cookieLanguage, acceptLanguage: request.headers[.acceptLanguage])
        self.languageChosenByQuery = lang.flatMap(DashboardText.Language.init(rawValue:)) != nil
        self.t = self.language.table
        self.caller = caller
        self.csrf = BrowserSession.secret(inCookies: request.headers[values: .cookie], secure: secureCookie).map(BrowserSession.csrfToken(for:)) ?? ""
        self.zone = zone
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        self.calendar = calendar
        self.now = now
        self.query = query.filter { $0.key != "lang" }
        self.path = request.uri.path
    }

    /// The first value of query parameter `name`.
    func parameter(_ name: String) -> String? {
        self.query.first { $0.key == name }?.value
    }

    /// This page in the other language, its other parameters kept.
    var languageSwitch: String {
        var components = URLComponents()
        components.path = self.path
        components.queryItems = self.query.map { URLQueryItem(name: $0.key, value: $0.value) } + [URLQueryItem(name: "lang", value: self.language.other.rawValue)]
        return components.string ?? "?lang=\(self.language.other.rawValue)"
    }

    /// A time (ms since the epoch) as `YYYY-MM-DD HH:MM` in the report zone.
    func format(_ milliseconds: Int64) -> String {
        let parts = self.calendar.dateComponents([.year, .month, .day, .hour, .minute], from: Date(timeIntervalSince1970: Double(milliseconds) / 1000))
        return String(format: "%04d-%02d-%02d %02d:%02d", parts.year ?? 0, parts.month ?? 0, parts.day ?? 0, parts.hour ?? 0, parts.minute ?? 0)
    }

    /// A time and how long ago it was (or how long until it): `2026-12-07 10:40 (5 min ago)`.
    func formatWithAge(_ milliseconds: Int64) -> String {
        "\(self.format(milliseconds)) (\(self.age(milliseconds)))"
    }

    /// `5 min ago`, `in 2 h`; `5 мин назад`, `через 2 ч`.
    func age(_ milliseconds: Int64) -> String {
        let difference = self.now - milliseconds
        let seconds = abs(difference) / 1000
        let russian = self.language == .ru
        let amount: String =
            switch seconds {
            case ..<60: "\(seconds) \(russian ? "с" : "s")"
            case ..<3_600: "\(seconds / 60) \(russian ? "мин" : "min")"
            case ..<172_800: "\(seconds / 3_600) \(russian ? "ч" : "h")"
            default: "\(seconds / 86_400) \(russian ? "дн" : "d")"
            }
        return difference >= 0 ? "\(amount) \(self.t["ago"] ?? "ago")" : "\(self.t["in"] ?? "in") \(amount)"
    }
}

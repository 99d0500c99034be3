import Crypto
import Hummingbird
import Support
import Synchronization
import Wire

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One key the HTTP intake takes in `Authorization: Bearer KEY`, and what it may submit.
///
/// A **write key** is a secret for a backend: the agent keeps only its SHA-256, it may not
/// come from a browser page (a request with `Origin` refuses it: a write key in a page has
/// leaked), and it may submit for ``sites`` and ``surveys``. A **survey key** is public, put
/// in a product page with the popup widget: it submits one survey for one site, only from
/// its ``origins``.
public struct IntakeKey: Sendable, Equatable {
    /// Which kind of key.
    public enum Kind: String, Sendable {
        /// A backend's secret key.
        case write
        /// A page's public key for one survey.
        case survey
    }

    /// The key's name, for logs, metrics and idempotency scopes.
    public var name: String
    /// Write or survey key.
    public var kind: Kind
    /// The sites its ratings may name (a survey key: the one site, filled in when absent).
    public var sites: SiteScope
    /// The surveys its ratings may name; nil: any (write keys). A survey key's one survey is
    /// filled in when absent.
    public var surveys: Set<String>?
    /// The page origins a survey key may be used from.
    public var origins: Set<String>
    /// Ratings per second the key may submit, on average.
    public var ratePerSecond: Double
    /// Ratings the key may submit at once before the rate applies.
    public var burst: Double

    /// Creates a key's permissions.
    public init(
        name: String, kind: Kind, sites: SiteScope = .any, surveys: Set<String>? = nil, origins: Set<String> = [],
        ratePerSecond: Double, burst: Double
    ) {
        self.name = name
        self.kind = kind
        self.sites = sites
        self.surveys = surveys
        self.origins = origins
        self.ratePerSecond = ratePerSecond
        self.burst = burst
    }

    /// The survey a survey key submits, when it has exactly one.
    var onlySurvey: String? { self.kind == .survey ? self.surveys?.first : nil }

    /// The site a survey key submits.
    var onlySite: String? {
        let patterns = self.sites.patterns
        guard self.kind == .survey, patterns.count == 1, !patterns[0].contains("*") else { return nil }
        return patterns[0]
    }

    /// `submissions` as this key may submit them: a survey key's survey and site filled in
    /// where absent; a refusal naming the field when one names a site or survey outside the key.
    func admit(_ submissions: [FeedbackSubmission]) -> Result<[FeedbackSubmission], HTTPIntake.Refusal> {
        var admitted = submissions
        if self.kind == .survey {
            // A page's key is public: one answer per request, and nothing a page has no business setting.
            guard admitted.count == 1 else {
                return .failure(HTTPIntake.Refusal(code: "outsideKey", message: "a survey key submits one rating per request", field: nil))
            }
            for (field, set) in [("id", admitted[0].id != nil), ("attributes", admitted[0].attributes != nil), ("occurredAt", admitted[0].occurredAt != nil)] where set {
                return .failure(HTTPIntake.Refusal(code: "outsideKey", message: "a survey key may not set \"\(field)\"", field: field))
            }
            guard admitted[0].source == "popup" else {
                return .failure(HTTPIntake.Refusal(code: "outsideKey", message: "a survey key submits source \"popup\" only", field: "source"))
            }
            if admitted[0].channel?.isEmpty ?? true { admitted[0].channel = "web" }
        }
        for index in admitted.indices {
            if let survey = self.onlySurvey, admitted[index].survey?.isEmpty ?? true { admitted[index].survey = survey }
            if let site = self.onlySite, admitted[index].site?.isEmpty ?? true { admitted[index].site = site }
            let site = admitted[index].site ?? ""
            guard self.sites.allows(site) else {
                return .failure(
                    HTTPIntake.Refusal(
                        code: "outsideKey", message: "key \(self.name) may not submit for site \(String(reflecting: TerminalText.excerpt(site, limit: 64)))",
                        field: "site"
                    )
                )
            }
            if let surveys = self.surveys {
                let survey = admitted[index].survey ?? ""
                guard surveys.contains(survey) else {
                    return .failure(
                        HTTPIntake.Refusal(
                            code: "outsideKey",
                            message: "key \(self.name) may not submit for survey \(String(reflecting: TerminalText.excerpt(survey, limit: 64)))",
                            field: "survey"
                        )
                    )
                }
            }
        }
        return .success(admitted)
    }
}

/// The intake's keys: who may submit. With no key configured the intake is open (the agent
/// then listens on loopback only: a local backend); with any, every `POST /v1/feedback`
/// needs one.
public struct IntakeAccess: Sendable {
    /// Write keys by the hex SHA-256 of the key.
    private let writeKeys: [String: IntakeKey]
    /// Survey keys by the key itself (public).
    private let surveyKeys: [String: IntakeKey]

    /// No keys: every request admitted without one.
    public static let open = IntakeAccess(writeKeys: [:], surveyKeys: [:])

    /// Creates the access list: write keys by their hex SHA-256, survey keys by key.
    public init(writeKeys: [String: IntakeKey], surveyKeys: [String: IntakeKey]) {
        self.writeKeys = writeKeys
        self.surveyKeys = surveyKeys
    }

    /// Whether requests need a key.
    public var requiresKey: Bool { !self.writeKeys.isEmpty || !self.surveyKeys.isEmpty }

    /// The origins the survey keys may be used from.
    public var surveyOrigins: Set<String> { self.surveyKeys.values.reduce(into: []) { $0.formUnion($1.origins) } }

    /// Why a request's key was refused: the status and error to answer.
    struct Denial: Error {
        var status: HTTPResponse.Status
        var code: String
        var message: String
    }

    /// The key a request comes with (nil: an open intake and no key), or why it is refused.
    func authenticate(authorization: String?, origin: String?) -> Result<IntakeKey?, Denial> {
        guard let authorization else {
            guard !self.requiresKey else {
                return .failure(Denial(status: .unauthorized, code: "unauthenticated", message: "this intake needs a key: Authorization: Bearer KEY"))
            }
            return .success(nil)
        }
        let parts = authorization.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer", !parts[1].isEmpty, parts[1].utf8.count <= 256 else {
            return .failure(Denial(status: .unauthorized, code: "unauthenticated", message: "the Authorization header must be \"Bearer KEY\""))
        }
        let presented = String(parts[1])
        if let key = self.surveyKeys[presented] {
            guard let origin, key.origins.contains(origin) else {
                let from = origin.map { "a page on \(TerminalText.excerpt($0, limit: 64))" } ?? "a request without Origin"
                return .failure(Denial(status: .forbidden, code: "foreignOrigin", message: "survey key \(key.name) is not taken from \(from)"))
            }
            return .success(key)
        }
        let digest = Array(SHA256.hash(data: Array(presented.utf8))).hexString
        if let key = self.writeKeys[digest] {
            guard origin == nil else {
                return .failure(
                    Denial(
                        status: .forbidden, code: "writeKeyInBrowser",
                        message: "write key \(key.name) came from a web page: it is a secret for backends, replace it; pages use a survey key"
                    )
                )
            }
            return .success(key)
        }
        return .failure(Denial(status: .unauthorized, code: "unauthenticated", message: "the key is not one of this intake's keys"))
    }
}

/// Token buckets of ratings per second, by key and by client address: what the intake
/// answers 429 with `Retry-After` from. The address table is bounded: past its size, buckets
/// that have refilled (forgetting them changes nothing) are dropped, at most once a second;
/// when none has, new addresses share one bucket.
public final class IntakeRateLimiter: Sendable {
    /// One bucket's limit: its name, ratings per second and ratings at once.
    public struct Limit: Sendable {
        /// `key:NAME` or `address:ADDRESS`.
        public var name: String
        /// Ratings per second.
        public var rate: Double
        /// Ratings at once.
        public var burst: Double

        /// Creates a limit.
        public init(name: String, rate: Double, burst: Double) {
            self.name = name
            self.rate = rate
            self.burst = burst
        }
    }

    /// Most addresses remembered.
    let maxAddresses: Int
    private let state: Mutex<State>

    struct Bucket {
        var tokens: Double
        var at: ContinuousClock.Instant
        var rate: Double
        var burst: Double

        /// The bucket refilled to `now`.
        func refilled(_ now: ContinuousClock.Instant) -> Bucket {
            let elapsed = now - self.at
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            var bucket = self
            bucket.tokens = min(self.burst, self.tokens + max(0, seconds) * self.rate)
            bucket.at = now
            return bucket
        }
    }

    struct State {
        var buckets: [String: Bucket] = [:]
        var lastSweep: ContinuousClock.Instant?
    }

    /// Creates the limiter.
    public init(maxAddresses: Int = 10_000) {
        self.maxAddresses = maxAddresses
        self.state = Mutex(State())
    }

    /// Buckets remembered.
    public var count: Int { self.state.withLock { $0.buckets.count } }

    /// The seconds to wait when one of `limits` has not even one rating left at `now`; nil
    /// when each has. Takes nothing: the check before a body is read.
    public func wait(_ limits: [Limit], now: ContinuousClock.Instant = .now) -> Int? {
        self.state.withLock { state in
            var wait = 0.0
            for limit in limits where limit.rate > 0 {
                guard let bucket = state.buckets[limit.name]?.refilled(now), bucket.tokens < 1 else { continue }
                wait = max(wait, (1 - bucket.tokens) / limit.rate)
            }
            return wait > 0 ? max(1, Int(wait.rounded(.up))) : nil
        }
    }

    /// Takes `count` ratings from each of `limits` at `now`, or none: the seconds to wait
    /// before a retry may pass. A request larger than a burst passes when that bucket is
    /// full and leaves it in debt, so no size is refused forever.
    public func take(_ count: Int, from limits: [Limit], now: ContinuousClock.Instant = .now) -> Int? {
        self.state.withLock { state in
            var wait = 0.0
            var updated: [(String, Bucket)] = []
            for limit in limits where limit.rate > 0 {
                var name = limit.name
                if state.buckets[name] == nil, state.buckets.count >= self.maxAddresses {
                    Self.sweep(&state, now: now)
                    if state.buckets.count >= self.maxAddresses { name = "overflow:" + limit.name.prefix { $0 != ":" } }
                }
                let bucket = state.buckets[name]?.refilled(now) ?? Bucket(tokens: limit.burst, at: now, rate: limit.rate, burst: limit.burst)
                let needed = min(Double(count), limit.burst)
                if bucket.tokens < needed { wait = max(wait, (needed - bucket.tokens) / limit.rate) }
                updated.append((name, bucket))
            }
            guard wait == 0 else {
                // Refused: nothing taken, and no new bucket remembered for it.
                return max(1, Int(wait.rounded(.up)))
            }
            for (name, bucket) in updated {
                var taken = bucket
                taken.tokens -= Double(count)
                state.buckets[name] = taken
            }
            return nil
        }
    }

    /// Drops address buckets that have refilled, at most once a second (a sweep walks the table).
    private static func sweep(_ state: inout State, now: ContinuousClock.Instant) {
        if let last = state.lastSweep, now - last < .seconds(1) { return }
        state.lastSweep = now
        state.buckets = state.buckets.filter { $0.key.hasPrefix("key:") || $0.value.refilled(now).tokens < $0.value.burst }
    }
}

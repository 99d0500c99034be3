import Foundation
import Support
import Wire

/// The alert rules, targets, routing table and delivery settings, read from a YAML file
/// (see docs/ALERTS.md) and checked at start: every mistake is reported with the file, the
/// rule (or target or route) and the field.
public struct AlertRules: Sendable {
    /// Where an alert is sent.
    public struct Target: Sendable, Hashable {
        /// The payload and signing a target expects.
        public enum Kind: String, Sendable, Hashable, CaseIterable {
            /// JSON, signed with the Standard Webhooks headers when a secret is set.
            case webhook
            /// A Slack-compatible incoming webhook: `{"text": …}`.
            case slack
        }

        /// The name rules and routes use.
        public var name: String
        /// Webhook or Slack.
        public var kind: Kind
        /// The `http` or `https` URL the request goes to.
        public var url: String
        /// The HMAC key (the bytes of a `whsec_…` secret), when requests are signed.
        public var secret: [UInt8]?
    }

    /// Which records a rule looks at. An empty set means any.
    public struct Filter: Sendable, Hashable {
        /// Sites.
        public var sites: Set<String> = []
        /// Channels.
        public var channels: Set<String> = []
        /// Subjects (employee, queue, product area).
        public var subjects: Set<String> = []
        /// Topics.
        public var topics: Set<String> = []
        /// Sources (kiosk, popup, call, api, import).
        public var sources: Set<FeedbackRecord.Source> = []

        /// Whether `record` passes the filter.
        public func matches(_ record: FeedbackRecord) -> Bool {
            (self.sites.isEmpty || self.sites.containsExactly(record.site))
                && (self.channels.isEmpty || self.channels.containsExactly(record.channel))
                && (self.subjects.isEmpty || self.subjects.containsExactly(record.subject))
                && (self.topics.isEmpty || self.topics.containsExactly(record.topic))
                && (self.sources.isEmpty || self.sources.contains(record.source))
        }
    }

    /// A window condition: the share of negative ratings at a site or for a subject.
    public struct Window: Sendable, Hashable {
        /// What the ratings are grouped by.
        public enum Per: String, Sendable, Hashable, CaseIterable {
            /// One window per site.
            case site
            /// One window per subject.
            case subject
        }

        /// Site or subject.
        public var per: Per
        /// Fires when at least this percentage of the window's ratings are negative…
        public var sharePercent: Int
        /// …and the window holds at least this many ratings.
        public var minResponses: Int
        /// The window's length, ms.
        public var periodMilliseconds: Int64
    }

    /// One rule.
    public struct Rule: Sendable, Hashable {
        /// Unique name; alerts carry it.
        public var name: String
        /// The scale the rule reads; nil for a silent rule, which reads no ratings.
        public var scale: FeedbackRecord.Scale?
        /// Scores that count as negative.
        public var scores: ClosedRange<UInt8>
        /// Which records the rule looks at; for a silent rule, `sites` picks the nodes (those
        /// whose enrollment allows one of them).
        public var filter: Filter
        /// Nil for a record rule (every matching negative rating alerts); set for a window rule.
        public var window: Window?
        /// Set for a silent rule: a node seen before and not seen for this many ms alerts, once
        /// per silence.
        public var silentForMilliseconds: Int64?
        /// Target names; `route` means the routing table's choice for the site or subject.
        public var notify: [String]
        /// An open alert not acknowledged within this many ms escalates one level.
        public var acknowledgeWithinMilliseconds: Int64?
        /// Escalation targets, one per level.
        public var escalate: [String]
        /// The case's SLA: it is due this many ms after it was raised (nil: no due time).
        public var closeWithinMilliseconds: Int64? = nil
        /// A reminder goes this many ms before the due time (nil: none).
        public var remindBeforeMilliseconds: Int64? = nil

        /// Whether `record` is one this rule counts (scale and filter; misuse is never counted).
        public func considers(_ record: FeedbackRecord) -> Bool {
            self.scale != nil && record.scale == self.scale && !record.isFlaggedMisuse && self.filter.matches(record)
        }

        /// Whether a silent rule watches `node`: any node without a `sites` filter, else a
        /// node whose enrollment allows one of the rule's sites.
        public func watches(_ node: RegisteredNode) -> Bool {
            self.silentForMilliseconds != nil && (self.filter.sites.isEmpty || self.filter.sites.contains { node.sites.allows($0) })
        }

        /// Whether `record` is negative under this rule.
        public func isNegative(_ record: FeedbackRecord) -> Bool {
            self.scores.contains(record.score)
        }
    }

    /// A routing table entry: ratings for this site and/or subject go to `target`. Neither
    /// set makes it the default.
    public struct Route: Sendable, Hashable {
        /// Site to match, if any.
        public var site: String?
        /// Subject to match, if any.
        public var subject: String?
        /// Target name.
        public var target: String
    }

    /// How the delivery worker retries.
    public struct Delivery: Sendable, Hashable {
        /// Attempts before an alert's delivery is dead-lettered.
        public var maxAttempts = 10
        /// The delay before the first retry, ms; it doubles each time…
        public var firstRetryMilliseconds: Int64 = 1_000
        /// …up to this, ms.
        public var maxRetryMilliseconds: Int64 = 300_000
        /// One request's time limit, ms.
        public var timeoutMilliseconds: Int64 = 10_000
    }

    /// Targets by name.
    public var targets: [String: Target]
    /// The routing table, first match wins.
    public var routes: [Route]
    /// The rules, in file order.
    public var rules: [Rule]
    /// Retry settings.
    public var delivery: Delivery

    /// No rules: nothing alerts.
    public static let none = AlertRules(targets: [:], routes: [], rules: [], delivery: Delivery())

    /// The rule named `name`.
    public func rule(named name: String) -> Rule? {
        self.rules.first { $0.name == name }
    }

    /// The routing table's target for a site and subject: the first route whose site and
    /// subject (those it names) both match.
    public func route(site: String, subject: String) -> String? {
        self.routes.first { route in
            (route.site.map { $0.utf8.elementsEqual(site.utf8) } ?? true)
                && (route.subject.map { $0.utf8.elementsEqual(subject.utf8) } ?? true)
        }?.target
    }

    /// The targets an alert of `rule` goes to (routing resolved), without repeats.
    public func targets(of rule: Rule, site: String, subject: String) -> [String] {
        var names: [String] = []
        for name in rule.notify {
            let resolved = name == "route" ? self.route(site: site, subject: subject) : name
            if let resolved, !names.contains(resolved) { names.append(resolved) }
        }
        return names
    }

    /// Default negative scores per scale: NPS detractors 0–6, CSAT 1–2, CES 1–3, smiley 1–2, binary 0.
    public static func defaultScores(_ scale: FeedbackRecord.Scale) -> ClosedRange<UInt8> {
        switch scale {
        case .nps: 0...6
        case .csat: 1...2
        case .ces: 1...3
        case .smiley: 1...2
        case .binary: 0...0
        }
    }

    // MARK: Reading

    /// Reads and checks a rules file.
    ///
    /// - Throws: ``AlertRulesError`` naming the file, the rule, target or route, and the field.
    public static func load(from path: String) throws -> AlertRules {
        try Self.parse(path: path) { try ConfigDocument.read(path) }
    }

    /// Reads and checks rules from YAML text; `path` names it in errors.
    ///
    /// - Throws: ``AlertRulesError`` naming the rule, target or route, and the field.
    public static func parse(yaml: String, path: String) throws -> AlertRules {
        try Self.parse(path: path) { try ConfigDocument(text: yaml, path: path) }
    }

    private static func parse(path: String, reading: () throws -> ConfigDocument) throws -> AlertRules {
        let document: ConfigDocument
        do {
            document = try reading()
            try document.check(Self.schema)
        } catch let error as ConfigFileError {
            throw AlertRulesError(path: path, place: nil, field: nil, error.located)
        }
        return try Self.parse(document.tree, path: path)
    }

    /// The settings alerts.yaml may hold; anything else is refused.
    static let schema = ConfigSchema.settings([
        "targets": .named(.keys("kind", "url", "secret")),
        "routes": .list(.keys("site", "subject", "target")),
        "rules": .list(
            .settings([
                "name": .value, "scale": .value, "scores": .value, "sites": .value, "channels": .value, "subjects": .value,
                "topics": .value, "sources": .value, "window": .keys("per", "share", "minResponses", "minutes"), "silentFor": .value,
                "notify": .value, "acknowledgeWithin": .value, "escalate": .value, "closeWithin": .value, "remindBefore": .value,
            ])
        ),
        "delivery": .keys("maxAttempts", "firstRetry", "maxRetry", "timeout"),
    ])

    static func parse(_ tree: Any?, path: String) throws -> AlertRules {
        let reader = TreeReader(path: path, place: nil)
        let root = try reader.mapping(tree, field: nil)

        var targets: [String: Target] = [:]
        for (name, value) in try reader.mapping(root["targets"] ?? [String: Any](), field: "targets") {
            let inner = TreeReader(path: path, place: "target \(TerminalText.excerpt(name))")
            guard name != "route" else { throw inner.error(nil, "\"route\" is reserved for the routing table") }
            let fields = try inner.mapping(value, field: nil)
            let kindName = try inner.string(fields["kind"] ?? "webhook", field: "kind")
            guard let kind = Target.Kind(rawValue: kindName) else {
                throw inner.error("kind", "unknown kind \(TerminalText.excerpt(kindName)); one of webhook, slack")
            }
            let url = try inner.string(fields["url"], field: "url")
            guard let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme ?? ""), parsed.host != nil else {
                throw inner.error("url", "\(TerminalText.excerpt(url)) is not an http or https URL")
            }
            var secret: [UInt8]?
            if let text = fields["secret"] {
                let value = try inner.string(text, field: "secret")
                guard value.hasPrefix("whsec_"), let bytes = Data(base64Encoded: String(value.dropFirst(6))), bytes.count >= 16 else {
                    throw inner.error("secret", "must be whsec_ followed by at least 16 bytes in base64")
                }
                secret = Array(bytes)
            }
            targets[name] = Target(name: name, kind: kind, url: url, secret: secret)
        }

        var routes: [Route] = []
        for (index, value) in try reader.list(root["routes"] ?? [Any](), field: "routes").enumerated() {
            let inner = TreeReader(path: path, place: "route \(index + 1)")
            let fields = try inner.mapping(value, field: nil)
            let target = try inner.string(fields["target"], field: "target")
            guard targets[target] != nil else { throw inner.error("target", "no target is named \(TerminalText.excerpt(target))") }
            routes.append(
                Route(
                    site: try fields["site"].map { try inner.string($0, field: "site") },
                    subject: try fields["subject"].map { try inner.string($0, field: "subject") },
                    target: target
                )
            )
        }

        var rules: [Rule] = []
        for (index, value) in try reader.list(root["rules"] ?? [Any](), field: "rules").enumerated() {
            var inner = TreeReader(path: path, place: "rule \(index + 1)")
            let fields = try inner.mapping(value, field: nil)
            let name = try inner.string(fields["name"], field: "name")
            inner.place = "rule \(TerminalText.excerpt(name))"
            guard !rules.contains(where: { $0.name == name }) else { throw inner.error("name", "is used by an earlier rule") }
            var filter = Filter()
            filter.sites = Set(try inner.strings(fields["sites"], field: "sites"))
            var scale: FeedbackRecord.Scale?
            var scores: ClosedRange<UInt8> = 0...0
            var silentFor: Int64?
            if let value = fields["silentFor"] {
                // A silent rule watches nodes, not ratings: a rating setting would be ignored.
                for field in ["scale", "scores", "window", "channels", "subjects", "topics", "sources"] where fields[field] != nil {
                    throw inner.error(field, "a silent rule (silentFor) watches nodes, not ratings; remove \(field) or make it a rule of its own")
                }
                silentFor = try inner.duration(value, field: "silentFor", from: "1m", to: "30d")
            } else {
                let scaleName = try inner.string(fields["scale"], field: "scale")
                guard let parsed = FeedbackRecord.Scale(name: scaleName) else {
                    throw inner.error("scale", "unknown scale \(TerminalText.excerpt(scaleName)); one of nps, csat, ces, smiley, binary")
                }
                scale = parsed
                scores = Self.defaultScores(parsed)
                if let text = fields["scores"] {
                    scores = try inner.scores(text, scale: parsed)
                }
            }
            filter.channels = Set(try inner.strings(fields["channels"], field: "channels"))
            filter.subjects = Set(try inner.strings(fields["subjects"], field: "subjects"))
            filter.topics = Set(try inner.strings(fields["topics"], field: "topics"))
            for source in try inner.strings(fields["sources"], field: "sources") {
                guard let found = FeedbackRecord.Source.allCases.first(where: { "\($0)" == source }) else {
                    throw inner.error("sources", "unknown source \(TerminalText.excerpt(source)); one of popup, kiosk, call, api, import")
                }
                filter.sources.insert(found)
            }
            var window: Window?
            if let value = fields["window"] {
                let spec = try inner.mapping(value, field: "window")
                let perName = try inner.string(spec["per"] ?? "site", field: "window.per")
                guard let per = Window.Per(rawValue: perName) else {
                    throw inner.error("window.per", "must be site or subject, got \(TerminalText.excerpt(perName))")
                }
                let share = try inner.integer(spec["share"], field: "window.share", in: 1...100)
                let minResponses = try inner.integer(spec["minResponses"], field: "window.minResponses", in: 1...1_000_000)
                let minutes = try inner.integer(spec["minutes"], field: "window.minutes", in: 1...10_080)
                window = Window(per: per, sharePercent: share, minResponses: minResponses, periodMilliseconds: Int64(minutes) * 60_000)
            }
            let notify = fields["notify"] == nil ? ["route"] : try inner.strings(fields["notify"], field: "notify")
            guard !notify.isEmpty else { throw inner.error("notify", "names no target") }
            for target in notify where target != "route" && targets[target] == nil {
                throw inner.error("notify", "no target is named \(TerminalText.excerpt(target))")
            }
            let escalate = try inner.strings(fields["escalate"], field: "escalate")
            for target in escalate where targets[target] == nil {
                throw inner.error("escalate", "no target is named \(TerminalText.excerpt(target))")
            }
            var deadline: Int64?
            if let value = fields["acknowledgeWithin"] {
                deadline = try inner.duration(value, field: "acknowledgeWithin", from: "1s", to: "30d")
            }
            if !escalate.isEmpty, deadline == nil {
                throw inner.error("acknowledgeWithin", "is required when the rule escalates")
            }
            var closeWithin: Int64?
            if let value = fields["closeWithin"] {
                closeWithin = try inner.duration(value, field: "closeWithin", from: "1m", to: "90d")
            }
            var remindBefore: Int64?
            if let value = fields["remindBefore"] {
                guard let closeWithin else { throw inner.error("remindBefore", "needs closeWithin: a reminder comes before the due time") }
                let before = try inner.duration(value, field: "remindBefore", from: "1m", to: "30d")
                guard before < closeWithin else { throw inner.error("remindBefore", "must be shorter than closeWithin") }
                remindBefore = before
            }
            rules.append(
                Rule(
                    name: name, scale: scale, scores: scores, filter: filter, window: window, silentForMilliseconds: silentFor,
                    notify: notify, acknowledgeWithinMilliseconds: deadline, escalate: escalate, closeWithinMilliseconds: closeWithin,
                    remindBeforeMilliseconds: remindBefore
                )
            )
        }

        var delivery = Delivery()
        if let value = root["delivery"] {
            let inner = TreeReader(path: path, place: "delivery")
            let fields = try inner.mapping(value, field: nil)
            if let value = fields["maxAttempts"] { delivery.maxAttempts = try inner.integer(value, field: "maxAttempts", in: 1...1_000) }
            if let value = fields["firstRetry"] {
                delivery.firstRetryMilliseconds = try inner.duration(value, field: "firstRetry", from: "10ms", to: "1h")
            }
            if let value = fields["maxRetry"] { delivery.maxRetryMilliseconds = try inner.duration(value, field: "maxRetry", from: "10ms", to: "1d") }
            if let value = fields["timeout"] { delivery.timeoutMilliseconds = try inner.duration(value, field: "timeout", from: "100ms", to: "10m") }
        }
        return AlertRules(targets: targets, routes: routes, rules: rules, delivery: delivery)
    }
}

/// A mistake in the alert rules file: the file, where in it, the field, and what is wrong.
public struct AlertRulesError: Error, Sendable, CustomStringConvertible {
    /// The file.
    public var path: String
    /// The rule, target or route (`rule "detractors"`), if the mistake is inside one.
    public var place: String?
    /// The field, if one is to blame.
    public var field: String?
    /// What is wrong.
    public var reason: String

    init(path: String, place: String?, field: String?, _ reason: String) {
        self.path = path
        self.place = place
        self.field = field
        self.reason = reason
    }

    /// `alert rules FILE: rule "NAME": field "FIELD": REASON`.
    public var description: String {
        var text = "alert rules \(self.path):"
        if let place { text += " \(place):" }
        if let field { text += " field \"\(field)\":" }
        return text + " " + self.reason
    }
}

/// Reads values out of a YAML tree, with errors that say where.
private struct TreeReader {
    let path: String
    var place: String?

    func error(_ field: String?, _ reason: String) -> AlertRulesError {
        AlertRulesError(path: self.path, place: self.place, field: field, reason)
    }

    /// Which keys a mapping may hold was checked against ``AlertRules/schema`` before.
    func mapping(_ value: Any?, field: String?) throws -> [String: Any] {
        guard let mapping = value as? [String: Any] else { throw self.error(field, "must be a mapping") }
        return mapping
    }

    func list(_ value: Any?, field: String) throws -> [Any] {
        guard let list = value as? [Any] else { throw self.error(field, "must be a list") }
        return list
    }

    func string(_ value: Any?, field: String) throws -> String {
        guard let value else { throw self.error(field, "is missing") }
        guard let text = value as? String ?? (value as? Int).map(String.init), !text.isEmpty else {
            throw self.error(field, "must be a non-empty text")
        }
        return text
    }

    func strings(_ value: Any?, field: String) throws -> [String] {
        guard let value else { return [] }
        if let single = value as? String { return [single] }
        return try self.list(value, field: field).map { try self.string($0, field: field) }
    }

    func integer(_ value: Any?, field: String, in range: ClosedRange<Int>) throws -> Int {
        guard let value else { throw self.error(field, "is missing") }
        guard let number = value as? Int else {
            throw self.error(field, "must be a whole number from \(range.lowerBound) to \(range.upperBound), got \(TerminalText.excerpt("\(value)"))")
        }
        do {
            try RangeError.check(number, range, field)
        } catch {
            throw self.error(field, "must be \(error.allowed), got \(error.value)")
        }
        return number
    }

    /// `90s`, `15m`, `2h`, `1d` or `250ms`, from `low` to `high` (both written the same way).
    func duration(_ value: Any, field: String, from low: String, to high: String) throws -> Int64 {
        let text = "\(value)"
        guard let (number, unit) = Self.parse(text) else {
            throw self.error(field, "must be a duration such as 90s, 15m or 2h, got \(TerminalText.excerpt(text))")
        }
        // Compared before multiplying, so no number can overflow.
        guard let (lowNumber, lowUnit) = Self.parse(low), let (highNumber, highUnit) = Self.parse(high),
            number <= highNumber * highUnit / unit, (lowNumber * lowUnit...highNumber * highUnit).contains(number * unit)
        else {
            throw self.error(field, "must be a duration from \(low) to \(high), got \(TerminalText.excerpt(text))")
        }
        return number * unit
    }

    /// `90s` → (90, 1000): the number and the milliseconds of its unit; nil unless a whole
    /// number with one of ms, s, m, h, d.
    private static func parse(_ text: String) -> (number: Int64, unit: Int64)? {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            if let number = Int64(text.dropLast(suffix.count)), number >= 0 { return (number, factor) }
        }
        return nil
    }

    /// `0-6`, `1..2` or a single score, inside the scale's range.
    func scores(_ value: Any, scale: FeedbackRecord.Scale) throws -> ClosedRange<UInt8> {
        let text = "\(value)".replacingOccurrences(of: "..", with: "-")
        let parts = text.split(separator: "-", omittingEmptySubsequences: false).map { UInt8($0.trimmingCharacters(in: .whitespaces)) }
        let low: UInt8?
        let high: UInt8?
        switch parts.count {
        case 1: (low, high) = (parts[0], parts[0])
        case 2: (low, high) = (parts[0], parts[1])
        default: (low, high) = (nil, nil)
        }
        guard let low, let high, low <= high, scale.range.contains(low), scale.range.contains(high) else {
            throw self.error(
                "scores", "must be a range such as 0-6 inside the \(scale.name) scale \(scale.range.lowerBound)-\(scale.range.upperBound), got \(TerminalText.excerpt("\(value)"))"
            )
        }
        return low...high
    }
}

extension AlertRules {
    /// A commented example rules file, as `feedback-hub init` writes it.
    public static let example = """
        # FeedbackMesh alert rules (docs/ALERTS.md). Name this file in hub.yaml as `alerts: alerts.yaml`.
        # Check it with: feedback-hub alerts check alerts.yaml
        targets:
          branch-042-manager:
            url: "https://example.invalid/hooks/branch-042"
            # Standard Webhooks signing key: whsec_ and base64 of at least 16 random bytes.
            secret: "whsec_bWFrZS15b3VyLW93bi1zZWNyZXQtcGxlYXNl"
          regional-manager:
            url: "https://example.invalid/hooks/regional"
          ops-slack:
            kind: slack
            url: "https://hooks.slack.com/services/T000/B000/XXXX"
        routes:                      # first match wins; a route without site or subject is the default
          - {site: branch-042, target: branch-042-manager}
          - {target: ops-slack}
        rules:
          - name: detractor          # every NPS 0-6 goes to the site's manager
            scale: nps
            notify: [route]
            acknowledgeWithin: 15m   # still open then: escalates, one level per deadline
            escalate: [regional-manager]
            closeWithin: 2d          # the case is due two days after it was raised…
            remindBefore: 4h         # …with a reminder four hours before; overdue escalates a level
          - name: kiosk-red-wave     # kiosks: 40% red of at least 20 presses within 15 minutes
            scale: smiley
            sources: [kiosk]
            window: {per: site, share: 40, minResponses: 20, minutes: 15}
            notify: [route]
          - name: kiosk-silent       # a node seen before that sends nothing (no status, no batch) for 30 minutes
            silentFor: 30m
            sites: [branch-042]      # optional: nodes enrolled for one of these sites
            notify: [ops-slack]
        delivery: {maxAttempts: 10, firstRetry: 1s, maxRetry: 5m, timeout: 10s}

        """
}

extension Set<String> {
    /// Membership by UTF-8 bytes, as site scopes and the store compare: Swift's `==` takes
    /// canonically equivalent spellings as equal ("A\u{30A}land" and "Åland"), which would
    /// route a record to another site's manager than the one its bytes name.
    func containsExactly(_ value: String) -> Bool {
        self.contains(value) && self.contains { $0.utf8.elementsEqual(value.utf8) }
    }
}

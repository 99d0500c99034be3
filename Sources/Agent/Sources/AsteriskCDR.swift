#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Splits one CSV line as Asterisk's cdr_csv writes it: fields separated by commas, quoted
/// with `"` (a quote inside doubled as `""`), or empty and unquoted.
///
/// - Throws: ``SourceError`` for an unterminated quote or text after a closing quote.
public func splitCSVLine(_ line: Substring) throws -> [String] {
    var fields: [String] = []
    var field = ""
    var index = line.startIndex
    var quoted = false
    var afterQuote = false
    while index < line.endIndex {
        let character = line[index]
        if quoted {
            if character == "\"" {
                let next = line.index(after: index)
                if next < line.endIndex, line[next] == "\"" {
                    field.append("\"")
                    index = next
                } else {
                    quoted = false
                    afterQuote = true
                }
            } else {
                field.append(character)
            }
        } else if character == "," {
            fields.append(field)
            field = ""
            afterQuote = false
        } else if character == "\"", field.isEmpty, !afterQuote {
            quoted = true
        } else if afterQuote {
            throw SourceError("text after a closing quote in field \(fields.count + 1)")
        } else {
            field.append(character)
        }
        index = line.index(after: index)
    }
    guard !quoted else { throw SourceError("unterminated quote in field \(fields.count + 1)") }
    fields.append(field)
    return fields
}

/// Turns Asterisk CDR CSV lines (`Master.csv`) into ratings: the survey score from the
/// userfield (or another column) through a pattern, the subject (agent or queue) and site
/// from configured columns, the time from the `start` column in a configured time zone.
public struct AsteriskCDRParser: Sendable {
    /// Columns in Asterisk's order: the sixteen always written…
    public static let baseColumns = [
        "accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp", "lastdata", "start", "answer",
        "end", "duration", "billsec", "disposition", "amaflags",
    ]
    /// …then these two when `loguniqueid` and `loguserfield` are on…
    public static let uniqueIDColumns = ["uniqueid", "userfield"]
    /// …then these three with the newer columns (`newcdrcolumns`).
    public static let newColumns = ["peeraccount", "linkedid", "sequence"]

    /// A column and an optional pattern whose first capture group is the value.
    public struct Extract: Sendable {
        /// Column name.
        public var column: String
        /// Pattern with one capture group; nil takes the whole field.
        public var pattern: String?

        /// Creates an extraction.
        public init(column: String, pattern: String? = nil) {
            self.column = column
            self.pattern = pattern
        }
    }

    /// The column names, in file order.
    public var columns: [String]
    /// Where the score is.
    public var score: Extract
    /// The scale of that score.
    public var scale: String
    /// Where the subject (agent, queue) is; nil: none.
    public var subject: Extract?
    /// The site: a fixed name…
    public var site: String
    /// …or a column (with pattern) that overrides it when it matches.
    public var siteColumn: Extract?
    /// The zone the `start` column is written in.
    public var timeZone: TimeZone
    /// The survey id the ratings get.
    public var survey: String

    /// Creates a parser.
    public init(
        columns: [String], score: Extract, scale: String, subject: Extract?, site: String, siteColumn: Extract? = nil,
        timeZone: TimeZone, survey: String = "post-call"
    ) {
        self.columns = columns
        self.score = score
        self.scale = scale
        self.subject = subject
        self.site = site
        self.siteColumn = siteColumn
        self.timeZone = timeZone
        self.survey = survey
    }

    /// What one line held.
    public enum Outcome: Sendable {
        /// A rating.
        case rating(FeedbackSubmission)
        /// A call without a survey score: nothing to record, not an error.
        case noRating
    }

    /// Parses one line; the score comes from ``score``.
    ///
    /// - Throws: ``SourceError`` saying what is wrong with the line.
    public func parse(_ line: Substring) throws -> Outcome {
        let fields = try self.fields(line)
        guard let text = try self.value(self.score, in: fields) else { return .noRating }
        guard let score = Int(text) else { throw SourceError("score \"\(text)\" in \(self.score.column) is not a whole number") }
        return .rating(try self.rating(score: score, fields: fields))
    }

    /// A CDR line kept for joining with a survey log: its `linkedid` and fields.
    struct Call: Sendable {
        var linkedID: String?
        var fields: [String]
    }

    /// What a CDR line says about its call, for joining scores from a separate survey log.
    ///
    /// - Throws: ``SourceError`` saying what is wrong with the line.
    func call(_ line: Substring) throws -> Call {
        let fields = try self.fields(line)
        _ = try self.rating(score: 0, fields: fields)  // a bad time is reported now, not at the join
        let linkedID = self.columns.firstIndex(of: "linkedid").map { fields[$0] }.flatMap { $0.isEmpty ? nil : $0 }
        return Call(linkedID: linkedID, fields: fields)
    }

    /// The rating for `call` with a score from elsewhere.
    func rating(score: Int, of call: Call) throws -> FeedbackSubmission {
        try self.rating(score: score, fields: call.fields)
    }

    private func fields(_ line: Substring) throws -> [String] {
        let fields = try splitCSVLine(line)
        guard fields.count == self.columns.count else {
            throw SourceError("\(fields.count) fields; the configured columns are \(self.columns.count)")
        }
        return fields
    }

    private func value(_ extract: Extract, in fields: [String]) throws -> String? {
        guard let index = self.columns.firstIndex(of: extract.column) else { return nil }
        let field = fields[index]
        guard let pattern = extract.pattern else { return field.isEmpty ? nil : field }
        let regex = try Regex(pattern)
        guard let match = try regex.firstMatch(in: field), match.output.count > 1, let captured = match.output[1].substring else {
            return nil
        }
        return String(captured)
    }

    private func rating(score: Int, fields: [String]) throws -> FeedbackSubmission {
        guard let startIndex = self.columns.firstIndex(of: "start") else { throw SourceError("no start column is configured") }
        guard let occurredAt = Self.time(fields[startIndex], in: self.timeZone) else {
            throw SourceError("start \"\(fields[startIndex])\" is not a time like 2024-12-01 10:15:00")
        }
        var attributes: [String: String] = [:]
        for key in ["uniqueid", "linkedid"] {
            if let index = self.columns.firstIndex(of: key), !fields[index].isEmpty { attributes[key] = String(fields[index].prefix(255)) }
        }
        return FeedbackSubmission(
            source: "call", scale: self.scale, score: score, occurredAt: occurredAt,
            site: try self.siteColumn.flatMap { try self.value($0, in: fields) } ?? self.site, channel: "phone",
            subject: try self.subject.flatMap { try self.value($0, in: fields) }, survey: self.survey,
            customer: self.columns.firstIndex(of: "src").map { fields[$0] }, attributes: attributes
        )
    }

    /// `YYYY-MM-DD HH:MM:SS` in `zone`, as ms since the epoch.
    static func time(_ text: String, in zone: TimeZone) -> Int64? {
        let parts = text.split(whereSeparator: { $0 == "-" || $0 == " " || $0 == ":" }).compactMap { Int($0) }
        guard parts.count == 6 else { return nil }
        var components = DateComponents()
        components.timeZone = zone
        (components.year, components.month, components.day) = (parts[0], parts[1], parts[2])
        (components.hour, components.minute, components.second) = (parts[3], parts[4], parts[5])
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        guard components.isValidDate(in: calendar), let date = calendar.date(from: components) else { return nil }
        return Int64(date.timeIntervalSince1970 * 1000)
    }
}

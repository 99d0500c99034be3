import Agent
import ArgumentParser
import Logging
import ServiceLifecycle
import Support
import Wire

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

struct Import: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Imports ratings from a CSV or JSON-lines file into the agent's spool and forwards them.",
        discussion: """
            JSON lines: one rating per line, as the HTTP intake takes them, e.g.
              {"source":"import","scale":"nps","score":9,"site":"web-eu","occurredAt":1764000000000}
            CSV: a header row naming the fields (source, scale, score, occurredAt, site, channel,
            subject, topic, survey, customer, comment; attr.NAME for attributes), one rating per row.
            Run it while the agent is stopped (it uses the agent's spool). The position is kept
            in the spool with the ratings: an interrupted import continues where it stopped,
            and importing the same file again adds nothing.
            """
    )

    @Argument(help: "The file to import.")
    var file: String

    @Option(name: .shortAndLong, help: "The agent configuration file (docs/AGENT.md).")
    var config = "agent.yaml"

    @Option(help: "csv or jsonl; by default from the file name (.csv is CSV, anything else JSON lines).")
    var format: String?

    @Option(help: "Seconds to wait for the hub to acknowledge what was imported, 0–86400; 0 leaves it in the spool.")
    var wait = 60

    func validate() throws {
        try RangeError.check(self.wait, 0...86_400, "--wait")
    }

    func run() async throws {
        let path = URL(fileURLWithPath: self.file).standardizedFileURL.path
        guard FileManager.default.fileExists(atPath: path) else { throw CLIError("cannot read \(self.file): no such file") }
        let csv: Bool
        switch self.format ?? (path.lowercased().hasSuffix(".csv") ? "csv" : "jsonl") {
        case "csv": csv = true
        case "jsonl": csv = false
        case let other: throw CLIError("--format must be csv or jsonl, got \(other)")
        }
        var configuration: FeedbackAgent.Configuration
        do {
            configuration = try AgentConfigurationFile.load(from: self.config).agentConfiguration(path: self.config)
        } catch let error as AgentConfigurationError {
            throw CLIError(error.description)
        }
        configuration.sources = []
        LoggingSystem.bootstrap { TerminalSafeLogHandler.standardError(label: $0, level: .warning) }
        let logger = Logger(label: "feedback-agent")
        let agent: FeedbackAgent
        do {
            agent = try FeedbackAgent(configuration: configuration, logger: logger)
        } catch let error as SpoolError {
            throw CLIError(error.code == .locked ? "\(error.message); stop it, or post the ratings to its HTTP intake" : error.description)
        }
        let group = ServiceGroup(configuration: .init(services: [agent], logger: logger))
        let running = Task { try await group.run() }

        let name = "import:" + path
        let header = csv ? try Self.header(of: path) : []
        let tailer = FileTailer(path: path, name: name, cursor: agent.spool.cursor(of: name))
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        let progress = Progress(total: size)
        var imported = 0
        var bad = 0
        var failure: (any Error)?
        var probe = UUIDv7()
        var readUpTo: UInt64?
        while true {
            guard let chunk = try tailer.poll() else { break }
            // Done when nothing new came and nothing more was read (a long line being dropped
            // returns nothing for a few polls, but reads on).
            if chunk.lines.isEmpty, chunk.overlong.isEmpty, chunk.cursor == agent.spool.cursor(of: name), tailer.readOffset == readUpTo { break }
            readUpTo = tailer.readOffset
            var submissions: [FeedbackSubmission] = []
            for (number, length) in chunk.overlong {
                bad += 1
                progress.clear()
                Progress.standardError("\(TerminalText.escape(path)):\(number): skipped: the line is \(length) bytes, longer than \(tailer.maxLineBytes)\n")
            }
            for (text, number) in chunk.lines {
                if csv, number == 1 { continue }
                if text.allSatisfy(\.isWhitespace) { continue }
                do {
                    let submission = csv ? try Self.csvSubmission(text, header: header) : try StrictJSONNumbers.submission(from: Array(text.utf8))
                    // Checked here, so one bad line is skipped rather than failing its chunk.
                    _ = try submission.record(id: probe.next(milliseconds: 1), origin: UUID(), capturedAt: 1)
                    submissions.append(submission)
                } catch {
                    bad += 1
                    progress.clear()
                    // The reason quotes the file's text: shown escaped.
                    Progress.standardError(TerminalText.escape("\(path):\(number): skipped: \(Self.describe(error))") + "\n")
                }
            }
            do {
                try await agent.capture(submissions, cursor: chunk.cursor)
            } catch {
                failure = error
                break
            }
            imported += submissions.count
            progress.show(done: Int(chunk.cursor.offset), ratings: imported)
        }
        progress.clear()
        if let failure {
            await group.triggerGracefulShutdown()
            _ = try? await running.value
            throw CLIError("import stopped after \(imported) ratings: \(failure); run it again to continue")
        }
        print("imported \(imported) ratings from \(path)" + (bad > 0 ? " (\(bad) bad lines skipped)" : ""))
        if imported == 0, let cursor = agent.spool.cursor(of: name) {
            print("nothing new: the file was imported up to line \(cursor.line) before")
        }
        let delivered = self.wait > 0 ? await agent.flush(timeout: .seconds(self.wait)) : false
        let left = agent.spool.stats
        print(
            delivered
                ? "all acknowledged by the hub"
                : "\(left.unsealedRecords + left.unacknowledgedRecords) ratings wait in the spool; they go when the agent runs"
        )
        await group.triggerGracefulShutdown()
        _ = try? await running.value
    }

    static func header(of path: String) throws -> [String] {
        let data: [UInt8]
        do {
            data = try BoundedFile.prefix(of: path, bytes: 64 * 1024)
        } catch {
            throw CLIError("cannot read \(path): \(error.cause)")
        }
        // A spreadsheet's byte-order mark is not part of the first column's name.
        let text = data.starts(with: FileTailer.byteOrderMark) ? data.dropFirst(FileTailer.byteOrderMark.count) : data[...]
        let line = String(decoding: text.prefix { $0 != UInt8(ascii: "\n") }, as: UTF8.self).trimmingWhitespace()
        let fields: [String]
        do {
            fields = try splitCSVLine(Substring(line))
        } catch {
            throw CLIError("\(path):1: the header row is not CSV: \(error)")
        }
        let known: Set<String> = ["source", "scale", "score", "occurredAt", "site", "channel", "subject", "topic", "survey", "customer", "comment"]
        for field in fields where !known.contains(field) && !field.hasPrefix("attr.") {
            throw CLIError("\(path):1: unknown column \"\(field)\"; use \(known.sorted().joined(separator: ", ")) or attr.NAME")
        }
        for required in ["source", "scale", "score"] where !fields.contains(required) {
            throw CLIError("\(path):1: the header row needs a \(required) column")
        }
        return fields
    }

    static func csvSubmission(_ line: Substring, header: [String]) throws -> FeedbackSubmission {
        let fields = try splitCSVLine(line)
        guard fields.count == header.count else { throw SourceError("\(fields.count) fields; the header has \(header.count)") }
        var values: [String: String] = [:]
        var attributes: [String: String] = [:]
        for (name, value) in zip(header, fields) where !value.isEmpty {
            if name.hasPrefix("attr.") { attributes[String(name.dropFirst(5))] = value } else { values[name] = value }
        }
        guard let score = values["score"].flatMap(Int.init) else { throw SourceError("score \"\(values["score"] ?? "")\" is not a whole number") }
        var occurredAt: Int64?
        if let text = values["occurredAt"] {
            guard let value = Int64(text) else { throw SourceError("occurredAt \"\(text)\" is not milliseconds since the epoch") }
            occurredAt = value
        }
        return FeedbackSubmission(
            source: values["source"] ?? "", scale: values["scale"] ?? "", score: score, occurredAt: occurredAt, site: values["site"],
            channel: values["channel"], subject: values["subject"], topic: values["topic"], survey: values["survey"],
            customer: values["customer"], comment: values["comment"], attributes: attributes.isEmpty ? nil : attributes
        )
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case let error as WireError: error.detail
        case DecodingError.keyNotFound(let key, _): "\"\(key.stringValue)\" is required"
        case is DecodingError: "not a JSON rating"
        default: "\(error)"
        }
    }
}

/// A one-line progress bar on a terminal; silent when standard error is not one.
final class Progress {
    private let total: Int
    private let terminal = isatty(STDERR_FILENO) == 1
    private var last = ContinuousClock.now - .seconds(1)
    private var shown = false

    init(total: Int) {
        self.total = max(total, 1)
    }

    func show(done: Int, ratings: Int) {
        guard self.terminal, ContinuousClock.now - self.last >= .milliseconds(100) else { return }
        self.last = ContinuousClock.now
        let fraction = min(Double(done) / Double(self.total), 1)
        let width = 30
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        Self.standardError("\r[\(bar)] \(Int(fraction * 100))%  \(ratings) ratings")
        self.shown = true
    }

    func clear() {
        guard self.shown else { return }
        Self.standardError("\r\u{1B}[K")
        self.shown = false
    }

    static func standardError(_ text: String) {
        _ = Array(text.utf8).withUnsafeBytes { FileDescriptorIO.writeAll(STDERR_FILENO, $0) }
    }
}

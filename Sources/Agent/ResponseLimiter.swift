import Crypto
import Support
import Synchronization
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

/// One response per customer per survey within a window: the HTTP intake's optional
/// guard against the same customer answering a popup twice.
///
/// Remembers `SHA-256(customer, survey)` and the time of the accepted response in a file
/// beside the spool (`responses.log`, one line each), so the limit holds across restarts.
/// The file is rewritten without expired lines when the limiter opens, and again whenever it
/// has grown to twice what it held when last written whole (an agent that runs for months
/// keeps a file and a memory of about its window's size). Ratings without a customer or without a survey are never limited.
public final class ResponseLimiter: Sendable {
    /// How long a customer's response to a survey blocks the next.
    public let window: Duration
    private let path: String
    private let seen: Mutex<[String: Int64]>
    /// The file opened for appending, the lines in it, and how many it held when last
    /// written whole; closed with the limiter.
    private let file: Mutex<(fd: Int32, lines: Int, written: Int)>

    /// Opens (creating if needed) the memory in `path`, dropping entries older than `window`.
    ///
    /// - Throws: ``SpoolError`` `io` when the file cannot be written.
    public init(path: String, window: Duration) throws {
        self.path = path
        self.window = window
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let horizon = now - Self.milliseconds(window)
        var seen: [String: Int64] = [:]
        if let data = FileManager.default.contents(atPath: path) {
            for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
                let parts = line.split(separator: " ")
                // A torn or foreign line is skipped: the limit is a courtesy, not a guarantee.
                guard parts.count == 2, parts[0].count == 64, let at = Int64(parts[1]), at >= horizon else { continue }
                seen[String(parts[0])] = max(seen[String(parts[0])] ?? 0, at)
            }
        }
        let fd = try Self.rewrite(seen, to: path)
        self.seen = Mutex(seen)
        self.file = Mutex((fd, seen.count, seen.count))
    }

    deinit {
        self.file.withLock { _ = close($0.fd) }
    }

    /// Writes `seen` to a fresh file at `path`; returns it opened for appending.
    private static func rewrite(_ seen: [String: Int64], to path: String) throws -> Int32 {
        try AppendLog.rewrite(seen.map { "\($0.key) \($0.value)\n" }.joined(), to: path)
    }

    /// Reserves a response for every (customer, survey) in `pairs` at `now`, or none: the
    /// index of the first pair already answered within the window (or twice in `pairs`).
    public func reserve(_ pairs: [(customer: String, survey: String)], now: Int64) -> Int? {
        let keys = pairs.map { $0.customer.isEmpty || $0.survey.isEmpty ? nil : Self.key($0.customer, $0.survey) }
        let horizon = now - Self.milliseconds(self.window)
        return self.seen.withLock { seen in
            var reserved: Set<String> = []
            for (index, key) in keys.enumerated() {
                guard let key else { continue }
                if let at = seen[key], at >= horizon { return index }
                if !reserved.insert(key).inserted { return index }
            }
            for key in reserved { seen[key] = now }
            return nil
        }
    }

    /// Gives back what ``reserve(_:now:)`` took when the ratings were not kept after all.
    public func release(_ pairs: [(customer: String, survey: String)]) {
        self.seen.withLock { seen in
            for pair in pairs where !pair.customer.isEmpty && !pair.survey.isEmpty {
                seen[Self.key(pair.customer, pair.survey)] = nil
            }
        }
    }

    /// Writes reserved responses to the file once the ratings are durable.
    ///
    /// - Throws: ``SpoolError`` `io` when the file cannot be written; the responses stay
    ///   reserved in memory.
    public func commit(_ pairs: [(customer: String, survey: String)], now: Int64) throws {
        let lines = pairs.filter { !$0.customer.isEmpty && !$0.survey.isEmpty }.map { "\(Self.key($0.customer, $0.survey)) \(now)\n" }
        guard !lines.isEmpty else { return }
        try self.file.withLock { file in
            guard Array(lines.joined().utf8).withUnsafeBytes({ FileDescriptorIO.writeAll(file.fd, $0) }) else {
                throw SpoolError(.io, "cannot append to the answered-surveys file: \(FileDescriptorIO.lastError())")
            }
            file.lines += lines.count
            // Grown to twice what it held when last written whole: expired answers go, from
            // the memory and the file, and the file starts again.
            guard file.lines > 2 * max(file.written, 10_000) else { return }
            let horizon = now - Self.milliseconds(self.window)
            let kept = self.seen.withLock { seen in
                seen = seen.filter { $0.value >= horizon }
                return seen
            }
            let fd = try Self.rewrite(kept, to: self.path)
            close(file.fd)
            file = (fd, kept.count, kept.count)
        }
    }

    static func key(_ customer: String, _ survey: String) -> String {
        Array(SHA256.hash(data: Array((customer + "\u{0}" + survey).utf8))).hexString
    }

    static func milliseconds(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
    }
}

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

/// What the HTTP intake remembers of accepted requests that carried an `Idempotency-Key`
/// (or record ids for all their ratings), so a retry stores nothing new and gets the first
/// answer again.
///
/// Per request it keeps the SHA-256 of its scope (the key it came with and its idempotency
/// key), the SHA-256 of its body and when it was first taken; the ids it was answered with
/// are derived from these (``UUIDv7/derived(milliseconds:seed:)``), so the answer is rebuilt,
/// not stored. The memory lives in `idempotency.log` beside the spool (mode 0600), survives
/// restarts, forgets requests older than its window, holds at most ``maxEntries`` (the
/// oldest go first, counted in ``evictedEarly`` when still inside the window) and is
/// rewritten when it has grown to twice what it holds.
///
/// A request is written down (`B` line, synced) before its ratings go into the spool, and
/// again when it is accepted (or an `A` line when it is refused). A request begun but not finished before a crash keeps its
/// time: its retry is stored again with the same ids, and the hub keeps one copy of each.
public final class IdempotencyMemory: Sendable {
    /// How long a request is remembered.
    public let window: Duration
    /// Most requests remembered.
    public let maxEntries: Int
    private let path: String
    private let state: Mutex<State>

    struct Entry {
        var body: String
        var at: Int64
        var pending: Bool
        /// Begun before a restart and never finished: a retry is stored again at `at`.
        var resumable = false
    }

    struct State {
        var entries: [String: Entry] = [:]
        /// Scopes in the order they were accepted, for forgetting the oldest.
        var order: [(scope: String, at: Int64)] = []
        var head = 0
        var fd: Int32 = -1
        var lines = 0
        var evictedEarly = 0
    }

    /// What a request's idempotency key finds.
    public enum Outcome: Equatable, Sendable {
        /// Not seen: reserved for this request, accepted at `at`.
        case fresh(at: Int64)
        /// Accepted before at `at` with the same body: answer as then.
        case replay(at: Int64)
        /// The same key is being handled by another request right now.
        case inProgress
        /// The key was used before with another body.
        case reused
    }

    /// Opens (creating if needed) the memory in `path`.
    ///
    /// - Throws: ``SpoolError`` `io` when the file cannot be written.
    public init(path: String, window: Duration = .seconds(86_400), maxEntries: Int = 100_000) throws {
        self.path = path
        self.window = window
        self.maxEntries = maxEntries
        var state = State()
        let horizon = Int64(Date().timeIntervalSince1970 * 1000) - ResponseLimiter.milliseconds(window)
        if let data = FileManager.default.contents(atPath: path) {
            for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
                var parts = line.split(separator: " ")
                if parts.count == 2, parts[0] == "A" {
                    // Refused after it began: nothing of it was stored.
                    if state.entries[String(parts[1])]?.resumable == true { state.entries[String(parts[1])] = nil }
                    continue
                }
                let begun = parts.first == "B"
                if begun { parts.removeFirst() }
                // A torn line (a crash mid-write) is skipped; its request was answered 5xx or not at all.
                guard parts.count == 3, parts[0].count == 64, parts[1].count == 64, let at = Int64(parts[2]), at >= horizon else { continue }
                let scope = String(parts[0])
                if begun, state.entries[scope]?.resumable == false { continue }  // finished already
                Self.remember(&state, scope: scope, Entry(body: String(parts[1]), at: at, pending: false, resumable: begun), maxEntries: maxEntries, horizon: horizon)
            }
        }
        try Self.rewrite(&state, path: path, horizon: horizon)
        self.state = Mutex(state)
    }

    deinit {
        self.state.withLock { _ = close($0.fd) }
    }

    /// The scope of `idempotencyKey` sent with `key` (nil: no key), as remembered.
    public static func scope(key: String?, idempotencyKey: String) -> String {
        Array(SHA256.hash(data: Array(((key ?? "") + "\u{0}" + idempotencyKey).utf8))).hexString
    }

    /// Looks up `scope` for a request with `body` at `now`, reserving it when fresh.
    public func begin(scope: String, body: some Sequence<UInt8>, now: Int64) -> Outcome {
        let digest = Array(SHA256.hash(data: Array(body))).hexString
        let horizon = now - ResponseLimiter.milliseconds(self.window)
        return self.state.withLock { state in
            var at = now
            if let entry = state.entries[scope], entry.pending || entry.at >= horizon {
                if entry.pending { return .inProgress }
                guard entry.body == digest else { return .reused }
                guard entry.resumable else { return .replay(at: entry.at) }
                at = entry.at
            }
            state.entries[scope] = Entry(body: digest, at: at, pending: true)
            // Written down before the ratings are stored, so a crash after storing them leaves
            // the time their ids came from. Synced: a retry after a power loss must find it.
            let line = "B \(scope) \(digest) \(at)\n"
            if Array(line.utf8).withUnsafeBytes({ FileDescriptorIO.writeAll(state.fd, $0) }) {
                _ = fdatasync(state.fd)
                state.lines += 1
            }
            return .fresh(at: at)
        }
    }

    /// Forgets a reservation whose request was not accepted: a retry is handled afresh,
    /// after a restart too (an `A` line cancels its `B` line).
    public func abandon(scope: String) {
        self.state.withLock { state in
            guard state.entries[scope]?.pending == true else { return }
            state.entries[scope] = nil
            if Array("A \(scope)\n".utf8).withUnsafeBytes({ FileDescriptorIO.writeAll(state.fd, $0) }) { state.lines += 1 }
        }
    }

    /// Records the accepted request; its ratings are durable already.
    ///
    /// - Throws: ``SpoolError`` `io` when the file cannot be written; the request stays
    ///   remembered until the agent stops.
    public func finish(scope: String) throws {
        try self.state.withLock { state in
            guard var entry = state.entries[scope], entry.pending else { return }
            entry.pending = false
            entry.resumable = false
            Self.remember(&state, scope: scope, entry, maxEntries: self.maxEntries, horizon: entry.at - ResponseLimiter.milliseconds(self.window))
            let line = "\(scope) \(entry.body) \(entry.at)\n"
            guard Array(line.utf8).withUnsafeBytes({ FileDescriptorIO.writeAll(state.fd, $0) }) else {
                throw SpoolError(.io, "cannot append to \(self.path): \(FileDescriptorIO.lastError())")
            }
            state.lines += 1
            if state.lines > 2 * max(state.entries.count, 1_000) {
                try Self.rewrite(&state, path: self.path, horizon: entry.at - ResponseLimiter.milliseconds(self.window))
            }
        }
    }

    /// How many requests are remembered.
    public var count: Int { self.state.withLock { $0.entries.count } }

    /// Requests forgotten for room while still inside the window: a retry of one of them
    /// after that is stored again (and the hub, by id, keeps one copy only when the ids were
    /// the caller's). Non-zero means the memory is too small for the request rate.
    public var evictedEarly: Int { self.state.withLock { $0.evictedEarly } }

    private static func remember(_ state: inout State, scope: String, _ entry: Entry, maxEntries: Int, horizon: Int64) {
        state.entries[scope] = entry
        state.order.append((scope, entry.at))
        while state.entries.count > maxEntries, state.head < state.order.count {
            let oldest = state.order[state.head]
            state.head += 1
            if let kept = state.entries[oldest.scope], !kept.pending, kept.at == oldest.at {
                state.entries[oldest.scope] = nil
                if kept.at >= horizon { state.evictedEarly += 1 }
            }
        }
        if state.head > 4_096, state.head * 2 > state.order.count {
            state.order.removeFirst(state.head)
            state.head = 0
        }
    }

    /// Forgets requests older than `horizon` and writes the rest to a fresh file and appends to it from then on.
    private static func rewrite(_ state: inout State, path: String, horizon: Int64) throws {
        state.entries = state.entries.filter { $0.value.pending || $0.value.at >= horizon }
        // Requests under way or begun before a restart keep their `B` line.
        let text = state.entries.map { "\($0.value.pending || $0.value.resumable ? "B " : "")\($0.key) \($0.value.body) \($0.value.at)\n" }.joined()
        let fd = try AppendLog.rewrite(text, to: path)
        if state.fd >= 0 { close(state.fd) }
        state.fd = fd
        state.lines = state.entries.count
    }
}

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import Synchronization
import Wire

/// Cuts the spool's unsealed records into batches by count, bytes and age, and seals each
/// with the agent's key. A sealed batch is in the spool (durably) before the uplink sees it.
///
/// A negative rating is sealed at once, with whatever waits before it: its alert should not
/// wait for the batch age (issue 17, "fresh alerts first"). Under load the batches stay
/// large, since records gather while one is sealed.
///
/// A batch is sealed by age (or for a negative rating) only while `sealsByAge` says so (the
/// agent: while a hub is connected). During an outage nothing is sent anyway, so records wait until a batch is
/// full: the backlog becomes few large batches, cheap to index and to send.
public final class Batcher: Sendable {
    /// When a batch is cut.
    public struct Configuration: Sendable, Hashable {
        /// Most records per batch.
        public var maxRecords = 1_000
        /// Most encoded bytes per batch (before compression); at most 8 MiB, what a hub accepts.
        public var maxBytes = 1 << 20
        /// A record waits at most this long to be sealed.
        public var maxAge: Duration = .milliseconds(100)
        /// zstd level.
        public var level: Int32 = 3

        /// The defaults.
        public init() {}
    }

    /// The settings in force.
    public let configuration: Configuration
    private let spool: Spool
    private let identity: AgentIdentity
    private let onSealed: @Sendable () -> Void
    private let sealsByAge: @Sendable () -> Bool
    private let logger: Logger
    private let wake: AsyncStream<Void>.Continuation
    private let wakes: AsyncStream<Void>
    private let sealing = Mutex(false)
    /// When a sealing failure was last logged, and how many since: a failure repeats every
    /// tick until it clears, so it is logged at most every 10 s.
    private let failures = Mutex<(lastLogged: ContinuousClock.Instant?, since: Int)>((nil, 0))

    /// Creates a batcher; `onSealed` runs after each batch is in the spool; a batch that is
    /// not full is sealed once its oldest record is `maxAge` old, or it holds a negative
    /// rating, and `sealsByAge` is true.
    public init(
        spool: Spool, identity: AgentIdentity, configuration: Configuration = Configuration(), logger: Logger,
        sealsByAge: @escaping @Sendable () -> Bool = { true },
        onSealed: @escaping @Sendable () -> Void
    ) {
        self.sealsByAge = sealsByAge
        self.spool = spool
        self.identity = identity
        self.configuration = configuration
        self.logger = logger
        self.onSealed = onSealed
        (self.wakes, self.wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// New records are in the spool: seal a batch if one is due.
    public func notify() {
        self.wake.yield()
    }

    /// Seals until cancelled: whenever woken, and every quarter of `maxAge`.
    public func run() async {
        let tick = max(self.configuration.maxAge / 4, .milliseconds(5))
        let ticker = Task { [wake] in
            while !Task.isCancelled {
                try? await Task.sleep(for: tick)
                wake.yield()
            }
        }
        defer { ticker.cancel() }
        for await _ in self.wakes {
            if Task.isCancelled { break }
            await self.sealDue(force: false)
        }
    }

    /// Seals every unsealed record now, whatever its age.
    public func sealAll() async {
        await self.sealDue(force: true)
    }

    private func sealDue(force: Bool) async {
        // One sealer at a time: the spool requires batches in sequence.
        guard self.sealing.withLock({ busy in defer { busy = true }; return !busy }) else { return }
        defer { self.sealing.withLock { $0 = false } }
        let sealer = BatchSealer(origin: self.identity.nodeID, signingKey: self.identity.signingKey, level: self.configuration.level)
        let maxBytes = min(self.configuration.maxBytes, Self.protocolLimits.maxUncompressedBytes)
        let ageLimit = self.configuration.maxAge.components.seconds * 1000 + self.configuration.maxAge.components.attoseconds / 1_000_000_000_000_000
        while true {
            // Decided from the spool's counts; records are read from disk only to seal them.
            let waiting = self.spool.unsealedSummary
            guard waiting.records > 0 else { return }
            let full = waiting.records >= self.configuration.maxRecords || waiting.bytes >= maxBytes
            if !force, !full {
                let age = Int64(Date().timeIntervalSince1970 * 1000) - (waiting.oldestCapturedAt ?? .max)
                guard waiting.negative || age >= ageLimit, self.sealsByAge() else { return }
            }
            do {
                let candidates = try self.spool.unsealed(limit: self.configuration.maxRecords)
                var bytes = 0
                var take = 0
                for record in candidates {
                    let size = Self.estimatedSize(record)
                    if take > 0, bytes + size > maxBytes { break }
                    bytes += size
                    take += 1
                }
                guard take > 0 else { return }
                var records = Array(candidates.prefix(take))
                var batch: SealedBatch
                while true {
                    do {
                        batch = try sealer.seal(records, sequence: self.spool.nextSequence)
                        break
                    } catch let error as WireError where error.code == .limitExceeded && records.count > 1 {
                        // Too large once compressed: seal the first half now, the rest next round.
                        records.removeLast(records.count / 2)
                    }
                }
                try await self.spool.sealed(batch, recordCount: records.count)
            } catch {
                // Records were validated on append, so this is the disk or a bug: retry on the next wake.
                let repeats = self.failures.withLock { failures -> Int? in
                    failures.since += 1
                    let now = ContinuousClock.now
                    guard failures.lastLogged.map({ now - $0 >= .seconds(10) }) ?? true else { return nil }
                    defer { failures = (now, 0) }
                    return failures.since
                }
                if let repeats {
                    self.logger.error("cannot seal a batch", metadata: ["error": "\(error)", "failures": "\(repeats)"])
                }
                return
            }
            self.onSealed()
        }
    }

    /// What a hub accepts at most; batches are cut to fit.
    static let protocolLimits = BatchLimits()

    /// The record's encoded size, from its field lengths (RecordCodec's layout).
    static func estimatedSize(_ record: FeedbackRecord) -> Int {
        var size = RecordCodec.fixedLength + 9
        size += record.site.utf8.count + record.channel.utf8.count + record.subject.utf8.count
        size += record.topic.utf8.count + record.survey.utf8.count + record.customer.utf8.count + record.comment.utf8.count
        for (key, value) in record.attributes { size += 2 + key.utf8.count + value.utf8.count }
        return size
    }
}

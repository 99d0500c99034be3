import Agent
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization
import Wire

/// Drives a hub with many concurrent signed connections and measures what it sustains:
/// the load generator behind `feedback-bench load`.
///
/// Each connection is one node. It sends batches of ``Configuration/batchRecords``
/// synthetic ratings, keeping at most the hub's granted credit in flight, until the total
/// ``Configuration/records`` is acknowledged or ``Configuration/maxDuration`` passes.
/// With ``Configuration/presealed`` every batch is sealed before the clock starts, as an
/// agent's spool holds them, so the figure is the hub's alone; without it each connection
/// seals as it goes (steady load for long runs, bounded memory).
public struct LoadGenerator: Sendable {
    /// What to run.
    public struct Configuration: Sendable {
        /// Hub host.
        public var host: String
        /// Hub protocol port.
        public var port: Int
        /// Client TLS context (trusting the hub's CA).
        public var tls: NIOSSLContext
        /// One node per connection; a non-empty token enrolls the node on connect.
        public var nodes: [(identity: AgentIdentity, token: String)]
        /// Records to send in all, across connections (rounded up to whole batches).
        public var records: Int
        /// Records per batch.
        public var batchRecords: Int = 1_000
        /// The run stops after this long even if `records` were not all sent.
        public var maxDuration: Duration = .seconds(120)
        /// Seal every batch before the clock starts.
        public var presealed = true
        /// Records per second across all connections, paced evenly; nil: as fast as the hub takes them.
        public var recordsPerSecond: Int?
        /// How long before being sent the ratings were captured: zero for live ratings, hours
        /// for the backlog of an agent that was cut off.
        public var capturedAgo: Duration = .zero

        /// Creates a configuration.
        public init(host: String, port: Int, tls: NIOSSLContext, nodes: [(identity: AgentIdentity, token: String)], records: Int) {
            self.host = host
            self.port = port
            self.tls = tls
            self.nodes = nodes
            self.records = records
        }
    }

    /// What a run measured.
    public struct Report: Sendable, CustomStringConvertible {
        /// Connections that sent.
        public var connections: Int
        /// Batches acknowledged as stored.
        public var batchesStored: Int
        /// Batches acknowledged as duplicates.
        public var batchesDuplicate: Int
        /// Batches refused, by the hub's reject or a lost connection.
        public var batchesFailed: Int
        /// Records in batches acknowledged as stored.
        public var recordsStored: Int
        /// BATCH frame bytes sent (frame header, batch header, compressed payload, signature).
        public var frameBytes: Int
        /// From the first send to the last answer.
        public var elapsed: Duration
        /// Send-to-acknowledgement times of every stored batch, sorted, in milliseconds.
        public var latenciesMs: [Double]

        /// Records acknowledged per second.
        public var recordsPerSecond: Double {
            let seconds = Double(self.elapsed.components.seconds) + Double(self.elapsed.components.attoseconds) / 1e18
            return seconds > 0 ? Double(self.recordsStored) / seconds : 0
        }

        /// Frame bytes per stored record.
        public var bytesPerRecord: Double {
            self.recordsStored > 0 ? Double(self.frameBytes) / Double(self.recordsStored) : 0
        }

        /// The latency at quantile `q` (0...1), in milliseconds.
        public func latency(_ q: Double) -> Double {
            guard !self.latenciesMs.isEmpty else { return 0 }
            let index = min(self.latenciesMs.count - 1, Int((Double(self.latenciesMs.count) * q).rounded(.up)) - 1)
            return self.latenciesMs[max(index, 0)]
        }

        /// A few lines for a terminal.
        public var description: String {
            let seconds = Double(self.elapsed.components.seconds) + Double(self.elapsed.components.attoseconds) / 1e18
            return """
                connections:        \(self.connections)
                records stored:     \(self.recordsStored) in \(self.batchesStored) batches \
                (\(self.batchesDuplicate) duplicate, \(self.batchesFailed) failed)
                elapsed:            \(String(format: "%.2f", seconds)) s
                throughput:         \(String(format: "%.0f", self.recordsPerSecond)) records/s
                bytes on the wire:  \(String(format: "%.1f", self.bytesPerRecord)) per record (BATCH frames, before TLS)
                batch ack latency:  p50 \(String(format: "%.1f", self.latency(0.5))) ms, \
                p99 \(String(format: "%.1f", self.latency(0.99))) ms, max \(String(format: "%.1f", self.latency(1))) ms
                """
        }
    }

    /// The settings of this generator.
    public let configuration: Configuration

    /// Creates a generator.
    public init(_ configuration: Configuration) {
        self.configuration = configuration
    }

    /// Connects every node, runs the load and returns the figures. Fails if a node cannot
    /// connect; failures of single batches are counted, not thrown.
    public func run() async throws -> Report {
        let configuration = self.configuration
        precondition(!configuration.nodes.isEmpty && configuration.batchRecords > 0, "checked by the caller")
        let batchesInAll = (configuration.records + configuration.batchRecords - 1) / configuration.batchRecords
        let perConnection = (0..<configuration.nodes.count).map { index in
            batchesInAll / configuration.nodes.count + (index < batchesInAll % configuration.nodes.count ? 1 : 0)
        }

        // Connect (and seal, when presealed) before the clock starts.
        let workers = try await withThrowingTaskGroup(of: Worker.self) { group in
            for (index, node) in configuration.nodes.enumerated() {
                group.addTask {
                    try await Worker.prepare(node: node, batches: perConnection[index], configuration: configuration)
                }
            }
            var workers: [Worker] = []
            for try await worker in group { workers.append(worker) }
            return workers
        }

        let started = ContinuousClock.now
        let deadline = started + configuration.maxDuration
        let tallies = await withTaskGroup(of: Worker.Tally.self) { group in
            // Each connection sends its share of the rate: one batch every `interval`.
            let interval = configuration.recordsPerSecond.map { rate in
                Duration.seconds(Double(configuration.batchRecords * workers.count) / Double(max(rate, 1)))
            }
            for worker in workers {
                group.addTask { await worker.run(until: deadline, pacedBy: interval, from: started) }
            }
            var all: [Worker.Tally] = []
            for await tally in group { all.append(tally) }
            return all
        }
        let elapsed = ContinuousClock.now - started
        for worker in workers { await worker.connection.close() }

        var report = Report(
            connections: workers.count, batchesStored: 0, batchesDuplicate: 0, batchesFailed: 0, recordsStored: 0,
            frameBytes: 0, elapsed: elapsed, latenciesMs: []
        )
        for tally in tallies {
            report.batchesStored += tally.stored
            report.batchesDuplicate += tally.duplicate
            report.batchesFailed += tally.failed
            report.recordsStored += tally.records
            report.frameBytes += tally.frameBytes
            report.latenciesMs += tally.latenciesMs
        }
        report.latenciesMs.sort()
        return report
    }

    /// One connection's sender.
    final class Worker: Sendable {
        struct Tally: Sendable {
            var stored = 0
            var duplicate = 0
            var failed = 0
            var records = 0
            var frameBytes = 0
            var latenciesMs: [Double] = []
        }

        let connection: HubConnection
        private let batches: Int
        private let presealed: [SealedBatch]
        private let firstSequence: UInt64
        private let identity: AgentIdentity
        private let batchRecords: Int
        private let capturedAgo: Duration

        private init(
            connection: HubConnection, batches: Int, presealed: [SealedBatch], firstSequence: UInt64,
            identity: AgentIdentity, batchRecords: Int, capturedAgo: Duration
        ) {
            self.connection = connection
            self.batches = batches
            self.presealed = presealed
            self.firstSequence = firstSequence
            self.identity = identity
            self.batchRecords = batchRecords
            self.capturedAgo = capturedAgo
        }

        static func prepare(
            node: (identity: AgentIdentity, token: String), batches: Int, configuration: Configuration
        ) async throws -> Worker {
            let connection = try await HubConnection.connect(
                host: configuration.host, port: configuration.port, tls: configuration.tls, identity: node.identity,
                enrollmentToken: node.token
            )
            // Never reuse a sequence the hub already committed (a re-run with the same nodes).
            let committed = connection.welcome.resume.first { $0.origin == node.identity.nodeID }?.committedSequence ?? 0
            var presealed: [SealedBatch] = []
            if configuration.presealed {
                let sealer = BatchSealer(origin: node.identity.nodeID, signingKey: node.identity.signingKey)
                var ratings = SyntheticRatings(origin: node.identity.nodeID, capturedAgo: configuration.capturedAgo)
                presealed.reserveCapacity(batches)
                for index in 0..<batches {
                    presealed.append(try sealer.seal(ratings.next(configuration.batchRecords), sequence: committed + 1 + UInt64(index)))
                }
            }
            return Worker(
                connection: connection, batches: batches, presealed: presealed, firstSequence: committed + 1,
                identity: node.identity, batchRecords: configuration.batchRecords, capturedAgo: configuration.capturedAgo
            )
        }

        func run(until deadline: ContinuousClock.Instant, pacedBy interval: Duration?, from start: ContinuousClock.Instant) async -> Tally {
            let window = max(Int(self.connection.welcome.initialCredit), 1)
            let sealer = BatchSealer(origin: self.identity.nodeID, signingKey: self.identity.signingKey)
            var ratings = SyntheticRatings(origin: self.identity.nodeID, capturedAgo: self.capturedAgo)
            var tally = Tally()
            var outstanding: [(future: EventLoopFuture<(BatchResult, ContinuousClock.Instant)>, sent: ContinuousClock.Instant, records: Int)] = []
            outstanding.reserveCapacity(window)

            func settleOldest() async {
                let (future, sent, records) = outstanding.removeFirst()
                do {
                    let (result, answered) = try await future.get()
                    switch result {
                    case .acknowledged(let ack) where ack.status == .duplicate:
                        tally.duplicate += 1
                    case .acknowledged:
                        tally.stored += 1
                        tally.records += records
                        let latency = answered - sent
                        tally.latenciesMs.append(
                            Double(latency.components.seconds) * 1e3 + Double(latency.components.attoseconds) / 1e15
                        )
                    case .rejected:
                        tally.failed += 1
                    }
                } catch {
                    tally.failed += 1
                }
            }

            for index in 0..<self.batches {
                if let interval {
                    let due = start + interval * index
                    if due >= deadline { break }
                    if due > ContinuousClock.now { try? await Task.sleep(until: due, clock: .continuous) }
                }
                if ContinuousClock.now >= deadline || !self.connection.isActive { break }
                let batch: SealedBatch
                if index < self.presealed.count {
                    batch = self.presealed[index]
                } else {
                    do {
                        batch = try sealer.seal(ratings.next(self.batchRecords), sequence: self.firstSequence + UInt64(index))
                    } catch {
                        tally.failed += 1
                        break
                    }
                }
                tally.frameBytes += batch.bytes.readableBytes + Frame.headerLength
                let sent = ContinuousClock.now
                let future = self.connection.send(batch).map { ($0, ContinuousClock.now) }
                outstanding.append((future, sent, Int(batch.header.recordCount)))
                if outstanding.count >= window { await settleOldest() }
            }
            while !outstanding.isEmpty { await settleOldest() }
            return tally
        }
    }
}

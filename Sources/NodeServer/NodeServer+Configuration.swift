import Foundation
import Support
import Wire

extension NodeServer {
    /// Bounds that protect a node server from its peers. Read from the `limits` section of
    /// hub.yaml (docs/OPERATIONS.md); keys left out keep their defaults.
    public struct Limits: Sendable, Codable, Equatable {
        /// Most authenticated protocol connections; a node authenticating beyond them is
        /// refused with `tooManyConnections` instead of WELCOME.
        public var maxConnections: Int = 1024
        /// Most authenticated connections of one node; a newer one closes the node's oldest
        /// (a reconnecting agent wins over its own half-dead connection), so one stolen key
        /// cannot take every connection slot.
        public var maxConnectionsPerNode: Int = 4
        /// Most connections between accept and WELCOME (TLS and HELLO in progress); when all
        /// are taken the oldest is closed to make room, once it has run for a second.
        public var maxHandshakes: Int = 256
        /// Most handshakes in progress from one source address; more are closed at once.
        public var maxHandshakesPerAddress: Int = 32
        /// Most records per batch.
        public var maxBatchRecords: Int = 10_000
        /// Most compressed bytes per batch (also bounds the frame size).
        public var maxCompressedBytes: Int = 4 << 20
        /// Most uncompressed bytes per batch.
        public var maxUncompressedBytes: Int = 8 << 20
        /// Most a batch may expand when decompressed.
        public var maxCompressionRatio: Int = 200
        /// Batches a connection may have in flight.
        public var credit: Int = 16
        /// A connection must finish its handshake within this many milliseconds.
        public var handshakeTimeoutMs: Int = 10_000
        /// A connection silent for this many milliseconds is closed.
        public var idleTimeoutMs: Int = 60_000
        /// On graceful shutdown, how long in-flight batches may take to finish.
        public var drainTimeoutMs: Int = 10_000

        /// The defaults.
        public init() {}

        /// Settings left out keep their defaults.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            func value(_ key: CodingKeys, _ fallback: Int) throws -> Int { try c.decodeIfPresent(Int.self, forKey: key) ?? fallback }
            self.maxConnections = try value(.maxConnections, self.maxConnections)
            self.maxConnectionsPerNode = try value(.maxConnectionsPerNode, self.maxConnectionsPerNode)
            self.maxHandshakes = try value(.maxHandshakes, self.maxHandshakes)
            self.maxHandshakesPerAddress = try value(.maxHandshakesPerAddress, self.maxHandshakesPerAddress)
            self.maxBatchRecords = try value(.maxBatchRecords, self.maxBatchRecords)
            self.maxCompressedBytes = try value(.maxCompressedBytes, self.maxCompressedBytes)
            self.maxUncompressedBytes = try value(.maxUncompressedBytes, self.maxUncompressedBytes)
            self.maxCompressionRatio = try value(.maxCompressionRatio, self.maxCompressionRatio)
            self.credit = try value(.credit, self.credit)
            self.handshakeTimeoutMs = try value(.handshakeTimeoutMs, self.handshakeTimeoutMs)
            self.idleTimeoutMs = try value(.idleTimeoutMs, self.idleTimeoutMs)
            self.drainTimeoutMs = try value(.drainTimeoutMs, self.drainTimeoutMs)
        }

        /// The settings' names, as a configuration file spells them.
        public static let settingNames = [
            "maxConnections", "maxConnectionsPerNode", "maxHandshakes", "maxHandshakesPerAddress", "maxBatchRecords",
            "maxCompressedBytes", "maxUncompressedBytes", "maxCompressionRatio", "credit", "handshakeTimeoutMs", "idleTimeoutMs",
            "drainTimeoutMs",
        ]

        /// Checks every setting against its allowed range (docs/OPERATIONS.md lists them);
        /// `section` names where they were read (`limits`, `relay.limits`).
        public func check(section: String) throws(RangeError) {
            try RangeError.check(self.maxConnections, 1...65_536, "\(section).maxConnections")
            try RangeError.check(self.maxConnectionsPerNode, 1...1_024, "\(section).maxConnectionsPerNode")
            try RangeError.check(self.maxHandshakes, 1...65_536, "\(section).maxHandshakes")
            try RangeError.check(self.maxHandshakesPerAddress, 1...65_536, "\(section).maxHandshakesPerAddress")
            try RangeError.check(self.maxBatchRecords, 1...10_000, "\(section).maxBatchRecords")
            try RangeError.check(self.maxCompressedBytes, 1024...(64 << 20), "\(section).maxCompressedBytes")
            try RangeError.check(self.maxUncompressedBytes, 1024...(256 << 20), "\(section).maxUncompressedBytes")
            // WELCOME does not announce the ratio, so conforming agents seal up to the protocol's
            // 200 (PROTOCOL.md §8): a lower limit would refuse good batches for good.
            try RangeError.check(self.maxCompressionRatio, BatchLimits.protocolCompressionRatio...1_000, "\(section).maxCompressionRatio")
            try RangeError.check(self.credit, 1...1_024, "\(section).credit")
            try RangeError.check(self.handshakeTimeoutMs, 100...600_000, "\(section).handshakeTimeoutMs")
            try RangeError.check(self.idleTimeoutMs, 100...3_600_000, "\(section).idleTimeoutMs")
            try RangeError.check(self.drainTimeoutMs, 1...600_000, "\(section).drainTimeoutMs")
        }

        /// The batch limits these settings give.
        public var batchLimits: BatchLimits {
            var limits = BatchLimits()
            limits.maxRecords = self.maxBatchRecords
            limits.maxCompressedBytes = self.maxCompressedBytes
            limits.maxUncompressedBytes = self.maxUncompressedBytes
            limits.maxCompressionRatio = self.maxCompressionRatio
            return limits
        }
    }

    /// What a node server needs to run: where it listens, who it is, its TLS files and its
    /// limits.
    public struct Configuration: Sendable {
        /// What the server is called in its log messages and REJECT messages: "hub", "relay".
        public var name: String
        /// The node id sent in every CHALLENGE (the hub's id, or the relay's).
        public var nodeID: UUID
        /// The host or address to listen on.
        public var host: String
        /// The port to listen on; 0 for any free port (see ``NodeServer/listeningAddress()``).
        public var port: Int
        /// The TLS files; a client CA requires mutual TLS.
        public var tls: ServerTLS.Files
        /// Peer limits.
        public var limits: Limits
        /// The GOAWAY sent to every node on graceful shutdown.
        public var goAway: GoAway
        /// Most relays a FORWARD's path may name: ``ForwardedBatch/maxHops`` at a hub, one
        /// less at a relay, which adds itself when it passes a batch on.
        public var maxIncomingHops = ForwardedBatch.maxHops

        /// Creates a configuration; the GOAWAY asks nodes to come back after a second.
        public init(name: String, nodeID: UUID, host: String, port: Int, tls: ServerTLS.Files, limits: Limits = Limits()) {
            self.name = name
            self.nodeID = nodeID
            self.host = host
            self.port = port
            self.tls = tls
            self.limits = limits
            self.goAway = GoAway(code: .shuttingDown, reconnectAfterMilliseconds: 1_000, message: "\(name) shutting down")
        }

        /// The batch limits of ``limits``.
        public var batchLimits: BatchLimits { self.limits.batchLimits }
    }
}

import NIOCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// WELCOME, hub → node: the handshake succeeded. Carries the agreed version, the hub's
/// limits, the initial credit and, for resuming, the highest committed sequence per origin.
public struct Welcome: Sendable, Hashable {
    /// Most resume entries in one WELCOME.
    public static let maxResumePoints = 1024
    /// Encoded size without resume entries.
    public static let minimumLength = 24
    /// Encoded size of one resume entry: `16 origin, u64 sequence`.
    public static let resumePointLength = 24

    /// Where a hub stands for one origin.
    public struct ResumePoint: Sendable, Hashable {
        /// The origin.
        public var origin: UUID
        /// The highest sequence of this origin the hub has committed; 0 when none. An agent
        /// never seals a new batch at or below it (see docs/PROTOCOL.md, "Resume").
        public var committedSequence: UInt64

        /// Creates a resume entry.
        public init(origin: UUID, committedSequence: UInt64) {
            self.origin = origin
            self.committedSequence = committedSequence
        }
    }

    /// The agreed protocol version.
    public var version: UInt16
    /// Longest frame payload the hub accepts.
    public var maxFrameLength: UInt32
    /// Most records per batch the hub accepts.
    public var maxBatchRecords: UInt32
    /// Most uncompressed payload bytes per batch the hub accepts.
    public var maxUncompressedBytes: UInt32
    /// Batches the node may send before it waits for CREDIT.
    public var initialCredit: UInt32
    /// The hub closes a connection silent for this long; nodes PING well within it. 0 = never.
    public var idleTimeoutMilliseconds: UInt32
    /// Committed sequences for the node's origin (and, for a relay, origins it forwarded);
    /// at most ``maxResumePoints``, further entries are dropped by the initialiser.
    public var resume: [ResumePoint]

    /// Creates a WELCOME.
    public init(
        version: UInt16 = ProtocolVersion.v1,
        maxFrameLength: UInt32,
        maxBatchRecords: UInt32,
        maxUncompressedBytes: UInt32,
        initialCredit: UInt32,
        idleTimeoutMilliseconds: UInt32,
        resume: [ResumePoint]
    ) {
        self.version = version
        self.maxFrameLength = maxFrameLength
        self.maxBatchRecords = maxBatchRecords
        self.maxUncompressedBytes = maxUncompressedBytes
        self.initialCredit = initialCredit
        self.idleTimeoutMilliseconds = idleTimeoutMilliseconds
        self.resume = Array(resume.prefix(Self.maxResumePoints))
    }

    func write(into buffer: inout ByteBuffer) {
        buffer.writeMultipleIntegers(
            self.version,
            self.maxFrameLength,
            self.maxBatchRecords,
            self.maxUncompressedBytes,
            self.initialCredit,
            self.idleTimeoutMilliseconds,
            UInt16(truncatingIfNeeded: self.resume.count)
        )
        for point in self.resume {
            buffer.writeUUID(point.origin)
            buffer.writeInteger(point.committedSequence)
        }
    }

    static func read(from buffer: inout ByteBuffer) throws -> Welcome {
        guard
            let (version, maxFrame, maxRecords, maxBytes, credit, idle, count) = buffer.readMultipleIntegers(
                as: (UInt16, UInt32, UInt32, UInt32, UInt32, UInt32, UInt16).self
            )
        else {
            throw WireError.truncated("welcome")
        }
        guard Int(count) <= Self.maxResumePoints else {
            throw WireError.length("welcome.resume", Int(count), max: Self.maxResumePoints)
        }
        guard buffer.readableBytes >= Int(count) * Self.resumePointLength else {
            throw WireError.truncated("welcome.resume")
        }
        var resume = [ResumePoint]()
        resume.reserveCapacity(Int(count))
        for _ in 0..<count {
            let origin = try buffer.readUUID("welcome.resume.origin")
            let sequence = try buffer.readWire(UInt64.self, "welcome.resume.sequence")
            resume.append(ResumePoint(origin: origin, committedSequence: sequence))
        }
        return Welcome(
            version: version,
            maxFrameLength: maxFrame,
            maxBatchRecords: maxRecords,
            maxUncompressedBytes: maxBytes,
            initialCredit: credit,
            idleTimeoutMilliseconds: idle,
            resume: resume
        )
    }
}

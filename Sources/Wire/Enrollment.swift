import NIOCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// ENROLL, relay → upstream (protocol version 2): a node that reaches only a relay redeems its
/// enrollment token through it. The relay carries the node's HELLO and the CHALLENGE it
/// answered (the relay's own, or one a relay below it sent) up to the hub, which checks the
/// proof against that challenge and redeems the token as if the node had connected itself.
///
/// On the wire: the CHALLENGE payload (52 bytes), then the HELLO payload (124 … 252 bytes).
public struct EnrollRequest: Sendable, Hashable {
    /// The challenge the node answered.
    public var challenge: Challenge
    /// The node's HELLO, with its token and proof.
    public var hello: Hello

    /// Creates a request.
    public init(challenge: Challenge, hello: Hello) {
        self.challenge = challenge
        self.hello = hello
    }

    func write(into buffer: inout ByteBuffer) {
        self.challenge.write(into: &buffer)
        self.hello.write(into: &buffer)
    }

    static func read(from buffer: inout ByteBuffer) throws -> EnrollRequest {
        let challenge = try Challenge.read(from: &buffer)
        return EnrollRequest(challenge: challenge, hello: try Hello.read(from: &buffer))
    }
}

/// ENROLLED, upstream → relay (protocol version 2): the answer to an ENROLL, for one node.
///
/// On the wire: `16 nodeId`, `u8 outcome`; outcome 1 (enrolled): `u8 role`, `u16 patternCount`,
/// the node's site patterns (`u8` length and UTF-8 each); outcome 2 (refused): `u16 code`,
/// `u8 disposition`, `u16 messageLength`, the message (the connection-level REJECT the relay
/// sends the node).
public struct EnrollAnswer: Sendable, Hashable {
    /// Longest payload.
    public static let maxLength = 32 << 10
    /// Shortest payload.
    public static let minimumLength = 20

    /// What became of the enrollment.
    public enum Outcome: Sendable, Hashable {
        /// Registered, with this role and these sites.
        case enrolled(role: Hello.Role, sites: SiteScope)
        /// Refused: the REJECT to send the node.
        case refused(Reject)
    }

    /// The node that asked.
    public var nodeID: UUID
    /// Enrolled or refused.
    public var outcome: Outcome

    /// Creates an answer.
    public init(nodeID: UUID, outcome: Outcome) {
        self.nodeID = nodeID
        self.outcome = outcome
    }

    func write(into buffer: inout ByteBuffer) {
        buffer.writeUUID(self.nodeID)
        switch self.outcome {
        case .enrolled(let role, let sites):
            buffer.writeMultipleIntegers(UInt8(1), role.rawValue, UInt16(sites.patterns.count))
            for pattern in sites.patterns { buffer.writeString8(pattern) }
        case .refused(let reject):
            buffer.writeMultipleIntegers(UInt8(2), reject.code.rawValue, reject.disposition.rawValue)
            buffer.writeString16(reject.message)
        }
    }

    static func read(from buffer: inout ByteBuffer) throws -> EnrollAnswer {
        let nodeID = try buffer.readUUID("enrolled.nodeId")
        switch try buffer.readWire(UInt8.self, "enrolled.outcome") {
        case 1:
            let roleByte = try buffer.readWire(UInt8.self, "enrolled.role")
            guard let role = Hello.Role(rawValue: roleByte) else {
                throw WireError(.lengthOutOfRange, field: "enrolled.role", "role \(roleByte) is not agent (1) or relay (2)")
            }
            let count = Int(try buffer.readWire(UInt16.self, "enrolled.patternCount"))
            guard count <= SiteScope.maxPatterns else { throw WireError.length("enrolled.patternCount", count, max: SiteScope.maxPatterns) }
            var patterns: [String] = []
            for _ in 0..<count { patterns.append(try buffer.readString8("enrolled.sites", max: RecordLimits.protocolMaximum.site)) }
            return EnrollAnswer(nodeID: nodeID, outcome: .enrolled(role: role, sites: patterns.isEmpty ? .none : try SiteScope(patterns)))
        case 2:
            guard let (code, dispositionByte) = buffer.readMultipleIntegers(as: (UInt16, UInt8).self) else {
                throw WireError.truncated("enrolled")
            }
            guard let disposition = Reject.Disposition(rawValue: dispositionByte) else {
                throw WireError(.lengthOutOfRange, field: "enrolled.disposition", "disposition \(dispositionByte) is not retryable (1) or permanent (2)")
            }
            let message = try buffer.readString16("enrolled.message", max: Reject.maxMessageLength)
            return EnrollAnswer(nodeID: nodeID, outcome: .refused(.connection(RejectCode(rawValue: code), disposition, message)))
        case let other:
            throw WireError(.lengthOutOfRange, field: "enrolled.outcome", "outcome \(other) is not enrolled (1) or refused (2)")
        }
    }
}

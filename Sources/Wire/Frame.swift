import NIOCore

/// The type byte of a frame.
public enum FrameType: UInt8, Sendable, Hashable, CaseIterable {
    /// Hub → node: versions and nonce. See ``Challenge``.
    case challenge = 0x01
    /// Node → hub: identity and proof. See ``Hello``.
    case hello = 0x02
    /// Hub → node: handshake done. See ``Welcome``.
    case welcome = 0x03
    /// Node → hub: one sealed batch. See ``SealedBatch``.
    case batch = 0x04
    /// Hub → node: a batch is committed. See ``Ack``.
    case ack = 0x05
    /// Hub → node: a batch or the connection refused. See ``Reject``.
    case reject = 0x06
    /// Hub → node: `u32` more batches may be sent.
    case credit = 0x07
    /// Either way: `u64` opaque value to echo.
    case ping = 0x08
    /// Either way: the `u64` of the PING answered.
    case pong = 0x09
    /// Hub → node: the hub is closing this connection. See ``GoAway``.
    case goAway = 0x0A
    /// Relay → upstream (version 2): a sealed batch with its hop path. See ``ForwardedBatch``.
    case forward = 0x0B
    /// Hub or relay → relay (version 2): part of a registry snapshot. See ``RegistryUpdate``.
    case registry = 0x0C
    /// Node → upstream (version 2): a signed report of the node's state. See ``StatusReport``.
    case status = 0x0D
    /// Relay → upstream (version 2): a node's enrollment carried up. See ``EnrollRequest``.
    case enroll = 0x0E
    /// Upstream → relay (version 2): its answer. See ``EnrollAnswer``.
    case enrolled = 0x0F

    /// The payload lengths this type allows, checked as soon as the 5-byte frame header is read.
    public func payloadLengths(_ limits: FrameLimits) -> ClosedRange<Int> {
        switch self {
        case .challenge: Challenge.length...Challenge.length
        case .hello: Hello.minimumLength...(Hello.minimumLength + Hello.maxTokenLength)
        case .welcome:
            Welcome.minimumLength...(Welcome.minimumLength + Welcome.maxResumePoints * Welcome.resumePointLength)
        case .batch: SealedBatch.minimumLength...max(SealedBatch.minimumLength, limits.maxFrameLength)
        case .ack: Ack.length...Ack.length
        case .reject: Reject.minimumLength...(Reject.minimumLength + Reject.maxMessageLength)
        case .credit: 4...4
        case .ping, .pong: 8...8
        case .goAway: GoAway.minimumLength...(GoAway.minimumLength + GoAway.maxMessageLength)
        case .forward:
            (ForwardedBatch.pathLength(hops: 1) + SealedBatch.minimumLength)...(
                ForwardedBatch.pathLength(hops: ForwardedBatch.maxHops) + max(SealedBatch.minimumLength, limits.maxFrameLength)
            )
        case .registry: RegistryUpdate.minimumLength...RegistryUpdate.maxLength
        case .status: StatusReport.minimumLength...(StatusReport.minimumLength + StatusReport.maxBodyLength)
        case .enroll: (Challenge.length + Hello.minimumLength)...(Challenge.length + Hello.minimumLength + Hello.maxTokenLength)
        case .enrolled: EnrollAnswer.minimumLength...EnrollAnswer.maxLength
        }
    }
}

/// One protocol message. On the wire: `u8 type`, `u32 payloadLength`, payload (big-endian).
public enum Frame: Sendable, Hashable {
    /// See ``Challenge``.
    case challenge(Challenge)
    /// See ``Hello``.
    case hello(Hello)
    /// See ``Welcome``.
    case welcome(Welcome)
    /// See ``SealedBatch``.
    case batch(SealedBatch)
    /// See ``Ack``.
    case ack(Ack)
    /// See ``Reject``.
    case reject(Reject)
    /// Grants this many more batches; at least 1.
    case credit(UInt32)
    /// Asks for a PONG with the same value.
    case ping(UInt64)
    /// Answers a PING.
    case pong(UInt64)
    /// See ``GoAway``.
    case goAway(GoAway)
    /// See ``ForwardedBatch``.
    case forward(ForwardedBatch)
    /// See ``RegistryUpdate``.
    case registry(RegistryUpdate)
    /// See ``StatusReport``.
    case status(StatusReport)
    /// See ``EnrollRequest``.
    case enroll(EnrollRequest)
    /// See ``EnrollAnswer``.
    case enrolled(EnrollAnswer)

    /// Bytes of the frame header: type and length.
    public static let headerLength = 5

    /// This frame's type byte.
    public var type: FrameType {
        switch self {
        case .challenge: .challenge
        case .hello: .hello
        case .welcome: .welcome
        case .batch: .batch
        case .ack: .ack
        case .reject: .reject
        case .credit: .credit
        case .ping: .ping
        case .pong: .pong
        case .goAway: .goAway
        case .forward: .forward
        case .registry: .registry
        case .status: .status
        case .enroll: .enroll
        case .enrolled: .enrolled
        }
    }

    /// The sealed batch a BATCH or FORWARD frame carries.
    public var sealedBatch: SealedBatch? {
        switch self {
        case .batch(let batch): batch
        case .forward(let forwarded): forwarded.batch
        default: nil
        }
    }

    /// Appends the whole frame (header and payload) to `buffer`.
    public func write(into buffer: inout ByteBuffer) {
        buffer.writeInteger(self.type.rawValue)
        let lengthIndex = buffer.writerIndex
        buffer.writeInteger(UInt32(0))
        let start = buffer.writerIndex
        switch self {
        case .challenge(let challenge): challenge.write(into: &buffer)
        case .hello(let hello): hello.write(into: &buffer)
        case .welcome(let welcome): welcome.write(into: &buffer)
        case .batch(let batch): buffer.writeImmutableBuffer(batch.bytes)
        case .ack(let ack): ack.write(into: &buffer)
        case .reject(let reject): reject.write(into: &buffer)
        case .credit(let batches): buffer.writeInteger(batches)
        case .ping(let value), .pong(let value): buffer.writeInteger(value)
        case .goAway(let goAway): goAway.write(into: &buffer)
        case .forward(let forwarded): forwarded.write(into: &buffer)
        case .registry(let update): update.write(into: &buffer)
        case .status(let report): report.write(into: &buffer)
        case .enroll(let request): request.write(into: &buffer)
        case .enrolled(let answer): answer.write(into: &buffer)
        }
        buffer.setInteger(UInt32(truncatingIfNeeded: buffer.writerIndex - start), at: lengthIndex)
    }

    /// Reads one frame from the front of `buffer`.
    ///
    /// Returns nil, consuming nothing, when the frame is not complete yet. The type and the
    /// declared length are checked as soon as the 5 header bytes are there, so a peer cannot
    /// make the reader wait for, or buffer, more than the type's maximum.
    ///
    /// - Throws: ``WireError`` for an unknown type, a length out of range, or a payload that
    ///   does not decode exactly.
    public static func read(from buffer: inout ByteBuffer, limits: FrameLimits) throws -> Frame? {
        guard
            let (typeByte, declared) = buffer.getMultipleIntegers(at: buffer.readerIndex, as: (UInt8, UInt32).self)
        else {
            return nil
        }
        guard let type = FrameType(rawValue: typeByte) else {
            throw WireError(.unknownFrameType, field: "frame.type", "frame type 0x\(String(typeByte, radix: 16)) is not defined")
        }
        guard let length = Int(exactly: declared) else {
            throw WireError(.frameTooLarge, field: "frame.length", "frame length \(declared) cannot be represented")
        }
        let allowed = type.payloadLengths(limits)
        guard length <= allowed.upperBound else {
            throw WireError(
                .frameTooLarge,
                field: "\(type).length",
                "\(type) frame of \(length) bytes exceeds the limit of \(allowed.upperBound)"
            )
        }
        guard length >= allowed.lowerBound else {
            throw WireError.length("\(type).length", length, max: allowed.upperBound, min: allowed.lowerBound)
        }
        guard var payload = buffer.getSlice(at: buffer.readerIndex + Self.headerLength, length: length) else {
            return nil
        }
        let frame = try Self.decodePayload(type, &payload, limits)
        try payload.expectFullyRead("\(type) frame")
        buffer.moveReaderIndex(forwardBy: Self.headerLength + length)
        return frame
    }

    private static func decodePayload(_ type: FrameType, _ payload: inout ByteBuffer, _ limits: FrameLimits) throws -> Frame {
        switch type {
        case .challenge: return .challenge(try Challenge.read(from: &payload))
        case .hello: return .hello(try Hello.read(from: &payload))
        case .welcome: return .welcome(try Welcome.read(from: &payload))
        case .batch:
            let batch = try SealedBatch(parsing: payload)
            payload.moveReaderIndex(to: payload.writerIndex)
            return .batch(batch)
        case .ack: return .ack(try Ack.read(from: &payload))
        case .reject: return .reject(try Reject.read(from: &payload))
        case .credit:
            let batches = try payload.readWire(UInt32.self, "credit")
            guard batches >= 1 else { throw WireError(.lengthOutOfRange, field: "credit", "a CREDIT frame grants at least 1 batch") }
            return .credit(batches)
        case .ping: return .ping(try payload.readWire(UInt64.self, "ping"))
        case .pong: return .pong(try payload.readWire(UInt64.self, "pong"))
        case .goAway: return .goAway(try GoAway.read(from: &payload))
        case .forward: return .forward(try ForwardedBatch.read(from: &payload))
        case .registry: return .registry(try RegistryUpdate.read(from: &payload))
        case .status: return .status(try StatusReport.read(from: &payload))
        case .enroll: return .enroll(try EnrollRequest.read(from: &payload))
        case .enrolled: return .enrolled(try EnrollAnswer.read(from: &payload))
        }
    }
}

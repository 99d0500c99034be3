import NIOCore

/// Splits an inbound byte stream into ``Frame``s. A peer that sends an unknown type, a
/// length out of range or a malformed payload makes it throw a ``WireError``; the channel
/// handler answers with a REJECT and closes.
public struct FrameDecoder: ByteToMessageDecoder, Sendable {
    /// Frames produced.
    public typealias InboundOut = Frame

    private let limits: FrameLimits

    /// Creates a decoder enforcing `limits`.
    public init(limits: FrameLimits = FrameLimits()) {
        self.limits = limits
    }

    /// Decodes one frame if a whole one is buffered.
    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try Frame.read(from: &buffer, limits: self.limits) else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(frame))
        return .continue
    }

    /// Decodes what is left at end of stream; a partial frame is dropped with the connection.
    public mutating func decodeLast(
        context: ChannelHandlerContext,
        buffer: inout ByteBuffer,
        seenEOF: Bool
    ) throws -> DecodingState {
        try self.decode(context: context, buffer: &buffer)
    }
}

/// Writes ``Frame``s to the byte stream.
public struct FrameEncoder: MessageToByteEncoder, Sendable {
    /// Frames consumed.
    public typealias OutboundIn = Frame

    /// Creates an encoder.
    public init() {}

    /// Appends `data` to `out`.
    public func encode(data: Frame, out: inout ByteBuffer) throws {
        data.write(into: &out)
    }
}

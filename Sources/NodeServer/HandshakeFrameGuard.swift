import NIOCore
import Wire

/// Lets only a HELLO through before the server has sent WELCOME, judged from the frame header,
/// so an unauthenticated peer can make the server buffer at most one HELLO (257 bytes), never a
/// BATCH of `maxFrameLength` (PROTOCOL.md §6.8).
///
/// A defined frame type other than HELLO first, or any byte after the HELLO and before
/// WELCOME, is `protocolViolation` (answered `unexpectedFrame`); an undefined type or a bad
/// HELLO length is left to the frame decoder (`malformedFrame`, `frameTooLarge`). At
/// ``open()`` it leaves the pipeline, so established connections do not pay for it.
final class HandshakeFrameGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    enum Phase {
        /// Reading the first frame's 5-byte header; `header` holds what has arrived.
        case awaitingHeader(header: [UInt8])
        /// Passing the HELLO's payload on; `remaining` bytes of it are still to come.
        case hello(remaining: Int)
        /// The HELLO is complete: nothing may follow until WELCOME.
        case awaitingWelcome
        /// Left to the frame decoder, which fails the connection on what it reads.
        case decoderDecides
        /// The handshake is done, or the connection failed: bytes pass, or are dropped.
        case open
        case failed
    }

    private var phase = Phase.awaitingHeader(header: [])
    private var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    /// The handshake is complete: let every frame through, and leave the pipeline. Nothing
    /// is held back here (accepted bytes are passed on as they arrive), so nothing is lost.
    func open() {
        self.phase = .open
        if let context = self.context { context.pipeline.syncOperations.removeHandler(context: context, promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = Self.unwrapInboundIn(data)
        var passed = bytes.readerIndex
        var failure: WireError?
        scan: while bytes.readableBytes > 0 {
            switch self.phase {
            case .open, .decoderDecides:
                bytes.moveReaderIndex(to: bytes.writerIndex)
            case .failed:
                break scan
            case .awaitingHeader(var header):
                let take = min(Frame.headerLength - header.count, bytes.readableBytes)
                header += bytes.readBytes(length: take) ?? []
                guard header.count == Frame.headerLength else {
                    self.phase = .awaitingHeader(header: header)
                    continue
                }
                let length = header[1...4].reduce(0) { $0 << 8 | Int($1) }
                switch FrameType(rawValue: header[0]) {
                case .hello?:
                    let allowed = FrameType.hello.payloadLengths(FrameLimits())
                    self.phase = allowed.contains(length) ? .hello(remaining: length) : .decoderDecides
                case let type?:
                    failure = WireError(.protocolViolation, field: "frame.type", "expected HELLO, got \(type)")
                case nil:
                    self.phase = .decoderDecides
                }
                if failure != nil {
                    passed = bytes.readerIndex - take
                    break scan
                }
            case .hello(let remaining):
                let take = min(remaining, bytes.readableBytes)
                bytes.moveReaderIndex(forwardBy: take)
                self.phase = take == remaining ? .awaitingWelcome : .hello(remaining: remaining - take)
            case .awaitingWelcome:
                failure = WireError(.protocolViolation, field: "frame", "a frame sent before WELCOME")
                passed = bytes.readerIndex
                break scan
            }
        }
        if failure == nil { passed = bytes.readerIndex }
        let original = Self.unwrapInboundIn(data)
        if passed > original.readerIndex, let accepted = original.getSlice(at: original.readerIndex, length: passed - original.readerIndex) {
            context.fireChannelRead(Self.wrapInboundOut(accepted))
        }
        if let failure {
            self.phase = .failed
            context.fireErrorCaught(failure)
        }
    }
}

import NIOCore

/// Counts bytes received, before TLS-decrypted bytes are decoded into frames.
final class ByteCounter: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    private let metrics: NodeServerMetrics

    init(metrics: NodeServerMetrics) {
        self.metrics = metrics
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.metrics.bytesReceived.increment(by: Int64(Self.unwrapInboundIn(data).readableBytes))
        context.fireChannelRead(data)
    }
}

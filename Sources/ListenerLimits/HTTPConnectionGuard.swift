#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOHTTPTypes
import Synchronization

/// The connection slots of one HTTP listener, shared by its connections' guards.
///
/// When every slot is taken (or every slot of the newcomer's address), a new connection
/// evicts the one that has waited longest for a complete request (a slow or idle client),
/// once it has waited half a second; a connection whose response is being made is never
/// evicted.
public final class HTTPConnectionSlots: Sendable {
    /// Why the listener closed a connection, for metrics.
    public enum Closure: String, Sendable {
        /// No slot: every one is taken by a connection that cannot be evicted yet.
        case full
        /// No slot: the source address holds its maximum.
        case addressFull = "address_full"
        /// Evicted to make room for a new connection.
        case evicted
        /// The request head did not arrive in time (first request, or after a response).
        case headerTimeout = "header_timeout"
        /// The request body did not arrive in time.
        case bodyTimeout = "body_timeout"
        /// The response was not written in time (a client that does not read it).
        case responseTimeout = "response_timeout"
    }

    /// The limits in force.
    public let limits: HTTPListenerLimits
    private let slots: Mutex<ConnectionSlots<any Channel>>
    let closed: @Sendable (Closure) -> Void

    /// Creates the slots for one listener; `closed` hears of every connection the limits close.
    public init(limits: HTTPListenerLimits, closed: @escaping @Sendable (Closure) -> Void = { _ in }) {
        self.limits = limits
        self.closed = closed
        self.slots = Mutex(
            ConnectionSlots(
                limits: .init(
                    capacity: limits.maxConnections, perAddress: limits.maxConnectionsPerAddress, evictAfter: .milliseconds(500),
                    evictWithinAddressAfter: .milliseconds(500)
                )
            )
        )
    }

    /// Connections holding a slot.
    public var count: Int { self.slots.withLock { $0.count } }

    func admit(_ channel: any Channel) -> ConnectionSlots<any Channel>.Admission {
        self.slots.withLock { $0.admit(channel, from: channel.remoteAddress?.slotKey ?? "", at: .now) }
    }

    func busy(_ ticket: ConnectionSlots<any Channel>.Ticket) {
        self.slots.withLock { $0.markBusy(ticket) }
    }

    func idle(_ ticket: ConnectionSlots<any Channel>.Ticket) {
        self.slots.withLock { $0.markIdle(ticket, at: .now) }
    }

    func release(_ ticket: ConnectionSlots<any Channel>.Ticket) {
        self.slots.withLock { $0.release(ticket) }
    }

    /// A new guard for one connection: add it to the HTTP pipeline after request decoding.
    public func makeGuard() -> HTTPConnectionGuard {
        HTTPConnectionGuard(slots: self)
    }
}

/// Holds one HTTP connection to its listener's limits: a slot (connections over the total or
/// per-address cap are closed at once), and deadlines a slow client cannot stretch by
/// trickling bytes: the request head within `headerTimeoutMs` of the connection (or within
/// `idleTimeoutMs` of the previous response), the body within `bodyTimeoutMs` of the head,
/// the response written within `idleTimeoutMs` of the request's end.
public final class HTTPConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = HTTPRequestPart
    public typealias InboundOut = HTTPRequestPart
    public typealias OutboundIn = HTTPResponsePart
    public typealias OutboundOut = HTTPResponsePart

    enum Phase {
        case awaitingHead
        case receivingBody
        case responding
    }

    private let slots: HTTPConnectionSlots
    private var ticket: ConnectionSlots<any Channel>.Ticket?
    private var phase = Phase.awaitingHead
    private var deadline: Scheduled<Void>?
    private var started = false

    init(slots: HTTPConnectionSlots) {
        self.slots = slots
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { self.start(context) }
    }

    public func channelActive(context: ChannelHandlerContext) {
        self.start(context)
        context.fireChannelActive()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        self.finish()
        context.fireChannelInactive()
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        self.finish()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head:
            self.phase = .receivingBody
            self.arm(context, milliseconds: self.slots.limits.bodyTimeoutMs, .bodyTimeout)
        case .body:
            break
        case .end:
            self.phase = .responding
            if let ticket = self.ticket { self.slots.busy(ticket) }
            self.arm(context, milliseconds: self.slots.limits.idleTimeoutMs, .responseTimeout)
        }
        context.fireChannelRead(data)
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = Self.unwrapOutboundIn(data), case .responding = self.phase {
            self.phase = .awaitingHead
            if let ticket = self.ticket { self.slots.idle(ticket) }
            self.arm(context, milliseconds: self.slots.limits.idleTimeoutMs, .headerTimeout)
        }
        context.write(data, promise: promise)
    }

    private func start(_ context: ChannelHandlerContext) {
        guard !self.started else { return }
        self.started = true
        switch self.slots.admit(context.channel) {
        case .admitted(let ticket):
            self.ticket = ticket
            self.arm(context, milliseconds: self.slots.limits.headerTimeoutMs, .headerTimeout)
        case .admittedEvicting(let ticket, let evicted):
            self.slots.closed(.evicted)
            evicted.close(promise: nil)
            self.ticket = ticket
            self.arm(context, milliseconds: self.slots.limits.headerTimeoutMs, .headerTimeout)
        case .refused(let refusal):
            switch refusal {
            case .full: self.slots.closed(.full)
            case .addressFull: self.slots.closed(.addressFull)
            }
            context.close(promise: nil)
        }
    }

    private func arm(_ context: ChannelHandlerContext, milliseconds: Int, _ reason: HTTPConnectionSlots.Closure) {
        self.deadline?.cancel()
        let channel = context.channel
        let closed = self.slots.closed
        self.deadline = context.eventLoop.scheduleTask(in: .milliseconds(Int64(milliseconds))) {
            closed(reason)
            channel.close(promise: nil)
        }
    }

    private func finish() {
        self.deadline?.cancel()
        self.deadline = nil
        if let ticket = self.ticket {
            self.slots.release(ticket)
            self.ticket = nil
        }
    }
}

extension SocketAddress {
    /// What per-address connection caps count by: the IPv4 address (also when it comes
    /// IPv4-mapped), or the IPv6 /64 prefix, since one host usually holds a whole /64;
    /// "" for addresses without one.
    public var slotKey: String {
        guard case .v6(let address) = self else { return self.ipAddress ?? "" }
        let bytes = withUnsafeBytes(of: address.address.sin6_addr) { Array($0) }
        if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF {
            return bytes[12...].map(String.init).joined(separator: ".")
        }
        let hextets = stride(from: 0, to: 8, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
        return hextets.joined(separator: ":") + "::/64"
    }
}

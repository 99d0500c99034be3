/// The connections one listener holds, bounded in total and per source address, so that one
/// source cannot take every slot and a flood of connections that never progress cannot lock
/// others out.
///
/// A pure value: the listener keeps it behind its own lock and acts on the answers (closes a
/// refused or evicted connection). `Occupant` is what the listener needs to close an evicted
/// connection, typically its `Channel`.
public struct ConnectionSlots<Occupant> {
    /// How many connections may hold a slot.
    public struct Limits: Sendable, Hashable {
        /// Most connections in all.
        public var capacity: Int
        /// Most connections from one source address.
        public var perAddress: Int
        /// When every slot is taken, the connection that has been idle longest (waiting for
        /// its peer, see ``ConnectionSlots/markIdle(_:at:)``) is evicted to make room, once it
        /// has been idle this long; nil: the newcomer is refused instead.
        public var evictAfter: Duration?
        /// When a source address holds its maximum, its own longest-idle connection is
        /// evicted for its newcomer once idle this long; nil: the newcomer is refused. So an
        /// attacker sharing an address with others (a NAT, a proxy, loopback) cannot hold
        /// the address's slots against them.
        public var evictWithinAddressAfter: Duration?

        /// Creates limits; `perAddress` defaults to the whole capacity.
        public init(capacity: Int, perAddress: Int? = nil, evictAfter: Duration? = nil, evictWithinAddressAfter: Duration? = nil) {
            self.capacity = capacity
            self.perAddress = perAddress ?? capacity
            self.evictAfter = evictAfter
            self.evictWithinAddressAfter = evictWithinAddressAfter
        }
    }

    /// Proof of holding a slot, given back with ``release(_:)``.
    public struct Ticket: Sendable, Hashable {
        let id: UInt64
    }

    /// Why a connection got no slot.
    public enum Refusal: Sendable, Hashable, CustomStringConvertible {
        /// Every slot is taken and none is old enough to evict.
        case full(capacity: Int)
        /// The source address holds its maximum.
        case addressFull(perAddress: Int)

        /// A sentence for logs.
        public var description: String {
            switch self {
            case .full(let capacity): "all \(capacity) connection slots are taken"
            case .addressFull(let perAddress): "the source address holds its maximum of \(perAddress) connections"
            }
        }
    }

    /// The answer to ``admit(_:from:at:)``.
    public enum Admission {
        /// The connection holds a slot.
        case admitted(Ticket)
        /// The connection holds a slot that `Occupant` held: close that one.
        case admittedEvicting(Ticket, evicted: Occupant)
        /// No slot: close the connection.
        case refused(Refusal)
    }

    struct Holder {
        var address: String
        var occupant: Occupant
        /// Since when the connection waits for its peer; nil while it is being served.
        var idleSince: ContinuousClock.Instant?
    }

    /// The limits in force.
    public let limits: Limits
    private var holders: [UInt64: Holder] = [:]
    private var perAddress: [String: Int] = [:]
    private var nextID: UInt64 = 0

    /// Creates empty slots.
    public init(limits: Limits) {
        self.limits = limits
    }

    /// Connections holding a slot.
    public var count: Int { self.holders.count }

    /// Connections from `address` holding a slot.
    public func count(from address: String) -> Int { self.perAddress[address, default: 0] }

    /// Gives a slot to a connection from `address`, evicting the longest-idle holder when the
    /// slots are full and eviction is allowed. A new connection counts as idle from `now`.
    public mutating func admit(_ occupant: Occupant, from address: String, at now: ContinuousClock.Instant) -> Admission {
        guard self.perAddress[address, default: 0] < self.limits.perAddress else {
            guard let after = self.limits.evictWithinAddressAfter,
                let (id, holder) = self.longestIdle(evictableAfter: after, at: now, where: { $0.address == address })
            else {
                return .refused(.addressFull(perAddress: self.limits.perAddress))
            }
            self.remove(id)
            return .admittedEvicting(self.insert(occupant, address, now), evicted: holder.occupant)
        }
        guard self.holders.count >= self.limits.capacity else {
            return .admitted(self.insert(occupant, address, now))
        }
        guard let evictAfter = self.limits.evictAfter,
            let (oldestID, oldest) = self.longestIdle(evictableAfter: evictAfter, at: now, where: { _ in true })
        else {
            return .refused(.full(capacity: self.limits.capacity))
        }
        self.remove(oldestID)
        return .admittedEvicting(self.insert(occupant, address, now), evicted: oldest.occupant)
    }

    /// The holder idle longest among those `matching`, if it has been idle `after` or more.
    private func longestIdle(
        evictableAfter after: Duration, at now: ContinuousClock.Instant, where matching: (Holder) -> Bool
    ) -> (UInt64, Holder)? {
        var best: (UInt64, Holder, ContinuousClock.Instant)?
        for (id, holder) in self.holders where matching(holder) {
            guard let since = holder.idleSince, since + after <= now else { continue }
            if let current = best, current.2 <= since { continue }
            best = (id, holder, since)
        }
        return best.map { ($0.0, $0.1) }
    }

    /// The connection is being served (a request is in progress): it cannot be evicted.
    public mutating func markBusy(_ ticket: Ticket) {
        self.holders[ticket.id]?.idleSince = nil
    }

    /// The connection waits for its peer from `now` on: it may be evicted.
    public mutating func markIdle(_ ticket: Ticket, at now: ContinuousClock.Instant) {
        self.holders[ticket.id]?.idleSince = now
    }

    /// Whether `ticket` still holds its slot (it was neither released nor evicted).
    public func holds(_ ticket: Ticket) -> Bool { self.holders[ticket.id] != nil }

    /// Frees a slot. Releasing a ticket twice, or one that was evicted, does nothing.
    public mutating func release(_ ticket: Ticket) {
        self.remove(ticket.id)
    }

    private mutating func insert(_ occupant: Occupant, _ address: String, _ now: ContinuousClock.Instant) -> Ticket {
        self.nextID += 1
        self.holders[self.nextID] = Holder(address: address, occupant: occupant, idleSince: now)
        self.perAddress[address, default: 0] += 1
        return Ticket(id: self.nextID)
    }

    private mutating func remove(_ id: UInt64) {
        guard let holder = self.holders.removeValue(forKey: id) else { return }
        let remaining = self.perAddress[holder.address, default: 1] - 1
        self.perAddress[holder.address] = remaining > 0 ? remaining : nil
    }
}

extension ConnectionSlots: Sendable where Occupant: Sendable {}
extension ConnectionSlots.Holder: Sendable where Occupant: Sendable {}
extension ConnectionSlots.Admission: Sendable where Occupant: Sendable {}

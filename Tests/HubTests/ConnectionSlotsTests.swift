import ListenerLimits
import NIOCore
import Testing

@Suite struct ConnectionSlotsTests {
    private let start = ContinuousClock.now

    @Test func aFullAddressGivesItsLongestIdleSlotToItsNewcomer() {
        var slots = ConnectionSlots<Int>(limits: .init(capacity: 100, perAddress: 2, evictWithinAddressAfter: .seconds(1)))
        guard case .admitted = slots.admit(1, from: "nat", at: self.start),
            case .admitted = slots.admit(2, from: "nat", at: self.start + .milliseconds(100))
        else {
            Issue.record("the first two are admitted")
            return
        }
        // Too young to evict: refused.
        guard case .refused(.addressFull) = slots.admit(3, from: "nat", at: self.start + .milliseconds(500)) else {
            Issue.record("a newcomer does not evict a connection younger than a second")
            return
        }
        // Old enough: the longest idle of that address goes, not anyone else's.
        guard case .admitted = slots.admit(9, from: "other", at: self.start) else {
            Issue.record("another address has its own slots")
            return
        }
        guard case .admittedEvicting(_, let evicted) = slots.admit(4, from: "nat", at: self.start + .seconds(2)) else {
            Issue.record("the newcomer takes the slot of the longest idle")
            return
        }
        #expect(evicted == 1)
        #expect(slots.count(from: "nat") == 2)
        #expect(slots.count == 3)
    }

    @Test func aBusyConnectionIsNeverEvicted() {
        var slots = ConnectionSlots<Int>(limits: .init(capacity: 2, evictAfter: .seconds(1)))
        guard case .admitted(let busy) = slots.admit(1, from: "a", at: self.start),
            case .admitted = slots.admit(2, from: "b", at: self.start + .milliseconds(10))
        else {
            Issue.record("admitted")
            return
        }
        slots.markBusy(busy)
        guard case .admittedEvicting(_, let evicted) = slots.admit(3, from: "c", at: self.start + .seconds(5)) else {
            Issue.record("the idle one is evicted")
            return
        }
        #expect(evicted == 2)
        guard case .refused(.full) = slots.admit(4, from: "d", at: self.start + .seconds(5)) else {
            Issue.record("the busy one and the newcomer are not evicted yet")
            return
        }
        slots.release(busy)
        slots.release(busy)
        #expect(slots.count == 1)
    }

    @Test func addressesAreCountedByIPv4OrIPv6Prefix() throws {
        #expect(try SocketAddress(ipAddress: "192.0.2.7", port: 1).slotKey == "192.0.2.7")
        #expect(try SocketAddress(ipAddress: "::ffff:192.0.2.7", port: 1).slotKey == "192.0.2.7")
        let one = try SocketAddress(ipAddress: "2001:db8:1:2::1", port: 1).slotKey
        let other = try SocketAddress(ipAddress: "2001:db8:1:2:ffff::9", port: 1).slotKey
        #expect(one == other)
        #expect(one == "2001:db8:1:2::/64")
        #expect(try SocketAddress(ipAddress: "2001:db8:1:3::1", port: 1).slotKey != one)
    }
}

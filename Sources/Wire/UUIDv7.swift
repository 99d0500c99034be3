#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A generator of UUID version 7 ids (RFC 9562): 48 bits of Unix milliseconds, then a
/// 12-bit counter, then 62 random bits.
///
/// Ids from one generator are strictly increasing, also when several are made in the same
/// millisecond (the counter, RFC 9562 §6.2 method 1) and when the clock steps back (the last
/// timestamp is kept). When the counter runs out within a millisecond the timestamp moves
/// one millisecond ahead. The generator is a value type: share one behind a lock.
public struct UUIDv7: Sendable {
    private var lastMilliseconds: Int64 = -1
    private var counter: UInt16 = 0

    /// Creates a generator.
    public init() {}

    /// Makes the next id for the time `milliseconds` since the Unix epoch.
    public mutating func next(milliseconds: Int64) -> UUID {
        var rng = SystemRandomNumberGenerator()
        return self.next(milliseconds: milliseconds, using: &rng)
    }

    /// Makes the next id, drawing randomness from `rng` (tests pass a seeded generator).
    public mutating func next<R: RandomNumberGenerator>(milliseconds: Int64, using rng: inout R) -> UUID {
        let now = max(milliseconds, 0) & 0xFFFF_FFFF_FFFF
        if now > self.lastMilliseconds {
            self.lastMilliseconds = now
            // Start low in the 12-bit space so many ids fit in one millisecond.
            self.counter = UInt16.random(in: 0..<0x800, using: &rng)
        } else if self.counter < 0xFFF {
            self.counter += 1
        } else {
            self.lastMilliseconds += 1
            self.counter = 0
        }
        let ms = UInt64(self.lastMilliseconds)
        let high = ms << 16 | 0x7000 | UInt64(self.counter)
        let low = (rng.next() & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000
        return Self.uuid(high: high, low: low)
    }

    /// A version 7 id for `milliseconds` whose other 74 bits come from `seed` (say, 16 bytes
    /// of a hash): the same inputs give the same id, so a retried request can be answered
    /// with the ids it got the first time.
    public static func derived(milliseconds: Int64, seed: some Sequence<UInt8>) -> UUID {
        var bits = Array(seed.prefix(10))
        while bits.count < 10 { bits.append(0) }
        let ms = UInt64(max(milliseconds, 0) & 0xFFFF_FFFF_FFFF)
        let counter = (UInt64(bits[0]) << 8 | UInt64(bits[1])) & 0xFFF
        let random = bits[2...].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return Self.uuid(high: ms << 16 | 0x7000 | counter, low: (random & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000)
    }

    /// Whether `id` has version 7 and the RFC 9562 variant.
    public static func isVersion7(_ id: UUID) -> Bool {
        id.uuid.6 >> 4 == 7 && id.uuid.8 >> 6 == 0b10
    }

    /// The millisecond timestamp inside a version 7 id.
    public static func milliseconds(of id: UUID) -> Int64 {
        let u = id.uuid
        var ms: Int64 = 0
        for byte in [u.0, u.1, u.2, u.3, u.4, u.5] {
            ms = ms << 8 | Int64(byte)
        }
        return ms
    }

    static func uuid(high: UInt64, low: UInt64) -> UUID {
        let h = high.bigEndian
        let l = low.bigEndian
        var value: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &value) { out in
            withUnsafeBytes(of: h) { UnsafeMutableRawBufferPointer(rebasing: out[0..<8]).copyMemory(from: $0) }
            withUnsafeBytes(of: l) { UnsafeMutableRawBufferPointer(rebasing: out[8..<16]).copyMemory(from: $0) }
        }
        return UUID(uuid: value)
    }
}

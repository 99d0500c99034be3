import Agent
import Testing

/// A seeded generator, so jittered delays are exact in tests.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite struct BackoffTests {
    @Test func theCeilingDoublesUpToTheMaximumAndResets() {
        var backoff = Backoff(initial: .milliseconds(100), maximum: .seconds(1))
        var rng = SplitMix64(state: 1)
        var ceilings: [Duration] = []
        for _ in 0..<6 {
            ceilings.append(backoff.ceiling)
            _ = backoff.next(using: &rng)
        }
        #expect(ceilings == [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800), .seconds(1), .seconds(1)])
        backoff.reset()
        #expect(backoff.ceiling == .milliseconds(100))
    }

    @Test func delaysAreSpreadBetweenZeroAndTheCeiling() {
        var rng = SplitMix64(state: 42)
        var delays: [Duration] = []
        for _ in 0..<200 {
            var backoff = Backoff(initial: .seconds(1), maximum: .seconds(1))
            delays.append(backoff.next(using: &rng))
        }
        #expect(delays.allSatisfy { $0 >= .zero && $0 <= .seconds(1) })
        // Full jitter: a fleet does not come back in lockstep.
        #expect(delays.contains { $0 < .milliseconds(250) })
        #expect(delays.contains { $0 > .milliseconds(750) })
    }
}

@Suite struct HubAddressTests {
    @Test func addressesParseWithIPv6Brackets() throws {
        #expect(try HubAddress(parsing: "hub.example.net:7443") == HubAddress(host: "hub.example.net", port: 7443))
        #expect(try HubAddress(parsing: "[::1]:7443") == HubAddress(host: "::1", port: 7443))
        #expect(HubAddress(host: "::1", port: 7443).description == "[::1]:7443")
    }

    @Test(arguments: ["hub", "hub:", ":7443", "hub:0", "hub:70000", "hub:port", "a b:1"])
    func badAddressesAreRefusedNamingTheText(_ text: String) {
        #expect(throws: HubAddressError(text: text)) { try HubAddress(parsing: text) }
    }
}

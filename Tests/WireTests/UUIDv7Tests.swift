import Foundation
import Testing
import Wire

@Suite struct UUIDv7Tests {
    private func compare(_ a: UUID, _ b: UUID) -> Bool {
        withUnsafeBytes(of: a.uuid) { pa in withUnsafeBytes(of: b.uuid) { pb in pa.lexicographicallyPrecedes(pb) } }
    }

    @Test func idsCarryVersionVariantAndTime() {
        var generator = UUIDv7()
        let id = generator.next(milliseconds: 1_733_047_200_123)
        #expect(UUIDv7.isVersion7(id))
        #expect(UUIDv7.milliseconds(of: id) == 1_733_047_200_123)
        #expect(!UUIDv7.isVersion7(UUID()))
    }

    @Test func idsStrictlyIncreaseWithinOneMillisecondAndWhenTheClockStepsBack() {
        var generator = UUIDv7()
        var previous = generator.next(milliseconds: 5_000)
        // 10,000 ids in one millisecond overflow the 12-bit counter; then the clock goes back.
        let times = Array(repeating: Int64(5_000), count: 10_000) + [4_000, 4_000, 6_000]
        for ms in times {
            let next = generator.next(milliseconds: ms)
            #expect(self.compare(previous, next), "\(previous) !< \(next)")
            #expect(UUIDv7.isVersion7(next))
            previous = next
        }
        #expect(UUIDv7.milliseconds(of: previous) >= 6_000)
    }
}

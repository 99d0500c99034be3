import Benchmark
import Crypto
import Foundation
import NIOCore
import Wire

// Typical records: a kiosk smiley (no comment) and a popup NPS (customer, comment on one in
// three, two attributes), alternating, 1,000 to a batch, as agents seal them.
private let origin = UUID(uuidString: "0193a1b2-c3d4-7e5f-8a6b-7c8d9e0fa1b2")!
private let key = try! Curve25519.Signing.PrivateKey(rawRepresentation: Array(UInt8(1)...UInt8(32)))
private let recordsPerBatch = 1_000

private func typicalRecords(_ count: Int) -> [FeedbackRecord] {
    var ids = UUIDv7()
    let base: Int64 = 1_733_047_200_000
    return (0..<count).map { index in
        let at = base + Int64(index) * 37
        if index % 2 == 0 {
            return FeedbackRecord(
                id: ids.next(milliseconds: at), origin: origin, source: .kiosk, scale: .smiley,
                score: UInt8(index % 4 + 1), occurredAt: at, capturedAt: at + 12,
                site: "branch-\(index % 300)", channel: "kiosk", subject: "till-\(index % 8)",
                topic: "general", survey: "smiley-exit"
            )
        }
        return FeedbackRecord(
            id: ids.next(milliseconds: at), origin: origin, source: .popup, scale: .nps,
            score: UInt8(index % 11), occurredAt: at, capturedAt: at + 40,
            site: "web-eu", channel: "app", subject: "checkout", topic: "billing", survey: "nps-2024q4",
            customer: "cust-\(100_000 + index)",
            comment: index % 3 == 0 ? "Invoice was wrong, fixed quickly though." : "",
            attributes: ["plan": "pro", "locale": "de-DE"]
        )
    }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal, .peakMemoryResident],
        warmupIterations: 3,
        maxDuration: .seconds(3),
        maxIterations: 1_000
    )

    // Inputs are made once, outside the measured closures, which run once per iteration.
    let records = typicalRecords(recordsPerBatch)
    let batch = try! BatchSealer(origin: origin, signingKey: key).seal(records, sequence: 1)
    var plain = ByteBuffer()
    for record in records { RecordCodec.encode(record, into: &plain) }
    var wire = ByteBuffer()
    Frame.batch(batch).write(into: &wire)
    let payload = plain
    let frameBytes = wire
    let ratio = Double(payload.readableBytes) / Double(batch.header.compressedLength)
    print("typical record: \(payload.readableBytes / recordsPerBatch) bytes encoded, "
        + "\(Double(batch.bytes.readableBytes) / Double(recordsPerBatch)) bytes sealed; zstd(3) ratio \(ratio)")

    // One iteration = one batch of 1,000 records: records/s = throughput × 1,000.
    Benchmark("Seal: encode + zstd(3) + Ed25519, 1000 records") { benchmark in
        let sealer = BatchSealer(origin: origin, signingKey: key)
        var sequence: UInt64 = 0
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            sequence += 1
            blackHole(try sealer.seal(records, sequence: sequence))
        }
    }

    Benchmark("Open: verify + unzstd + decode + validate, 1000 records") { benchmark in
        let limits = BatchLimits()
        let decompressor = ZstdDecompressor()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(try batch.open(verifyingWith: key.publicKey, limits: limits, decompressor: decompressor))
        }
    }

    Benchmark("Decode + validate only, 1000 records") { benchmark in
        for _ in benchmark.scaledIterations {
            var reader = payload
            for _ in 0..<recordsPerBatch {
                blackHole(try RecordCodec.decode(from: &reader, origin: origin))
            }
        }
    }

    Benchmark("Frame read: BATCH of 1000 records") { benchmark in
        let limits = FrameLimits()
        for _ in benchmark.scaledIterations {
            var reader = frameBytes
            blackHole(try Frame.read(from: &reader, limits: limits))
        }
    }
}

import Foundation
import NIOCore
import TestSupport
import Testing
import Wire

/// The test vectors of docs/PROTOCOL.md, checked in both directions: the fixture bytes decode
/// to the sample values, and the sample values encode to the fixture bytes.
///
/// `FEEDBACKMESH_WRITE_FIXTURES=1 swift test --filter FixtureTests` rewrites the files from the
/// samples (after a deliberate format change); docs/PROTOCOL.md must then be updated too,
/// which `protocolDocumentQuotesEveryVector` enforces.
@Suite struct FixtureTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static let protocolDocument = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("docs/PROTOCOL.md")
    static let writing = ProcessInfo.processInfo.environment["FEEDBACKMESH_WRITE_FIXTURES"] == "1"

    /// zstd output is pinned only for the library version that wrote the fixtures.
    static let zstdVersionFile = "zstd-version.txt"

    static func vectors() throws -> [(name: String, bytes: [UInt8])] {
        var vectors: [(String, [UInt8])] = []
        for (name, record) in [("record-kiosk", Samples.kioskRecord(0)), ("record-popup", Samples.popupRecord(0))] {
            var buffer = ByteBuffer()
            RecordCodec.encode(record, into: &buffer)
            vectors.append((name, Array(buffer.readableBytesView)))
        }
        for frame in try SampleFrames.all() {
            vectors.append(("frame-\(frame.type)", Array(Samples.bytes(of: frame).readableBytesView)))
        }
        return vectors
    }

    static func read(_ name: String) throws -> [UInt8] {
        let text = try String(contentsOf: directory.appendingPathComponent("\(name).hex"), encoding: .utf8)
        guard let bytes = [UInt8](hexString: text) else { throw WireError(.truncated, "\(name).hex is not hex") }
        return bytes
    }

    static func hexLines(_ bytes: [UInt8]) -> String {
        stride(from: 0, to: bytes.count, by: 32).map { Array(bytes[$0..<min($0 + 32, bytes.count)]).hexString }
            .joined(separator: "\n") + "\n"
    }

    @Test func writeFixturesWhenAsked() throws {
        guard Self.writing else { return }
        for (name, bytes) in try Self.vectors() {
            try Self.hexLines(bytes).write(to: Self.directory.appendingPathComponent("\(name).hex"), atomically: true, encoding: .utf8)
        }
        try "\(Zstd.versionNumber)\n".write(
            to: Self.directory.appendingPathComponent(Self.zstdVersionFile),
            atomically: true,
            encoding: .utf8
        )
    }

    @Test func fixturesDecodeToTheSamples() throws {
        for (name, sample) in [("record-kiosk", Samples.kioskRecord(0)), ("record-popup", Samples.popupRecord(0))] {
            var buffer = ByteBuffer(bytes: try Self.read(name))
            #expect(try RecordCodec.decode(from: &buffer, origin: Samples.agentID) == sample)
            #expect(buffer.readableBytes == 0)
        }
        for expected in try SampleFrames.all() {
            var buffer = ByteBuffer(bytes: try Self.read("frame-\(expected.type)"))
            let frame = try #require(try Frame.read(from: &buffer, limits: FrameLimits()))
            #expect(buffer.readableBytes == 0)
            switch (frame, expected) {
            case (.hello(let hello), .hello(let sample)):
                try hello.verifyProof(for: Samples.challenge)
                #expect(hello.nodeID == sample.nodeID && hello.publicKey == sample.publicKey)
                #expect(hello.enrollmentToken == sample.enrollmentToken && hello.keyID == sample.keyID)
            case (.batch(let batch), .batch):
                let records = try batch.open(
                    verifyingWith: Samples.agentKey.publicKey,
                    limits: BatchLimits(),
                    decompressor: ZstdDecompressor()
                )
                #expect(records == [Samples.kioskRecord(0), Samples.popupRecord(1)])
            case (.enroll(let request), .enroll(let sample)):
                try request.hello.verifyProof(for: request.challenge)
                #expect(request.challenge == sample.challenge && request.hello.nodeID == sample.hello.nodeID)
            case (.status(let report), .status(let sample)):
                #expect(try report.verified(by: Samples.agentKey.publicKey) == (try sample.verified(by: Samples.agentKey.publicKey)))
                #expect(report.sentAt == sample.sentAt && report.nodeID == sample.nodeID)
            case (.forward(let forwarded), .forward(let sample)):
                #expect(forwarded.path == sample.path)
                let records = try forwarded.batch.open(
                    verifyingWith: Samples.agentKey.publicKey, limits: BatchLimits(), decompressor: ZstdDecompressor()
                )
                #expect(records == [Samples.kioskRecord(0), Samples.popupRecord(1)])
            default:
                #expect(frame == expected)
            }
        }
    }

    @Test func samplesEncodeToTheFixtures() throws {
        guard !Self.writing else { return }
        let zstdPinned = try String(
            contentsOf: Self.directory.appendingPathComponent(Self.zstdVersionFile),
            encoding: .utf8
        ).trimmingCharacters(in: .whitespacesAndNewlines) == String(Zstd.versionNumber)
        #if canImport(CryptoKit)
        let ed25519Pinned = false  // CryptoKit's Ed25519 signatures are randomised.
        #else
        let ed25519Pinned = true  // BoringSSL follows RFC 8032: deterministic.
        #endif
        for (name, bytes) in try Self.vectors() {
            let fixture = try Self.read(name)
            switch name {
            case "frame-hello" where !ed25519Pinned, "frame-status" where !ed25519Pinned, "frame-enroll" where !ed25519Pinned:
                #expect(bytes.dropLast(64) == fixture.dropLast(64))
            case "frame-batch" where !(zstdPinned && ed25519Pinned):
                // Header up to the lengths, which depend on the zstd version, must match.
                #expect(bytes.prefix(5 + 41) == fixture.prefix(5 + 41), "\(name)")
            case "frame-forward" where !(zstdPinned && ed25519Pinned):
                #expect(bytes.prefix(5 + 17 + 41) == fixture.prefix(5 + 17 + 41), "\(name)")
            default:
                #expect(bytes == fixture, "\(name) differs from Fixtures/\(name).hex")
            }
        }
    }

    @Test func protocolDocumentQuotesEveryVector() throws {
        let document = try String(contentsOf: Self.protocolDocument, encoding: .utf8)
        for (name, _) in try Self.vectors() {
            let marker = "<!-- vector: \(name) -->"
            let parts = document.components(separatedBy: marker)
            try #require(parts.count == 2, "docs/PROTOCOL.md must quote \(name) exactly once")
            let afterMarker = parts[1]
            let fenceStart = try #require(afterMarker.range(of: "```hex\n"))
            let rest = afterMarker[fenceStart.upperBound...]
            let fenceEnd = try #require(rest.range(of: "```"))
            let quoted = [UInt8](hexString: rest[..<fenceEnd.lowerBound])
            #expect(quoted == (try Self.read(name)), "docs/PROTOCOL.md quotes \(name) differently from Fixtures/\(name).hex")
        }
    }
}

import Crypto
import Foundation
import NIOCore
import FuzzSupport
import Wire

// Drives the batch opener past the signature check, which a fuzzer cannot forge: the harness
// signs what the fuzzer wrote. Input: byte 0 selects the mode, bytes 1–2 the record count,
// bytes 3–6 the declared uncompressed length, the rest the payload.
//   mode even: the payload is used as the compressed bytes (zstd decoder and caps).
//   mode odd:  the harness compresses the payload first, so the record decoder sees
//              fuzzer-chosen records inside a valid zstd frame.
private let signingKey = try! Curve25519.Signing.PrivateKey(rawRepresentation: Array(UInt8(1)...UInt8(32)))
private let origin = UUID(uuidString: "0193a1b2-c3d4-7e5f-8a6b-7c8d9e0fa1b2")!
private let limits = BatchLimits()
// libFuzzer calls the entry point from one thread only.
nonisolated(unsafe) private let compressor = ZstdCompressor(level: 1)
nonisolated(unsafe) private let decompressor = ZstdDecompressor()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzBatch(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let input = UnsafeBufferPointer(start: start, count: count)
    guard input.count >= 7 else { return 0 }
    let mode = input[0]
    let recordCount = UInt32(input[1]) << 8 | UInt32(input[2])
    var declared = input[3..<7].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
    var payload = ByteBuffer(bytes: input[7...])
    if mode & 1 == 1 {
        var compressed = ByteBuffer()
        guard (try? compressor.compress(payload, into: &compressed)) != nil else { return 0 }
        declared = UInt32(truncatingIfNeeded: payload.readableBytes)
        payload = compressed
    }
    let header = BatchHeader(
        origin: origin,
        sequence: 1,
        keyID: KeyID(signingKey.publicKey),
        recordCount: recordCount,
        uncompressedLength: declared,
        compressedLength: UInt32(truncatingIfNeeded: payload.readableBytes)
    )
    var bytes = ByteBuffer()
    header.write(into: &bytes)
    bytes.writeImmutableBuffer(payload)
    guard let signature = bytes.withUnsafeReadableBytes({ try? signingKey.signature(for: $0) }) else { return 0 }
    bytes.writeBytes(signature)
    guard let batch = try? SealedBatch(parsing: bytes) else { return 0 }
    guard let records = try? batch.open(verifyingWith: signingKey.publicKey, limits: limits, decompressor: decompressor) else {
        return 0
    }
    // Anything that opened must be valid and re-encode to the same payload.
    var again = ByteBuffer()
    for record in records {
        precondition((try? record.validate()) != nil, "opened an invalid record")
        RecordCodec.encode(record, into: &again)
    }
    precondition(again.readableBytes == Int(declared), "re-encoded payload differs in length")
    return 0
}

@_cdecl("FuzzBatch_main")
public func FuzzBatchMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv, fuzzBatch)
}

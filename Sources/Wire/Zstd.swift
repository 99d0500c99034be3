import CZstd
import NIOCore

/// A zstd compression context, reused across batches. Not thread-safe: one per thread or task.
public final class ZstdCompressor {
    private let context: OpaquePointer
    /// The zstd level, 1 (fastest) to 19.
    public let level: Int32

    /// Creates a compressor at `level` (clamped to 1...19).
    public init(level: Int32 = 3) {
        // ZSTD_createCCtx fails only when out of memory, which we treat like any allocation.
        guard let context = ZSTD_createCCtx() else { preconditionFailure("ZSTD_createCCtx: out of memory") }
        self.context = context
        self.level = min(max(level, 1), 19)
    }

    deinit { ZSTD_freeCCtx(self.context) }

    /// Compresses the readable bytes of `input` into one zstd frame that records its content
    /// size, appending it to `output`. Returns the number of bytes written.
    @discardableResult
    public func compress(_ input: ByteBuffer, into output: inout ByteBuffer) throws -> Int {
        let bound = ZSTD_compressBound(input.readableBytes)
        return try input.withUnsafeReadableBytes { source in
            try output.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { destination in
                let result = ZSTD_compressCCtx(
                    self.context,
                    destination.baseAddress,
                    destination.count,
                    source.baseAddress,
                    source.count,
                    self.level
                )
                if ZSTD_isError(result) != 0 {
                    throw WireError(.decompressionFailed, field: "payload", "zstd compression failed: \(Zstd.errorName(result))")
                }
                return result
            }
        }
    }

    /// Writes the readable bytes of `input` as one zstd frame of stored (raw) blocks, which
    /// every zstd decoder reads, appending it to `output`. Returns the number of bytes written.
    ///
    /// For payloads so repetitive that compressing them would exceed a receiver's
    /// compression-ratio limit (which is there to refuse zstd bombs): stored, they expand by
    /// nothing.
    @discardableResult
    public static func store(_ input: ByteBuffer, into output: inout ByteBuffer) -> Int {
        let start = output.writerIndex
        // Frame header: magic, descriptor (single segment, 8-byte content size), content size.
        output.writeInteger(UInt32(0xFD2F_B528), endianness: .little)
        output.writeInteger(UInt8(0xE0))
        output.writeInteger(UInt64(input.readableBytes), endianness: .little)
        var rest = input
        repeat {
            let size = min(rest.readableBytes, Self.maximumBlockSize)
            let last: UInt32 = size == rest.readableBytes ? 1 : 0
            // Block header: last-block bit, type 0 (raw), 21-bit size; three bytes little-endian.
            let blockHeader = last | UInt32(size) << 3
            output.writeInteger(UInt8(truncatingIfNeeded: blockHeader))
            output.writeInteger(UInt8(truncatingIfNeeded: blockHeader >> 8))
            output.writeInteger(UInt8(truncatingIfNeeded: blockHeader >> 16))
            var block = rest.readSlice(length: size)!
            output.writeBuffer(&block)
        } while rest.readableBytes > 0
        return output.writerIndex - start
    }

    /// The largest block a zstd frame may hold (128 KiB).
    static let maximumBlockSize = 128 * 1024
}

/// A zstd decompression context with bounded output. Not thread-safe: one per thread or task.
public final class ZstdDecompressor {
    private let context: OpaquePointer
    // Reused output buffer: batches are opened one after another, and a fresh buffer of the
    // payload's size per batch costs page faults.
    private var scratch = ByteBuffer()

    /// Creates a decompressor. It decompresses in one shot into a buffer of the declared
    /// length, so its memory is bounded by that length, whatever window the frame asks for.
    public init() {
        guard let context = ZSTD_createDCtx() else { preconditionFailure("ZSTD_createDCtx: out of memory") }
        self.context = context
    }

    deinit { ZSTD_freeDCtx(self.context) }

    /// Decompresses `input` like ``decompress(_:expectedLength:into:)`` into a buffer this
    /// decompressor reuses, and passes the bytes to `body`. They are valid only inside `body`.
    public func withDecompressed<T>(
        _ input: ByteBuffer,
        expectedLength: Int,
        _ body: (ByteBuffer) throws -> T
    ) throws -> T {
        var output = ByteBuffer()
        swap(&output, &self.scratch)
        defer {
            output.clear()
            swap(&output, &self.scratch)
        }
        try self.decompress(input, expectedLength: expectedLength, into: &output)
        return try body(output)
    }

    /// Decompresses `input`, which must expand to exactly `expectedLength` bytes, appending
    /// them to `output`. Never writes more than `expectedLength` bytes: a payload that would
    /// expand further fails instead (the zstd bomb case).
    public func decompress(_ input: ByteBuffer, expectedLength: Int, into output: inout ByteBuffer) throws {
        let declared = input.withUnsafeReadableBytes { ZSTD_getFrameContentSize($0.baseAddress, $0.count) }
        // Both "unknown" and "error" are values above any Int we accept.
        guard declared == UInt64(expectedLength) else {
            throw WireError(
                .decompressionFailed,
                field: "payload",
                "zstd frame content size does not match the declared uncompressed length \(expectedLength)"
            )
        }
        let frameLength = input.withUnsafeReadableBytes { ZSTD_findFrameCompressedSize($0.baseAddress, $0.count) }
        guard ZSTD_isError(frameLength) == 0, frameLength == input.readableBytes else {
            throw WireError(.decompressionFailed, field: "payload", "payload is not exactly one zstd frame")
        }
        if expectedLength == 0 { return }
        try input.withUnsafeReadableBytes { source in
            _ = try output.writeWithUnsafeMutableBytes(minimumWritableBytes: expectedLength) { destination in
                let result = ZSTD_decompressDCtx(
                    self.context,
                    destination.baseAddress,
                    expectedLength,
                    source.baseAddress,
                    source.count
                )
                if ZSTD_isError(result) != 0 {
                    throw WireError(.decompressionFailed, field: "payload", "zstd: \(Zstd.errorName(result))")
                }
                guard result == expectedLength else {
                    throw WireError(
                        .decompressionFailed,
                        field: "payload",
                        "payload decompressed to \(result) bytes, declared \(expectedLength)"
                    )
                }
                return result
            }
        }
    }
}

/// Facts about the linked libzstd.
public enum Zstd {
    /// The linked library's version number, e.g. 10504 for 1.5.4.
    public static var versionNumber: Int { Int(ZSTD_versionNumber()) }

    static func errorName(_ code: Int) -> String {
        String(cString: ZSTD_getErrorName(code))
    }
}

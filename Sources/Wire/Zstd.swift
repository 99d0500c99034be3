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

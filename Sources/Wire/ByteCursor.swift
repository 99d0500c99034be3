#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A bounds-checked, big-endian reader over raw bytes: the hot path for record decoding.
///
/// Reading a batch payload through one `withUnsafeReadableBytes` call and this cursor avoids
/// a `ByteBuffer` access per field. Every read checks the remaining length first and throws
/// ``WireError`` rather than reading past the end.
struct ByteCursor {
    let bytes: UnsafeRawBufferPointer
    private(set) var offset = 0

    init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    var remaining: Int { self.bytes.count - self.offset }

    mutating func integer<T: FixedWidthInteger>(_: T.Type, _ field: String) throws -> T {
        let size = MemoryLayout<T>.size
        guard self.remaining >= size else { throw WireError.truncated(field) }
        let value = self.bytes.loadUnaligned(fromByteOffset: self.offset, as: T.self)
        self.offset += size
        return T(bigEndian: value)
    }

    mutating func uuid(_ field: String) throws -> UUID {
        guard self.remaining >= 16 else { throw WireError.truncated(field) }
        let value = self.bytes.loadUnaligned(fromByteOffset: self.offset, as: uuid_t.self)
        self.offset += 16
        return UUID(uuid: value)
    }

    /// A string of `length` bytes, which must be valid UTF-8.
    mutating func string(length: Int, _ field: String) throws -> String {
        if length == 0 { return "" }
        guard self.remaining >= length else { throw WireError.truncated(field) }
        let slice = UnsafeRawBufferPointer(rebasing: self.bytes[self.offset..<(self.offset + length)])
        guard let string = Self.validatedUTF8(slice.assumingMemoryBound(to: UInt8.self)) else {
            throw WireError(.invalidUTF8, field: field, "\(field) is not valid UTF-8")
        }
        self.offset += length
        return string
    }

    /// A string preceded by a one-byte length, at most `max` bytes.
    mutating func string8(_ field: String, max: Int) throws -> String {
        let length = Int(try self.integer(UInt8.self, field))
        guard length <= max else { throw WireError.length(field, length, max: max) }
        return try self.string(length: length, field)
    }

    /// A string preceded by a two-byte length, at most `max` bytes.
    mutating func string16(_ field: String, max: Int) throws -> String {
        let length = Int(try self.integer(UInt16.self, field))
        guard length <= max else { throw WireError.length(field, length, max: max) }
        return try self.string(length: length, field)
    }

    /// Decodes UTF-8, refusing invalid input instead of repairing it.
    static func validatedUTF8(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
        // Most fields are ASCII: check that with a plain loop and take the specialised
        // decoding path; `String(validating:)` is generic and several times slower.
        var high: UInt8 = 0
        for byte in bytes { high |= byte }
        if high < 0x80 { return String(decoding: bytes, as: UTF8.self) }
        return String(validating: bytes, as: UTF8.self)
    }
}

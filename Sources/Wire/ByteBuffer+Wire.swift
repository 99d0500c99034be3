import NIOCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

// Reading helpers shared by the record, batch and frame codecs. They read through a
// ``ByteCursor``: a missing byte is `truncated`, a length off the wire is checked against
// its maximum before anything is allocated, and strings must be valid UTF-8. On a throw
// the reader index does not move.
extension ByteBuffer {
    /// Runs `body` over the readable bytes, then consumes what it read.
    mutating func readWithCursor<T>(_ body: (inout ByteCursor) throws -> T) throws -> T {
        let (value, consumed) = try self.withUnsafeReadableBytes { raw in
            var cursor = ByteCursor(raw)
            let value = try body(&cursor)
            return (value, cursor.offset)
        }
        self.moveReaderIndex(forwardBy: consumed)
        return value
    }

    mutating func readWire<T: FixedWidthInteger>(_ type: T.Type, _ field: String) throws -> T {
        try self.readWithCursor { try $0.integer(type, field) }
    }

    mutating func readUUID(_ field: String) throws -> UUID {
        try self.readWithCursor { try $0.uuid(field) }
    }

    /// Reads a string preceded by a one-byte length, at most `max` bytes.
    mutating func readString8(_ field: String, max: Int) throws -> String {
        try self.readWithCursor { try $0.string8(field, max: max) }
    }

    /// Reads a string preceded by a two-byte length, at most `max` bytes.
    mutating func readString16(_ field: String, max: Int) throws -> String {
        try self.readWithCursor { try $0.string16(field, max: max) }
    }

    @discardableResult
    mutating func writeUUID(_ uuid: UUID) -> Int {
        withUnsafeBytes(of: uuid.uuid) { self.writeBytes($0) }
    }

    /// Writes a string with a one-byte length. The caller has checked `utf8.count <= 255`.
    mutating func writeString8(_ string: String) {
        self.writeInteger(UInt8(truncatingIfNeeded: string.utf8.count))
        self.writeString(string)
    }

    /// Writes a string with a two-byte length. The caller has checked `utf8.count <= 65535`.
    mutating func writeString16(_ string: String) {
        self.writeInteger(UInt16(truncatingIfNeeded: string.utf8.count))
        self.writeString(string)
    }

    /// Reads exactly `count` raw bytes.
    mutating func readWireBytes(_ count: Int, _ field: String) throws -> [UInt8] {
        guard let bytes = self.readBytes(length: count) else { throw WireError.truncated(field) }
        return bytes
    }

    /// Throws unless every byte has been read.
    func expectFullyRead(_ what: String) throws {
        guard self.readableBytes == 0 else {
            throw WireError(.trailingBytes, field: what, "\(self.readableBytes) unexpected bytes after \(what)")
        }
    }
}

extension Array where Element == UInt8 {
    /// Lower-case hex, two digits a byte.
    package var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(self.count * 2)
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Parses hex digits, ignoring white space; nil on any other character or an odd count.
    package init?(hexString: some StringProtocol) {
        var bytes = [UInt8]()
        var high: UInt8?
        for scalar in hexString.unicodeScalars {
            let nibble: UInt8
            switch scalar {
            case "0"..."9": nibble = UInt8(scalar.value - 48)
            case "a"..."f": nibble = UInt8(scalar.value - 87)
            case "A"..."F": nibble = UInt8(scalar.value - 55)
            case " ", "\n", "\t", "\r": continue
            default: return nil
            }
            if let h = high {
                bytes.append(h << 4 | nibble)
                high = nil
            } else {
                high = nibble
            }
        }
        guard high == nil else { return nil }
        self = bytes
    }
}

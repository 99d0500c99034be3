import Foundation
import NIOCore

// Reading helpers shared by the record, batch and frame codecs. Every read is checked:
// a missing byte is `truncated`, a length off the wire is checked against its maximum
// before anything is allocated, and strings must be valid UTF-8.
extension ByteBuffer {
    mutating func readWire<T: FixedWidthInteger>(_: T.Type, _ field: String) throws -> T {
        guard let value = self.readInteger(as: T.self) else { throw WireError.truncated(field) }
        return value
    }

    mutating func readUUID(_ field: String) throws -> UUID {
        guard self.readableBytes >= 16 else { throw WireError.truncated(field) }
        let uuid = self.readWithUnsafeReadableBytes { raw -> (Int, uuid_t) in
            var value: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            withUnsafeMutableBytes(of: &value) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[0..<16])) }
            return (16, value)
        }
        return UUID(uuid: uuid)
    }

    @discardableResult
    mutating func writeUUID(_ uuid: UUID) -> Int {
        withUnsafeBytes(of: uuid.uuid) { self.writeBytes($0) }
    }

    /// Reads `length` bytes as a UTF-8 string, refusing invalid UTF-8.
    mutating func readValidatedString(length: Int, _ field: String) throws -> String {
        if length == 0 { return "" }
        guard self.readableBytes >= length else { throw WireError.truncated(field) }
        let string = self.withUnsafeReadableBytes { raw in
            String(validating: raw[0..<length], as: UTF8.self)
        }
        guard let string else {
            throw WireError(.invalidUTF8, field: field, "\(field) is not valid UTF-8")
        }
        self.moveReaderIndex(forwardBy: length)
        return string
    }

    /// Reads a string preceded by a one-byte length, at most `max` bytes.
    mutating func readString8(_ field: String, max: Int) throws -> String {
        let length = Int(try self.readWire(UInt8.self, field))
        guard length <= max else { throw WireError.length(field, length, max: max) }
        return try self.readValidatedString(length: length, field)
    }

    /// Reads a string preceded by a two-byte length, at most `max` bytes.
    mutating func readString16(_ field: String, max: Int) throws -> String {
        let length = Int(try self.readWire(UInt16.self, field))
        guard length <= max else { throw WireError.length(field, length, max: max) }
        return try self.readValidatedString(length: length, field)
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

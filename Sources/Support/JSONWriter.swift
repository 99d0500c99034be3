import Foundation

/// Writes the JSON objects the APIs answer with (`[String: Any]` of strings, integers,
/// doubles, booleans, arrays, objects and `NSNull`), keys sorted, several times faster than
/// `JSONSerialization` on Linux, which casts and bridges every value: a report of a few
/// hundred groups was measured at 49 ms through it (docs/BENCHMARKS.md, "Reports").
///
/// A double that is not finite is written as `null` (JSON has no NaN); a value of any other
/// type makes ``encode(_:)`` return nil, and the caller falls back to `JSONSerialization`.
public enum JSONWriter {
    /// `object` as UTF-8 JSON with sorted keys, or nil when it holds a value of a type this
    /// writer does not know.
    public static func encode(_ object: Any) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(4096)
        return Self.write(object, into: &out) ? out : nil
    }

    /// `object` as JSON with sorted keys: this writer's, or `JSONSerialization`'s for a type
    /// it does not know; `fallback` when neither can write it.
    public static func data(_ object: [String: Any], fallback: String = "{}") -> Data {
        if let bytes = Self.encode(object) { return Data(bytes) }
        guard JSONSerialization.isValidJSONObject(object) else { return Data(fallback.utf8) }
        return (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data(fallback.utf8)
    }

    private static func write(_ value: Any, into out: inout [UInt8]) -> Bool {
        // An NSNumber (from JSONSerialization's parse) casts to Bool and to every number
        // type; what it holds is for JSONSerialization to say.
        if type(of: value) is NSNumber.Type { return false }
        switch value {
        case let text as String:
            Self.append(string: text, to: &out)
        case let flag as Bool:
            out.append(contentsOf: flag ? Array("true".utf8) : Array("false".utf8))
        case let number as Int:
            out.append(contentsOf: String(number).utf8)
        case let number as Int64:
            out.append(contentsOf: String(number).utf8)
        case let number as Int32:
            out.append(contentsOf: String(number).utf8)
        case let number as UInt8:
            out.append(contentsOf: String(number).utf8)
        case let number as UInt64:
            out.append(contentsOf: String(number).utf8)
        case let number as Double:
            Self.write(number: number, into: &out)
        case let object as [String: Any]:
            out.append(UInt8(ascii: "{"))
            for (index, key) in object.keys.sorted().enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                Self.append(string: key, to: &out)
                out.append(UInt8(ascii: ":"))
                guard let member = object[key], Self.write(member, into: &out) else { return false }
            }
            out.append(UInt8(ascii: "}"))
        case let array as [Any]:
            out.append(UInt8(ascii: "["))
            for (index, element) in array.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                guard Self.write(element, into: &out) else { return false }
            }
            out.append(UInt8(ascii: "]"))
        case is NSNull:
            out.append(contentsOf: "null".utf8)
        default:
            return false
        }
        return true
    }

    /// A double in its shortest form that reads back the same (`12.5`, `50`), `null` when not
    /// finite.
    private static func write(number: Double, into out: inout [UInt8]) {
        guard number.isFinite else {
            out.append(contentsOf: "null".utf8)
            return
        }
        if number == number.rounded(), abs(number) < 1e15 {
            out.append(contentsOf: String(Int64(number)).utf8)
        } else {
            out.append(contentsOf: number.description.utf8)
        }
    }

    /// Appends `string` as a quoted JSON string: `"`, `\` and the control characters below
    /// U+0020 escaped (`\n`, `\r`, `\t`, else `\u00XX` in lowercase), every other byte of its
    /// UTF-8 as it is. The hub's attributes column is written with it too.
    public static func append(string: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0A: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0..<0x20:
                out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), 0x30, 0x30, Self.hexDigits[Int(byte >> 4)], Self.hexDigits[Int(byte & 0xF)]])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)
}

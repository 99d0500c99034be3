#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Checks the numbers of a JSON rating (or array of ratings) as written, before it is
/// decoded: Foundation's decoder takes `3.0`, `1e1` and `-0` as the integer 3, 10 and 0, and
/// answers a number too large for a double (`1e309`) with an error that names no field.
///
/// - `score` must be an integer literal: an optional minus, then `0` or digits not starting
///   with `0`, no fraction, no exponent, and not `-0`.
/// - Any number anywhere must fit a double.
///
/// Only what the decoder would take is looked at: a body that is not JSON is left to the
/// decoder's own error. Linear in the body, no allocation per number but the token's text.
public enum StrictJSONNumbers {
    /// A number the rating may not hold: the field it is the value of, and why.
    public struct Problem: Error, Sendable, Hashable, CustomStringConvertible {
        /// The member's name (`score`, `attributes.weight`).
        public var field: String
        /// What is wrong, for the person who sent it.
        public var description: String
    }

    /// Nesting deeper than this is left to the decoder (which refuses it); the scan stops.
    static let maxDepth = 512

    /// The first problem in `body`, if any.
    public static func check(_ body: some Collection<UInt8>) -> Problem? {
        let bytes = Array(body)
        // The path of member names down to the value being read; nil entries are array slots.
        var path: [String?] = []
        // Per open container: whether it is an object, and (objects) whether a key comes next.
        var containers: [(object: Bool, expectingKey: Bool)] = []
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "{") where containers.count >= Self.maxDepth, UInt8(ascii: "[") where containers.count >= Self.maxDepth:
                // Deeper than the decoder goes: its own error answers the body.
                return nil
            case UInt8(ascii: "{"):
                containers.append((true, true))
                path.append(nil)
                index += 1
            case UInt8(ascii: "["):
                containers.append((false, false))
                path.append(nil)
                index += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                guard !containers.isEmpty else { return nil }
                containers.removeLast()
                path.removeLast()
                index += 1
            case UInt8(ascii: ","):
                guard let last = containers.last else { return nil }
                if last.object { containers[containers.count - 1].expectingKey = true }
                index += 1
            case UInt8(ascii: ":"):
                guard let last = containers.last, last.object else { return nil }
                index += 1
            case UInt8(ascii: "\""):
                guard let end = Self.stringEnd(bytes, from: index) else { return nil }
                if let last = containers.last, last.object, last.expectingKey {
                    containers[containers.count - 1].expectingKey = false
                    path[path.count - 1] = Self.decodeKey(bytes[index...end])
                }
                index = end + 1
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                var end = index
                while end < bytes.count, Self.isNumberByte(bytes[end]) { end += 1 }
                let token = String(decoding: bytes[index..<end], as: UTF8.self)
                // A rating's own score: in the top object, or in an object of the top array.
                let isScore = path.last == "score" && (path.count == 1 || (path.count == 2 && path[0] == nil))
                if var problem = Self.problem(token, field: "", isScore: isScore) {
                    problem.field = path.compactMap { $0 }.joined(separator: ".")
                    if !isScore { problem.description = "\(problem.field.isEmpty ? "a number" : problem.field) is too large: \(token.prefix(32))" }
                    return problem
                }
                index = end
            default:
                index += 1
            }
        }
        return nil
    }

    /// Why `token` may not be the value of `field`, if it may not.
    static func problem(_ token: String, field: String, isScore: Bool) -> Problem? {
        if isScore {
            let digits = token.hasPrefix("-") ? token.dropFirst() : token[...]
            let integer = !digits.isEmpty && digits.allSatisfy { ("0"..."9").contains($0) } && (digits == "0" || !digits.hasPrefix("0"))
            guard integer, token != "-0" else {
                return Problem(field: field, description: "score must be a whole number written as one (such as 7), got \(token.prefix(32))")
            }
            guard Int(token) != nil else { return Problem(field: field, description: "score is out of range: \(token.prefix(32))") }
        }
        if let value = Double(token), !value.isFinite {
            return Problem(field: field, description: "\(field.isEmpty ? "a number" : field) is too large: \(token.prefix(32))")
        }
        return nil
    }

    static func isNumberByte(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "+")
            || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E")
    }

    /// The index of the quote that ends the string starting at `start`.
    static func stringEnd(_ bytes: [UInt8], from start: Int) -> Int? {
        var index = start + 1
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: "\\"): index += 2
            case UInt8(ascii: "\""): return index
            default: index += 1
            }
        }
        return nil
    }

    /// One submission from a JSON object, its numbers checked as written first.
    ///
    /// - Throws: ``Problem`` for a score that is not an integer literal or a number out of
    ///   range; the decoder's errors otherwise.
    public static func submission(from json: some Collection<UInt8>) throws -> FeedbackSubmission {
        if let problem = Self.check(json) { throw problem }
        return try JSONDecoder().decode(FeedbackSubmission.self, from: Data(json))
    }

    /// A member name: its text, escapes decoded when it has any.
    static func decodeKey(_ quoted: ArraySlice<UInt8>) -> String {
        guard quoted.contains(UInt8(ascii: "\\")) else { return String(decoding: quoted.dropFirst().dropLast(), as: UTF8.self) }
        return (try? JSONDecoder().decode(String.self, from: Data(quoted))) ?? ""
    }
}

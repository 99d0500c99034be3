import Foundation
import Support
import Testing

@Suite struct JSONWriterTests {
    @Test func whatItWritesReadsBackAsTheSameObject() throws {
        let object: [String: Any] = [
            "text": "quote \" backslash \\ slash / tab \t line\nreturn\r nul \u{0} bell \u{7} Ёлка 😀",
            "int": -42, "int64": Int64.max, "uint8": UInt8(200), "double": 12.34, "whole": 50.0, "tiny": 1e-7, "negative": -0.5,
            "flag": true, "off": false, "null": NSNull(),
            "array": [1, "two", [3.5], ["four": 4]] as [Any], "empty": [:] as [String: Any], "none": [] as [Any],
            "nested": ["b": ["z": 1, "a": 2], "a": [[String: Any]]()],
        ]
        let bytes = try #require(JSONWriter.encode(object))
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
        #expect(parsed["text"] as? String == object["text"] as? String)
        #expect(parsed["int"] as? Int == -42 && parsed["int64"] as? Int64 == Int64.max && parsed["uint8"] as? Int == 200)
        #expect(parsed["double"] as? Double == 12.34 && parsed["whole"] as? Double == 50 && parsed["tiny"] as? Double == 1e-7)
        #expect(parsed["negative"] as? Double == -0.5)
        #expect(parsed["flag"] as? Bool == true && parsed["off"] as? Bool == false && parsed["null"] is NSNull)
        #expect((parsed["array"] as? [Any])?.count == 4 && (parsed["empty"] as? [String: Any])?.isEmpty == true)
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.hasPrefix("{\"array\":[1,\"two\",[3.5],{\"four\":4}],"), "keys sorted, no spaces: \(text)")
        #expect(text.contains("\"nested\":{\"a\":[],\"b\":{\"a\":2,\"z\":1}}"), "nested keys sorted: \(text)")
        #expect(text.contains("\\u0000") && text.contains("\\u0007") && text.contains("\\n") && !text.contains("\n"), "control characters escaped")
    }

    @Test func aNumberThatIsNotFiniteIsNull() throws {
        let bytes = try #require(JSONWriter.encode(["nan": Double.nan, "inf": -Double.infinity]))
        #expect(String(decoding: bytes, as: UTF8.self) == "{\"inf\":null,\"nan\":null}")
    }

    @Test func aValueItDoesNotKnowIsLeftToJSONSerialization() throws {
        #expect(JSONWriter.encode(["date": Date()]) == nil)
        #expect(JSONWriter.encode(["number": NSNumber(value: 1)]) == nil, "an NSNumber's type is not guessed")
        let fallback = JSONWriter.data(["number": NSNumber(value: 7)])
        #expect(String(decoding: fallback, as: UTF8.self) == "{\"number\":7}")
        #expect(String(decoding: JSONWriter.data(["date": Date()]), as: UTF8.self) == "{}", "neither can write it: the fallback")
    }
}

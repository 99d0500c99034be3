import Foundation
import Testing

@testable import Support

/// The bounded configuration reader: hostile files fail fast, with short messages that
/// quote no secret.
@Suite struct ConfigDocumentTests {
    /// The classic "billion laughs": ten levels of nine aliases each.
    static func aliasBomb(key: Bool = false) -> String {
        var lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
        for level in 1...9 {
            let refs = Array(repeating: "*a\(level - 1)", count: 9).joined(separator: ", ")
            lines.append("a\(level): &a\(level) [\(refs)]")
        }
        lines.append(key ? "? *a9\n: boom" : "boom: *a9")
        return lines.joined(separator: "\n") + "\n"
    }

    private func seconds(_ body: () throws -> Void) rethrows -> Double {
        let start = ContinuousClock.now
        try body()
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    private func failure(_ text: String) -> ConfigFileError? {
        do {
            _ = try ConfigDocument(text: text, path: "test.yaml")
            return nil
        } catch {
            return error as? ConfigFileError
        }
    }

    @Test(arguments: [false, true])
    func anAliasBombFailsAtOnceNamingTheAnchor(asKey: Bool) throws {
        var error: ConfigFileError?
        let time = self.seconds { error = self.failure(Self.aliasBomb(key: asKey)) }
        let found = try #require(error)
        #expect(found.reason.contains("anchors and aliases"), "\(found)")
        #expect(found.line == 1)
        #expect(time < 30, "refused in \(time) s")  // a hang guard (the bomb not expanded), not a speed measure
    }

    @Test func anAnchorAfterABlockScalarInASequenceIsStillSeen() {
        let text = "items:\n  - text: |\n      line\n    a: &a [x, x]\n    ? *a\n    : y\n"
        #expect(ConfigDocument.firstAnchorLine(in: text) == 4)
    }

    @Test func anchorsHiddenBehindADocumentMarkerOrByteOrderMarksAreSeen() {
        // A flow collection right after `---`, and lines that start with a byte-order mark
        // (libyaml skips one at the start of any line): both reach the parser as anchors.
        let marker = "--- [&a0 [x, x], &a1 [*a0, *a0], {*a1 : x}]\n"
        #expect(ConfigDocument.firstAnchorLine(in: marker) == 1)
        let bom = "\u{FEFF}- &a0 [x, x]\n\u{FEFF}- &a1 [*a0, *a0]\n"
        #expect(ConfigDocument.firstAnchorLine(in: bom) == 1)
        #expect(ConfigDocument.firstAnchorLine(in: "key: value\n\u{FEFF}- *a\n") == 2)
    }

    @Test func textThatOnlyLooksLikeAnAnchorIsRead() throws {
        let text = """
            # a comment with &anchor and *alias
            url: "https://hooks.example/x?a=1&b=2"     # and a comment: &x
            plain: https://hooks.example/x?a=1&b=*2
            pattern: 'survey=(\\d+)*'
            regex: (\\d+)*
            note: |
              &not-an-anchor
              *nor-an-alias
            list: [a&b, "c*d", 'e & f']
            flow: {k: v*, w: "*"}
            """
        let document = try ConfigDocument(text: text, path: "x.yaml")
        let tree = try #require(document.tree as? [String: Any])
        #expect(tree["url"] as? String == "https://hooks.example/x?a=1&b=2")
        #expect(tree["note"] as? String == "&not-an-anchor\n*nor-an-alias\n")
        #expect(tree["list"] as? [String] == ["a&b", "c*d", "e & f"])
    }

    @Test func aFileOverOneMebibyteIsRefusedFromItsSizeWithoutBeingParsed() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("config-\(UUID())").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // Four million keys: the size cap answers before any parsing.
        let path = folder + "/keys.yaml"
        let handle = try #require({ () -> FileHandle? in
            _ = FileManager.default.createFile(atPath: path, contents: nil)
            return FileHandle(forWritingAtPath: path)
        }())
        let chunk = Data((0..<100_000).map { "k\($0): 1\n" }.joined().utf8)
        for _ in 0..<40 { try handle.write(contentsOf: chunk) }
        try handle.close()
        var thrown: (any Error)?
        let time = self.seconds {
            do { _ = try ConfigDocument.read(path) } catch { thrown = error }
        }
        #expect("\(thrown.map { "\($0)" } ?? "accepted")".contains("larger than 1 MiB"))
        // A hang guard, not a speed measure: the refusal by size is what the message asserts.
        #expect(time < 30, "refused in \(time) s")
    }

    @Test func aHugeValueIsNeverEchoed() throws {
        let big = String(repeating: "x", count: 400_000)
        // A YAML error right after the value, and a duplicate key holding it.
        let messages = [
            self.failure("listen: \"\(big)\"\nlisten: \"\(big)\"\n"),
            self.failure("a: \(big)\n  b: c: d\n"),
            self.failure("\(big): 1\n\(big): 2\n"),
        ].map { "\($0.map { "\($0)" } ?? "accepted")" }
        for message in messages {
            #expect(message.count < 300, "\(message.prefix(300))")
        }
        #expect(messages[0].contains("twice"))
    }

    @Test func aDuplicateKeyNamesTheKeyAndLineButNotTheSecretBesideIt() throws {
        let text = """
            targets:
              boss:
                url: "https://hooks.example/boss"
                secret: "whsec_c3VwZXItc2VjcmV0LXZhbHVlLTEyMzQ="
                url: "https://hooks.example/other"
            """
        let error = try #require(self.failure(text))
        #expect(!"\(error)".contains("whsec_"), "\(error)")
        #expect(!"\(error)".contains("hooks.example"), "\(error)")
        #expect(error.reason.contains("\"url\" twice"), "\(error)")
        #expect(error.line == 3 || error.line == 5, "\(error)")
    }

    @Test func notUTF8IsRefusedWithTheOffset() {
        #expect {
            _ = try ConfigDocument(bytes: Array("a: ".utf8) + [0xFF, 0xFE], path: "x.yaml")
        } throws: { "\($0)".contains("not UTF-8 text (invalid byte at offset 3)") }
    }

    @Test func unknownSettingsAreNamedWithTheirLineAndTheKnownOnes() throws {
        let schema = ConfigSchema.settings([
            "tls": .keys("certificate", "privateKey"),
            "targets": .named(.keys("url", "secret")),
            "rules": .list(.settings(["name": .value, "window": .keys("per", "minutes")])),
            "sources": .list(.variant(key: "kind", ["jsonl": ["kind": .value, "path": .value]])),
        ])
        let cases: [(String, String, Int)] = [
            ("tls:\n  certificate: a\n  privatekey: b\n", "unknown setting \"tls.privatekey\"; known there: certificate, privateKey", 3),
            ("targets:\n  boss: {url: u, secrt: s}\n", "unknown setting \"targets.boss.secrt\"", 2),
            ("rules:\n  - name: a\n  - name: b\n    window: {per: site, hours: 2}\n", "unknown setting \"rules[2].window.hours\"", 4),
            ("sources:\n  - {kind: jsonl, path: p, colour: red}\n", "unknown setting \"sources[1].colour\"", 2),
            ("tls: [a]\n", "tls must be a mapping of settings", 1),
            ("colour: red\n", "unknown setting \"colour\"", 1),
        ]
        for (text, expected, line) in cases {
            do {
                try ConfigDocument(text: text, path: "x.yaml").check(schema)
                Issue.record("accepted: \(text)")
            } catch let error as ConfigFileError {
                #expect(error.reason.contains(expected), "\(error)")
                #expect(error.line == line, "\(error)")
            }
        }
        // An unknown kind is the loader's to name.
        try ConfigDocument(text: "sources:\n  - {kind: fax, colour: red}\n", path: "x.yaml").check(schema)
    }

    @Test func settingsAreDecodedFromTheTreeWithTheLineOfAMistake() throws {
        struct Limits: Decodable { var credit: Int }
        struct File: Decodable { var name: String; var limits: Limits }
        let document = try ConfigDocument(text: "name: hub\nlimits:\n  credit: lots\n", path: "x.yaml")
        #expect {
            _ = try document.decode(File.self)
        } throws: { error in
            let error = error as? ConfigFileError
            return error?.reason == "has the wrong type at limits.credit: expected a whole number" && error?.line == 3
        }
        let good = try ConfigDocument(text: "name: hub\nlimits: {credit: 4}\n", path: "x.yaml").decode(File.self)
        #expect(good.name == "hub" && good.limits.credit == 4)
    }
}

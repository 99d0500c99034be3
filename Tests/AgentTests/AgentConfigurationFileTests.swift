import Agent
import Foundation
import Testing

/// `agent.yaml`: defaults filled in, relative paths resolved, and every mistake named.
@Suite struct AgentConfigurationFileTests {
    private func write(_ text: String) throws -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("agent-config-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let path = folder.appendingPathComponent("agent.yaml").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func aMinimalFileGetsTheDefaultsAndPathsBesideIt() throws {
        let path = try self.write("identity: agent.json\nhubs: [\"hub:7443\"]\nca: ca.pem\n")
        let file = try AgentConfigurationFile.load(from: path)
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        #expect(file.identity == folder + "/agent.json")
        #expect(file.spool.directory == folder + "/spool")
        #expect(file.spool.fsync == "10")
        #expect(file.batch.maxRecords == 1_000)
        #expect(file.http == nil)
    }

    @Test func clientCertificateFilesAreBesideTheFile() throws {
        let path = try self.write("identity: a\nhubs: [\"h:1\"]\nca: c\nclientCertificate: node.pem\nclientKey: /keys/node-key.pem\n")
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        let files = try #require(try AgentConfigurationFile.load(from: path).clientCertificateFiles)
        #expect(files == HubConnection.ClientCertificate(certificate: folder + "/node.pem", privateKey: "/keys/node-key.pem"))
    }

    @Test(arguments: [
        ("identity: a\nhubs: [\"h:1\"]\nca: c\ncolour: red\n", "unknown setting \"colour\""),
        ("identity: a\nhubs: [\"h:1\"]\nca: c\nclientCertificate: node.pem\n", "clientCertificate and clientKey go together"),
        ("identity: a\nhubs: [\"h:1\"]\nca: c\nspool: {fsync: sometimes}\n", "spool.fsync"),
        ("identity: a\nhubs: [\"h\"]\nca: c\n", "is not a hub address"),
        ("identity: a\nhubs: []\nca: c\n", "at least one"),
        ("hubs: [\"h:1\"]\nca: c\n", "misses identity"),
        ("identity: a\nhubs: [\"h:1\"]\nca: c\nbatch: {maxRecords: 0}\n", "batch.maxRecords must be 1–10000, got 0"),
        ("identity: a\nhubs: [\"h:1\"]\nca: c\nhttp: {listen: nowhere}\n", "http.listen"),
        ("identity: a\nhubs: [\"h:1\"]\nca: c\nhttp: {listen: \"127.0.0.1:1\", hosts: [\"https://shop.example.com\"]}\n", "each must be a host name"),
        ("identity: a\nhubs: [\"h:1\"]\nca: c\nspool: {quota: 5}\n", "unknown setting \"spool.quota\""),
        ("identity: a\nhubs: [\"h:1\"]\nca: c\nsources: [{name: k, kind: fax}]\n", "source \"k\": kind \"fax\" is not one of kiosk, asterisk, jsonl"),
        ("identity: a\nhubs: [\"h:1\"]\nca: c\nsources: [{name: k, kind: kiosk, device: d, site: s, kiosk: e, keys: {KEY_NOPE: 1}}]\n", "source \"k\": keys \"KEY_NOPE\""),
        ("identity: a\nhubs: [\"h:1\"]\nca: c\nsources: [{name: k, kind: kiosk, device: d, site: s, kiosk: e, keys: {KEY_1: 9}}]\n", "score for \"KEY_1\" must be on the smiley scale"),
        ("identity: a\nhubs: [\"h:1\"]\nca: c\nsources: [{name: c, kind: asterisk, path: p, site: s, score: {column: userfeld}}]\n", "source \"c\": score.column \"userfeld\""),
        ("identity: a\nhubs: [\"h:1\"]\nca: c\nsources: [{name: c, kind: asterisk, path: p, site: s, timeZone: Mars/Olympus}]\n", "timeZone \"Mars/Olympus\""),
        ("identity: a\nhubs: [\"h:1\"]\nca: c\nsources: [{name: c, kind: asterisk, path: p, site: s, score: {column: userfield, pattern: '(('}}]\n", "score.pattern is not a valid regular expression"),
        ("identity: a\nhubs: [\"h:1\"]\nca: c\nsources: [{name: f, kind: jsonl, path: p, colour: red}]\n", "unknown setting \"sources[1].colour\"; known there: kind, name, path (line 4)"),
        ("identity: a\nhubs: [\"h:1\"]\nca: c\nsources: [{name: f, kind: jsonl, path: p}, {name: f, kind: jsonl, path: q}]\n", "name is used by an earlier source"),
        ("identity: a\nhubs: [\"h:1\"]\nca: c\nhttp: {listen: \"0.0.0.0:8088\"}\n", "beyond loopback, so the intake needs keys"),
        ("identity: a\nhubs: [\"h:1\"]\nca: c\nhttp: {listen: \"127.0.0.1:1\", writeKeys: [{name: b, sha256: xyz}]}\n", "http.writeKeys[1].sha256 must be the 64 hex digits"),
        ("identity: a\nhubs: [\"h:1\"]\nca: c\nhttp: {listen: \"127.0.0.1:1\", writeKeys: [{name: b, sha256: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}, {name: b, sha256: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb}]}\n", "http.writeKeys[2].name b is used by another key"),
        ("identity: a\nhubs: [\"h:1\"]\nca: c\nhttp: {listen: \"127.0.0.1:1\", writeKeys: [{name: b, sha256: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa, ratePerSecond: 0}]}\n", "ratePerSecond must be 0.01–1000000"),
        ("identity: a\nhubs: [\"h:1\"]\nca: c\nhttp: {listen: \"127.0.0.1:1\", writeKeys: [{name: b, sha256: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa, colour: red}]}\n", "unknown setting \"http.writeKeys[1].colour\""),
        ("identity: a\nhubs: [\"h:1\"]\nca: c\nhttp: {listen: \"127.0.0.1:1\", surveyKeys: [{name: s, key: short, survey: q, site: w, origins: [\"https://a.example\"]}]}\n", "key must be 16–256 visible ASCII"),
        ("identity: a\nhubs: [\"h:1\"]\nca: c\nhttp: {listen: \"127.0.0.1:1\", surveyKeys: [{name: s, key: fms_0123456789abcdef, survey: q, site: w, origins: [\"https://a.example/page\"]}]}\n", "origins: each must be scheme://host[:port]"),
        ("identity: a\nhubs: [\"h:1\"]\nca: c\nhttp: {listen: \"127.0.0.1:1\", surveyKeys: [{name: s, key: fms_0123456789abcdef, survey: q, site: \"w-*\", origins: [\"https://a.example\"]}]}\n", "site must be one site, without wildcards"),
        ("identity: a\nhubs: [\"h:1\"]\nca: c\nhttp: {listen: \"127.0.0.1:1\", idempotencyHours: 9999}\n", "http.idempotencyHours must be 0–720"),
    ])
    func mistakesAreNamed(text: String, expected: String) throws {
        let path = try self.write(text)
        do {
            _ = try AgentConfigurationFile.load(from: path)
            Issue.record("accepted: \(text)")
        } catch let error as AgentConfigurationError {
            #expect(error.description.contains(expected), "\(error.description)")
            #expect(error.description.contains(path))
        }
    }

    @Test func intakeKeysAreReadAndABeyondLoopbackIntakeWithKeysStarts() throws {
        let digest = String(repeating: "ab", count: 32)
        let path = try self.write(
            """
            identity: a
            hubs: ["h:1"]
            ca: c
            http:
              listen: "0.0.0.0:8088"
              writeKeys: [{name: shop, sha256: "\(digest.uppercased())", sites: ["web-*"], surveys: [checkout]}]
              surveyKeys: [{name: onboarding, key: fms_0123456789abcdef, survey: q1, site: web, origins: ["https://app.example.com:8443"]}]
              ratePerAddress: 2
            """
        )
        let file = try AgentConfigurationFile.load(from: path)
        let access = try #require(try file.http?.access())
        #expect(access.requiresKey)
        #expect(access.surveyOrigins == ["https://app.example.com:8443"])
        #expect(file.http?.ratePerAddress == 2 && file.http?.addressBurst == 10 && file.http?.idempotencyHours == 24)
    }

    @Test func sourcesAreReadWithTheirSettings() throws {
        let path = try self.write(
            """
            identity: a
            hubs: ["h:1"]
            ca: c
            sources:
              - {name: cdr, kind: asterisk, path: cdr/Master.csv, site: cc-leeds, newColumns: true, timeZone: Europe/London}
              - {name: door, kind: kiosk, device: /dev/input/event3, site: b-1, kiosk: door, scale: nps, keys: {KEY_0: 0, KEY_A: 10, 49: 5}}
            """
        )
        let file = try AgentConfigurationFile.load(from: path)
        #expect(file.sources.map(\.name) == ["cdr", "door"])
        guard case .asterisk(let cdrPath, let parser) = file.sources[0].kind, case .kiosk(let device, let buttons) = file.sources[1].kind else {
            Issue.record("wrong kinds")
            return
        }
        #expect(cdrPath == URL(fileURLWithPath: path).deletingLastPathComponent().path + "/cdr/Master.csv")
        #expect(parser.columns.count == 21 && parser.columns.last == "sequence")
        #expect(parser.score.column == "userfield")
        #expect(device == "/dev/input/event3")
        #expect(buttons.keys == [11: 0, 30: 10, 49: 5])
    }
}

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

    @Test(arguments: [
        ("identity: a\nhubs: [\"h:1\"]\nca: c\ncolour: red\n", "unknown setting \"colour\""),
        ("identity: a\nhubs: [\"h:1\"]\nca: c\nspool: {fsync: sometimes}\n", "spool.fsync"),
        ("identity: a\nhubs: [\"h\"]\nca: c\n", "is not a hub address"),
        ("identity: a\nhubs: []\nca: c\n", "at least one"),
        ("hubs: [\"h:1\"]\nca: c\n", "misses identity"),
        ("identity: a\nhubs: [\"h:1\"]\nca: c\nbatch: {maxRecords: 0}\n", "batch.maxRecords must be positive"),
        ("identity: a\nhubs: [\"h:1\"]\nca: c\nhttp: {listen: nowhere}\n", "http.listen"),
        ("identity: a\nhubs: [\"h:1\"]\nca: c\nspool: {quota: 5}\n", "unknown setting \"spool.quota\""),
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
}

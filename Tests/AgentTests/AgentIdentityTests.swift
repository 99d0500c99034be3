import Agent
import Foundation
import Testing
import Wire

@Suite struct AgentIdentityTests {
    private func temporaryPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("identity-\(UUID()).json").path
    }

    @Test func savedIdentitiesLoadBackWithOwnerOnlyPermissions() throws {
        let path = self.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let identity = AgentIdentity.generate()
        try identity.save(to: path)
        let loaded = try AgentIdentity.load(from: path)
        #expect(loaded.nodeID == identity.nodeID)
        #expect(loaded.keyID == identity.keyID)
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
    }

    @Test func anExistingKeyIsNotReplacedUnlessForced() throws {
        let path = self.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let first = AgentIdentity.generate()
        try first.save(to: path)
        #expect(throws: AgentIdentityError.self) { try AgentIdentity.generate().save(to: path) }
        #expect(try AgentIdentity.load(from: path).nodeID == first.nodeID)
        let second = AgentIdentity.generate()
        try second.save(to: path, overwrite: true)
        #expect(try AgentIdentity.load(from: path).nodeID == second.nodeID)
    }

    @Test func brokenFilesAreNamedWithTheReason() throws {
        let path = self.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect {
            _ = try AgentIdentity.load(from: path)
        } throws: { "\($0)".contains("cannot be read") }
        try Data("{\"nodeId\":\"\(UUID())\",\"privateKey\":\"c2hvcnQ=\"}".utf8).write(to: URL(fileURLWithPath: path))
        #expect {
            _ = try AgentIdentity.load(from: path)
        } throws: { "\($0)".contains("32-byte Ed25519") && "\($0)".contains(path) }
        try Data("not json".utf8).write(to: URL(fileURLWithPath: path))
        #expect {
            _ = try AgentIdentity.load(from: path)
        } throws: { "\($0)".contains("not an identity file") }
    }
}

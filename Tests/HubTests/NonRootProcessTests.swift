import Foundation
import Testing

/// The hub and the agent as the Debian units and the container images run them: as an
/// ordinary user. Root may set socket options no one else may (the agent once asked for
/// `TCP_NODELAY` at `SOL_SOCKET`, where its number means `SO_DEBUG`: as root it worked, as
/// any other user every connection failed with EACCES), and the other tests run as root.
@Suite(.serialized) struct NonRootProcessTests {
    /// The user the processes run as when the tests run as root: nobody.
    static let nobody: UInt32 = 65534

    @Test func anAgentEnrollsWithAHubWhenBothRunAsAnOrdinaryUser() async throws {
        try #require(FileManager.default.fileExists(atPath: CLIRun.hub), "build first: swift build --build-tests")
        let asRoot = getuid() == 0
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nonroot-\(UUID())").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // The binaries copied where the other user may run them (the checkout may be in root's home).
        let hub = folder + "/feedback-hub", agent = folder + "/feedback-agent"
        try FileManager.default.copyItem(atPath: CLIRun.hub, toPath: hub)
        try FileManager.default.copyItem(atPath: CLIRun.agent, toPath: agent)
        if asRoot {
            try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv"), "setpriv (util-linux) runs the processes as nobody")
            for path in [folder, hub, agent] {
                try FileManager.default.setAttributes([.ownerAccountID: Self.nobody, .groupOwnerAccountID: Self.nobody], ofItemAtPath: path)
            }
        }
        /// `binary arguments` as nobody when the tests run as root, else as the tests' own (ordinary) user.
        func ordinary(_ binary: String, _ arguments: [String]) -> (String, [String]) {
            guard asRoot else { return (binary, arguments) }
            return ("/usr/bin/setpriv", ["--reuid=\(Self.nobody)", "--regid=\(Self.nobody)", "--clear-groups", "--", binary] + arguments)
        }
        func run(_ binary: String, _ arguments: [String]) async throws -> CLIRun {
            let (program, all) = ordinary(binary, arguments)
            return try await CLIRun.run(program, all)
        }

        let port = try CrashTests.freePort()
        let made = try await run(hub, ["init", folder + "/hub", "--listen", "127.0.0.1:\(port)", "--http", "127.0.0.1:\(try CrashTests.freePort())"])
        try #require(made.status == 0, "\(made.output)")
        let tokenRun = try await run(hub, ["agents", "token", "--config", folder + "/hub/hub.yaml", "--site", "branch-1"])
        try #require(tokenRun.status == 0, "\(tokenRun.output)")
        let token = tokenRun.output.split(separator: "\n").last.map(String.init) ?? ""
        let keygen = try await run(agent, ["keygen", "--out", folder + "/agent.json"])
        try #require(keygen.status == 0, "\(keygen.output)")

        let (program, arguments) = ordinary(hub, ["serve", "--config", folder + "/hub/hub.yaml"])
        let server = try launch(program, arguments, log: folder + "/hub.log")
        defer {
            server.terminate()
            server.waitUntilExit()
        }
        // Enrollment connects the agent to the hub: both sockets belong to the ordinary user.
        var enrolled: CLIRun?
        for _ in 0..<100 {
            let attempt = try await run(agent, ["enroll", "--identity", folder + "/agent.json", "--hub", "127.0.0.1:\(port)", "--ca", folder + "/hub/ca.pem", "--token", token])
            enrolled = attempt
            if attempt.status == 0 || !attempt.output.contains("Connection refused") { break }
            try await Task.sleep(for: .milliseconds(200))  // the hub is still starting
        }
        let output = enrolled?.output ?? ""
        let log = (try? String(contentsOfFile: folder + "/hub.log", encoding: .utf8)) ?? ""
        #expect(enrolled?.status == 0, "enroll as an ordinary user: \(output)\nhub log:\n\(log)")
        #expect(output.contains("enrolled"), "\(output)")
        #expect(!output.contains("Permission denied"), "\(output)")
    }
}

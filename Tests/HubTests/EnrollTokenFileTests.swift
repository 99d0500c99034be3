import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import TestSupport
import Testing

/// Issue 12 item 7: `feedback-agent enroll` takes its one-time token from a file or from
/// standard input, so it never shows in `ps`; `--token` still works. Real hub and agent
/// processes.
@Suite(.serialized) struct EnrollTokenFileTests {
    @Test func enrollReadsTheTokenFromAFileOrStandardInput() async throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("enroll-\(UUID())").path
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let port = try CrashTests.freePort()
        let http = try CrashTests.freePort()
        let initRun = try await CLIRun.run(CLIRun.hub, ["init", work + "/hub", "--listen", "127.0.0.1:\(port)", "--http", "127.0.0.1:\(http)"])
        #expect(initRun.status == 0, "\(initRun.output)")
        let config = work + "/hub/hub.yaml"
        let hub = try launch(CLIRun.hub, ["serve", "--config", config], log: work + "/hub.log")
        defer { if hub.isRunning { kill(hub.processIdentifier, SIGKILL) } }
        let ready = await eventually {
            (try? Data(contentsOf: URL(string: "http://127.0.0.1:\(http)/readyz")!)) != nil
        }
        #expect(ready, "the hub came up")

        func token() async throws -> String {
            let run = try await CLIRun.run(CLIRun.hub, ["agents", "token", "--config", config, "--site", "branch-042"])
            return run.output.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        func identity(_ name: String) async throws -> String {
            let path = work + "/\(name).json"
            #expect(try await CLIRun.run(CLIRun.agent, ["keygen", "--out", path]).status == 0)
            return path
        }
        let common = ["enroll", "--hub", "127.0.0.1:\(port)", "--ca", work + "/hub/ca.pem", "--identity"]

        // From a file, with the newline `agents token > file` leaves.
        let fromFile = try await identity("file")
        let tokenFile = work + "/token"
        try (try await token() + "\n").write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let file = try await CLIRun.run(CLIRun.agent, common + [fromFile, "--token-file", tokenFile])
        #expect(file.status == 0 && file.output.hasPrefix("enrolled "), "\(file.output)")

        // From standard input.
        let fromInput = try await identity("stdin")
        let input = try await CLIRun.run(CLIRun.agent, common + [fromInput, "--token-file", "-"], input: try token() + "\n")
        #expect(input.status == 0 && input.output.hasPrefix("enrolled "), "\(input.output)")

        // --token still works (visible in ps, documented as such).
        let legacy = try await CLIRun.run(CLIRun.agent, common + [try await identity("flag"), "--token", try await token()])
        #expect(legacy.status == 0 && legacy.output.hasPrefix("enrolled "), "\(legacy.output)")

        let list = try await CLIRun.run(CLIRun.hub, ["agents", "list", "--config", config])
        #expect(list.output.contains("3 node(s)"), "\(list.output)")

        // Mistakes are one line each; a spent token is refused by the hub.
        let mistakes: [([String], String?, String)] = [
            ([try await identity("spent"), "--token-file", tokenFile], nil, "enrollment failed"),
            ([fromFile, "--token-file", work + "/missing"], nil, "cannot read the token file \(work)/missing"),
            ([fromFile, "--token-file", "-"], "  \n", "the token file - (standard input) holds no token"),
            ([fromFile, "--token-file", tokenFile, "--token", "fmt_x"], nil, "give the token with --token-file or --token, not both"),
            ([fromFile], nil, "give the one-time token with --token-file FILE (or - for standard input)"),
        ]
        for (arguments, stdin, expected) in mistakes {
            let run = try await CLIRun.run(CLIRun.agent, common + arguments, input: stdin)
            #expect(run.status == 1, "\(arguments): \(run.output)")
            #expect(run.output.hasPrefix("Error: ") && run.output.contains(expected), "\(arguments): \(run.output)")
            #expect(run.output.split(separator: "\n").count == 1, "one line: \(run.output)")
        }
        kill(hub.processIdentifier, SIGTERM)
        await waitForExit(hub)
    }
}

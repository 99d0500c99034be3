import Foundation
import TestSupport
import Testing

/// Issue 12 item 4: what the real `feedback-hub` and `feedback-agent` processes write that
/// holds a key or customer data is owner-only even under `umask 000`, and no temporary
/// copy is left beside it.
@Suite(.serialized) struct SecretFilesProcessTests {
    private func mode(_ path: String) -> Int? {
        var stats = stat()
        guard lstat(path, &stats) == 0 else { return nil }
        return Int(stats.st_mode & 0o7777)
    }

    private func scratch() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("secrets-\(UUID())").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test func hubInitAndServeUnderUmask000KeepKeysAndTheStoreOwnerOnly() async throws {
        let work = try self.scratch()
        defer { try? FileManager.default.removeItem(atPath: work) }
        let folder = work + "/hub"
        let port = try CrashTests.freePort()
        let http = try CrashTests.freePort()
        let initRun = try await CLIRun.run(
            CLIRun.hub, ["init", folder, "--listen", "127.0.0.1:\(port)", "--http", "127.0.0.1:\(http)"], umask: "000"
        )
        #expect(initRun.status == 0, "\(initRun.output)")
        let names = try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
        #expect(
            names == ["alerts.example.yaml", "ca-key.pem", "ca.pem", "feedback.sqlite", "hub-key.pem", "hub.pem", "hub.yaml"],
            "no temporary file is left"
        )
        for secret in ["ca-key.pem", "hub-key.pem", "feedback.sqlite"] {
            #expect(self.mode(folder + "/" + secret) == 0o600, "\(secret)")
        }
        #expect(self.mode(folder) == 0o700, "the folder init made holds the CA key")
        for name in names {
            let mode = self.mode(folder + "/" + name) ?? 0
            #expect(mode & 0o022 == 0, "\(name) is writable by others: \(String(mode, radix: 8))")
        }

        // The store's -wal and -shm hold the same customer data; SQLite gives them the
        // main file's mode, also under umask 000.
        let log = work + "/hub.log"
        let serve = try Process.run(
            URL(fileURLWithPath: "/bin/sh"),
            arguments: ["-c", "umask 000 && exec \"$0\" \"$@\" >\"\(log)\" 2>&1", CLIRun.hub, "serve", "--config", folder + "/hub.yaml"]
        )
        defer { if serve.isRunning { kill(serve.processIdentifier, SIGKILL) } }
        #expect(
            await eventually {
                FileManager.default.fileExists(atPath: folder + "/feedback.sqlite-wal")
                    && FileManager.default.fileExists(atPath: folder + "/feedback.sqlite-shm")
            }, "the hub opened its store: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")"
        )
        #expect(self.mode(folder + "/feedback.sqlite-wal") == 0o600)
        #expect(self.mode(folder + "/feedback.sqlite-shm") == 0o600)
        kill(serve.processIdentifier, SIGTERM)
        await waitForExit(serve)
    }

    @Test func agentKeygenAndSealUnderUmask000WriteOwnerOnlyFiles() async throws {
        let folder = try self.scratch()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let identity = folder + "/agent.json"
        let keygen = try await CLIRun.run(CLIRun.agent, ["keygen", "--out", identity], umask: "000")
        #expect(keygen.status == 0, "\(keygen.output)")
        #expect(self.mode(identity) == 0o600)
        let again = try await CLIRun.run(CLIRun.agent, ["keygen", "--out", identity, "--force"], umask: "000")
        #expect(again.status == 0, "\(again.output)")
        #expect(self.mode(identity) == 0o600)

        // A sealed batch holds customer ids and comments.
        let frame = folder + "/batch.frame"
        let seal = try await CLIRun.run(
            CLIRun.agent, ["seal", "--identity", identity, "--records", "-", "--sequence", "1", "--out", frame],
            input: #"{"source":"popup","scale":"nps","score":3,"customer":"c-1","comment":"rude"}"# + "\n", umask: "000"
        )
        #expect(seal.status == 0, "\(seal.output)")
        #expect(self.mode(frame) == 0o600)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder).sorted() == ["agent.json", "batch.frame"])
    }
}

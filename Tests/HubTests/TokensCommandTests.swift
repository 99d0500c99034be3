import Foundation
import Hub
import TestSupport
import Testing
import Wire

/// `feedback-hub tokens` as an operator runs it: real processes on a store made by `init`,
/// and the secret it prints used against a real hub.
@Suite struct TokensCommandTests {
    @Test func aTokenAddedOnTheCommandLineWorksOnceShownAndStopsWhenRevoked() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("tokens-\(UUID())")
        defer { try? FileManager.default.removeItem(at: folder) }
        let config = folder.appendingPathComponent("hub.yaml").path
        let made = try await CLIRun.run(CLIRun.hub, ["init", folder.path, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        #expect(made.status == 0, "\(made.output)")

        // Refusals name what is wrong and store nothing.
        let refused: [([String], String)] = [
            (["--name", "Anna", "--role", "owner", "--any-site"], "--role must be viewer, manager or admin"),
            (["--name", "Anna", "--role", "viewer"], "say which sites the token sees and acts on"),
            (["--name", " ", "--role", "viewer", "--any-site"], "--name must be 1–200 bytes"),
            (["--name", "A\u{1B}[2J", "--role", "viewer", "--any-site"], "--name holds a control character"),
            (["--name", "Anna", "--role", "viewer", "--any-site", "--expires-in-days", "0"], "--expires-in-days must be 1–3650"),
            (["--name", "Anna", "--role", "admin", "--site", "branch-*"], "an admin token reads the token list and the audit trail of every site"),
        ]
        for (arguments, message) in refused {
            let run = try await CLIRun.run(CLIRun.hub, ["tokens", "add", "--config", config] + arguments)
            #expect(run.status != 0 && run.output.contains(message), "\(arguments): \(run.output)")
        }

        let added = try await CLIRun.run(
            CLIRun.hub, ["tokens", "add", "--config", config, "--name", "Anna, branch 42", "--role", "manager", "--site", "branch-042"]
        )
        #expect(added.status == 0, "\(added.output)")
        let secret = try #require(added.output.split(separator: "\n").map(String.init).first { $0.hasPrefix("fma_") })
        #expect(APIToken.isWellFormedSecret(secret))
        let listed = try await CLIRun.run(CLIRun.hub, ["tokens", "list", "--config", config])
        #expect(listed.status == 0 && listed.output.contains("Anna, branch 42") && listed.output.contains("manager"))
        #expect(listed.output.contains("branch-042") && listed.output.contains("active") && listed.output.contains("1 token(s)"))
        #expect(!listed.output.contains(secret) && !listed.output.contains("fma_"), "the secret is shown once")
        let id = try #require(try SQLiteStore(path: folder.appendingPathComponent("feedback.sqlite").path).apiTokens().first?.id)

        // The secret works on a hub over that store, within its sites and role.
        let hub = try await HubHarness.start(folder: folder)
        let client = try OperationsClient(hub.hub)
        let me = try await client.call("GET", "/v1/me", token: secret)
        #expect(me.status == 200 && me.json["role"] as? String == "manager" && me.json["sites"] as? [String] == ["branch-042"])
        #expect(try await client.call("GET", "/v1/audit", token: secret).status == 403)

        let revoked = try await CLIRun.run(CLIRun.hub, ["tokens", "revoke", "--config", config, id.uuidString])
        #expect(revoked.status == 0 && revoked.output.contains("revoked \(id.uuidString.lowercased())"))
        #expect(try await client.call("GET", "/v1/me", token: secret).status == 401, "refused from the next request on")
        let again = try await CLIRun.run(CLIRun.hub, ["tokens", "revoke", "--config", config, UUID().uuidString])
        #expect(again.status != 0 && again.output.contains("no token has the id"))
        let notAnID = try await CLIRun.run(CLIRun.hub, ["tokens", "revoke", "--config", config, "anna"])
        #expect(notAnID.status != 0 && notAnID.output.contains("is not a token id"))
        let after = try await CLIRun.run(CLIRun.hub, ["tokens", "list", "--config", config])
        #expect(after.output.contains("revoked 20"))
        try await hub.stop()
    }
}

import ArgumentParser
import Foundation
import Hub
import Support
import Wire

/// `feedback-hub tokens`: API tokens of the operations port.
struct Tokens: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Adds, lists and revokes API tokens for the operations port (alerts, reports, the fleet).",
        subcommands: [Add.self, List.self, Revoke.self]
    )

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Makes a token and prints its secret once: the hub keeps only its SHA-256."
        )
        @OptionGroup var config: ConfigOption
        @Option(help: "Whose token it is, shown in lists and the audit trail (\"Anna, branch 42\").") var name: String
        @Option(help: "viewer (reads), manager (also acts on alerts) or admin (also reads the audit trail and the tokens).")
        var role: String
        @OptionGroup var sites: SiteOptions
        @Option(help: "Days until the token stops working, 1–3650; without it, it works until revoked.") var expiresInDays: Int?

        func validate() throws {
            guard APIToken.Role(rawValue: self.role) != nil else {
                throw CLIError("--role must be viewer, manager or admin, got \(TerminalText.excerpt(self.role))")
            }
            let name = self.name.trimmingCharacters(in: .whitespaces)
            guard !name.isEmpty, name.utf8.count <= APIToken.maxNameBytes else {
                throw CLIError("--name must be 1–\(APIToken.maxNameBytes) bytes")
            }
            guard !name.unicodeScalars.contains(where: TerminalText.needsEscape) else {
                throw CLIError("--name holds a control character or a bidirectional override")
            }
            if let days = self.expiresInDays { try RangeError.check(days, 1...3_650, "--expires-in-days") }
        }

        func run() throws {
            let scope = try self.sites.scope("the token sees and acts on")
            if self.role == APIToken.Role.admin.rawValue, !scope.allowsAnySite {
                throw CLIError("an admin token reads the token list and the audit trail of every site: give it --any-site, or make a manager")
            }
            let store = try self.config.openStore()
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            let token = APIToken(
                id: UUID(), name: self.name.trimmingCharacters(in: .whitespaces), role: APIToken.Role(rawValue: self.role) ?? .viewer,
                sites: scope, createdAt: now, expiresAt: self.expiresInDays.map { now + Int64($0) * 86_400_000 }
            )
            let secret = APIToken.newSecret()
            try reporting { try store.addAPIToken(token, hash: SecretToken.hash(secret), by: .commandLine) }
            print(secret)
            FileHandle.standardError.write(
                Data("token \(token.id.uuidString.lowercased()) (\(token.role.rawValue), sites \(token.sites)): the secret above is shown once; send it as `Authorization: Bearer SECRET`\n".utf8)
            )
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Lists tokens (never their secrets), revoked and expired ones included.")
        @OptionGroup var config: ConfigOption

        func run() throws {
            let store = try self.config.openStore()
            let tokens = try reporting { try store.apiTokens() }
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            var rows = [["id", "name", "role", "sites", "created", "state"]]
            for token in tokens {
                let state =
                    if let revoked = token.revokedAt {
                        "revoked " + Self.date(revoked)
                    } else if let expires = token.expiresAt {
                        (expires <= now ? "expired " : "expires ") + Self.date(expires)
                    } else {
                        "active"
                    }
                rows.append([
                    token.id.uuidString.lowercased(), TerminalText.escape(token.name), token.role.rawValue,
                    TerminalText.escape(token.sites.description), Self.date(token.createdAt), state,
                ])
            }
            for line in textTable(rows) { print(line) }
            print("\(tokens.count) token(s)")
        }

        static func date(_ milliseconds: Int64) -> String {
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime]
            return formatter.string(from: Date(timeIntervalSince1970: Double(milliseconds) / 1000))
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revokes a token: every hub on this store refuses it from its next request."
        )
        @OptionGroup var config: ConfigOption
        @Argument(help: "The token's id (from `tokens list`).") var id: String

        func run() throws {
            guard let id = UUID(uuidString: self.id) else { throw CLIError("\(TerminalText.excerpt(self.id)) is not a token id (a UUID)") }
            let store = try self.config.openStore()
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            guard try reporting({ try store.revokeAPIToken(id, at: now, by: .commandLine) }) else {
                throw CLIError("no token has the id \(id.uuidString.lowercased())")
            }
            print("revoked \(id.uuidString.lowercased())")
        }
    }
}

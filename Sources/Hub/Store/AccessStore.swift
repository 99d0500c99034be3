import Foundation
import Support
import Wire

/// An API token of the operations port as the store keeps it: everything but the secret,
/// which is kept only as its SHA-256 (``APITokenSecret``).
public struct APIToken: Sendable, Hashable {
    /// What a token may do. Each role may do what the one before it may, and more.
    public enum Role: String, Sendable, Hashable, CaseIterable, Comparable {
        /// Reads alerts, reports and the fleet within its sites.
        case viewer
        /// Also acts on alerts (cases) within its sites.
        case manager
        /// Also reads the audit trail and the token list; meant for the operations team.
        case admin

        /// Whether this role may do `action`.
        public func allows(_ action: Action) -> Bool {
            switch action {
            case .read: true
            case .act: self >= .manager
            case .administer: self == .admin
            }
        }

        public static func < (lhs: Role, rhs: Role) -> Bool {
            Self.allCases.firstIndex(of: lhs)! < Self.allCases.firstIndex(of: rhs)!
        }
    }

    /// What a request asks to do; each endpoint needs one.
    public enum Action: String, Sendable, Hashable {
        /// Read alerts, reports, the fleet (and `/metrics` when it is behind a token).
        case read
        /// Change an alert's state.
        case act
        /// Read the audit trail and the token list.
        case administer
    }

    /// Stable id, shown by `feedback-hub tokens list` and named by `revoke`.
    public var id: UUID
    /// Whose token it is, for people and the audit trail ("Anna, branch 42").
    public var name: String
    /// What it may do.
    public var role: Role
    /// The sites whose alerts (and later reports) it sees and acts on.
    public var sites: SiteScope
    /// When it was made, ms since the epoch.
    public var createdAt: Int64
    /// When it stops working, ms since the epoch; nil: never.
    public var expiresAt: Int64?
    /// When it was revoked; nil: it was not.
    public var revokedAt: Int64?

    /// Creates a token record.
    public init(id: UUID, name: String, role: Role, sites: SiteScope, createdAt: Int64, expiresAt: Int64?, revokedAt: Int64? = nil) {
        self.id = id
        self.name = name
        self.role = role
        self.sites = sites
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.revokedAt = revokedAt
    }

    /// Whether the token works at `now`: not revoked and not expired.
    public func isValid(at now: Int64) -> Bool {
        self.revokedAt == nil && (self.expiresAt.map { now < $0 } ?? true)
    }

    /// Longest name, in bytes.
    public static let maxNameBytes = 200

    /// Most browser sessions one token holds at once (a person's browsers and devices).
    public static let maxSessions = 20

    /// What the audit trail keeps of a token added: its name, sites and expiry.
    var auditNote: String {
        "\(self.name); sites \(self.sites)" + (self.expiresAt.map { "; expires at \($0)" } ?? "")
    }
}

/// Who made a change: a token, or the command line.
public struct AuditActor: Sendable, Hashable {
    /// The token's id; nil for the command line.
    public var tokenID: UUID?
    /// The token's name, or `cli:USER` for the command line.
    public var name: String

    /// Creates an actor.
    public init(tokenID: UUID?, name: String) {
        self.tokenID = tokenID
        self.name = name
    }

    /// A token acting.
    public init(_ token: APIToken) {
        self.init(tokenID: token.id, name: token.name)
    }

    /// The command line, as `cli:USER`: the process's effective Unix user (from the
    /// password database, not the environment), and `(sudo by USER)` when run through sudo.
    public static var commandLine: AuditActor {
        var name = "uid \(geteuid())"
        if let entry = getpwuid(geteuid()), let login = entry.pointee.pw_name { name = String(cString: login) }
        if let invoker = ProcessInfo.processInfo.environment["SUDO_USER"], !invoker.isEmpty {
            name += " (sudo by \(TerminalText.excerpt(invoker, limit: 64)))"
        }
        return AuditActor(tokenID: nil, name: "cli:" + name)
    }
}

/// One entry of the audit trail: who changed what, when, from what to what, and why.
public struct AuditEntry: Sendable, Hashable {
    /// Order of entry (increasing).
    public var sequence: Int64
    /// When, ms since the epoch.
    public var at: Int64
    /// Who.
    public var actor: AuditActor
    /// What kind of change: a case's (`case.inProgress`, `case.assigned`, `case.completed`,
    /// … ``CaseChange/event``; `alert.acknowledged`, `alert.resolved`, `alert.cancelled`
    /// in trails written before cases), `token.added`, `token.revoked`.
    public var action: String
    /// The alert's or the token's id.
    public var object: UUID
    /// The state before (an alert's status; "" for a token added).
    public var from: String
    /// The state after.
    public var to: String
    /// The note given with the change.
    public var note: String

    /// Creates an entry.
    public init(sequence: Int64, at: Int64, actor: AuditActor, action: String, object: UUID, from: String, to: String, note: String) {
        self.sequence = sequence
        self.at = at
        self.actor = actor
        self.action = action
        self.object = object
        self.from = from
        self.to = to
        self.note = note
    }
}

/// Where the hub keeps the operations port's API tokens and the audit trail. Every method
/// blocks; call them off the event loops (``StoreAccess``). Case changes enter the trail in
/// ``AlertStore/change(_:_:by:at:)``'s own transaction.
public protocol AccessStore: Sendable {
    /// Stores a token (its secret's SHA-256 only) and its `token.added` audit entry.
    func addAPIToken(_ token: APIToken, hash: [UInt8], by actor: AuditActor) throws

    /// Every token, revoked ones included, oldest first.
    func apiTokens() throws -> [APIToken]

    /// The token whose secret hashes to `hash`, revoked or not; nil if none.
    func apiToken(hash: [UInt8]) throws -> APIToken?

    /// Revokes a token at `time`, with its `token.revoked` audit entry. Returns false if no
    /// token has this id; revoking a revoked token changes nothing and returns true.
    func revokeAPIToken(_ id: UUID, at time: Int64, by actor: AuditActor) throws -> Bool

    /// Audit entries, newest first: those about `object` when given, else all.
    func auditTrail(object: UUID?, limit: Int) throws -> [AuditEntry]

    /// Stores a browser session of token `token` (its secret's SHA-256 only), valid until
    /// `expiresAt`. Expired sessions are deleted, and a token keeps its newest
    /// ``APIToken/maxSessions`` sessions: the oldest beyond them end.
    func addSession(hash: [UInt8], token: UUID, createdAt: Int64, expiresAt: Int64) throws

    /// The token of the session whose secret hashes to `hash` and when the session ends,
    /// when it has not ended at `now` (the token itself may be revoked or expired: the
    /// caller checks).
    func session(hash: [UInt8], at now: Int64) throws -> (token: APIToken, expiresAt: Int64)?

    /// Ends the session whose secret hashes to `hash` (logging out); nothing if none.
    func removeSession(hash: [UInt8]) throws
}

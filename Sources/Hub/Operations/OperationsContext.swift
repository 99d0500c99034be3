import Hummingbird

/// The request context of the operations port: Hummingbird's core context, and the token
/// ``AccessGuard`` authenticated the request with.
public struct OperationsContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The caller's token; nil only on the endpoints the configuration leaves open.
    public var caller: APIToken?
    /// The SHA-256 of the session cookie the caller came with; nil for a bearer token.
    public var session: [UInt8]?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.caller = nil
        self.session = nil
    }

    /// The caller, when its role allows `action`; otherwise the 403 (or, without a caller,
    /// the 401) to answer.
    func caller(allowedTo action: APIToken.Action) -> Result<APIToken, OperationsRefusal> {
        guard let caller = self.caller else { return .failure(.unauthenticated("this endpoint needs a token")) }
        guard caller.role.allows(action) else {
            let needed = APIToken.Role.allCases.first { $0.allows(action) } ?? .admin
            return .failure(.forbidden("a \(caller.role.rawValue) token may not do this; it needs a \(needed.rawValue) token or higher"))
        }
        // The token list and the audit trail span every site: only a token for every site
        // reads them (the command line makes no other admin, a store may hold one).
        if action == .administer, !caller.sites.allowsAnySite {
            return .failure(.forbidden("this needs an admin token for every site (--any-site)"))
        }
        return .success(caller)
    }
}

/// Why the operations port refused a request: the status and the error body to answer.
struct OperationsRefusal: Error {
    var status: HTTPResponse.Status
    var code: String
    var message: String
    var field: String?

    static func unauthenticated(_ message: String) -> OperationsRefusal {
        OperationsRefusal(status: .unauthorized, code: "unauthenticated", message: message)
    }

    static func forbidden(_ message: String) -> OperationsRefusal {
        OperationsRefusal(status: .forbidden, code: "forbidden", message: message)
    }

    /// The answer: `{"error":{"code","message","field"}}`, with the `WWW-Authenticate`
    /// challenge on a 401.
    var response: Response {
        var response = OperationsJSON.error(self.status, self.code, self.message, field: self.field)
        if self.status == .unauthorized { response.headers[.wwwAuthenticate] = #"Bearer realm="feedbackmesh-operations""# }
        return response
    }
}

import Hummingbird

/// Answers `405 Method Not Allowed`, with the `Allow` header, where the router found no
/// route for the method on a path the port serves with others (`DELETE /v1/alerts/ID`,
/// `TRACE /metrics`), instead of the router's 404. Runs after ``AccessGuard``, so a stranger
/// still gets 401 and learns nothing of the routes; unknown paths keep the router's 404.
///
/// The table is the routes of ``AlertAPI``, ``AccessAPI``, ``ReportAPI``, ``Dashboard`` and
/// the health and metrics endpoints (docs/openapi.yaml). It only ever turns a 404 into a 405, so a route
/// added without it still answers, and a route missing from it answers 404 as before.
struct MethodGuard: RouterMiddleware {
    typealias Context = OperationsContext

    /// Path patterns (`*` is one segment: an id) and the methods served there.
    static let routes: [(pattern: [Substring], methods: [String])] =
        [
            ("healthz", ["GET"]), ("readyz", ["GET"]), ("metrics", ["GET"]), ("v1/me", ["GET"]), ("v1/session", ["GET", "POST", "DELETE"]), ("v1/tokens", ["GET"]), ("v1/audit", ["GET"]),
            ("v1/alerts", ["GET"]), ("v1/alerts/*", ["GET"]), ("v1/alerts/*/history", ["GET"]), ("v1/reports/ratings", ["GET"]),
            ("v1/reports/cases", ["GET"]), ("v1/ratings", ["GET"]), ("", ["GET"]), ("cases", ["GET"]), ("fleet", ["GET"]), ("health", ["GET"]),
            ("login", ["GET"]), ("assets/dashboard.css", ["GET"]), ("assets/dashboard.js", ["GET"]), ("assets/icon.svg", ["GET"]),
        ].map { (Substring($0.0).split(separator: "/"), $0.1) } + AlertAPI.actionNames.map { (["v1", "alerts", "*", Substring($0)], ["POST"]) }

    /// The methods served at `path`, or nil for a path the port does not serve.
    static func methods(at path: String) -> [String]? {
        // Empty segments are dropped, as the router does (`/v1//alerts/` is `/v1/alerts`).
        let segments = path.split(separator: "/")
        return Self.routes.first { route in
            route.pattern.count == segments.count && zip(route.pattern, segments).allSatisfy { $0 == "*" || $0 == $1 }
        }?.methods
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let response: Response
        do {
            response = try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            if let refusal = self.methodNotAllowed(request) { return refusal }
            throw error
        }
        guard response.status == .notFound, let refusal = self.methodNotAllowed(request) else { return response }
        return refusal
    }

    /// The 405 for `request`, when its path is served with other methods.
    private func methodNotAllowed(_ request: Request) -> Response? {
        let method = request.method.rawValue
        guard let methods = Self.methods(at: request.uri.path), !methods.contains(method), !(method == "HEAD" && methods.contains("GET"))
        else { return nil }
        var response = OperationsJSON.error(.methodNotAllowed, "methodNotAllowed", "\(methods.joined(separator: ", ")) only")
        response.headers[.allow] = methods.joined(separator: ", ")
        return response
    }
}

import Hummingbird

/// Answers `405 Method Not Allowed`, with the `Allow` header, for a method the operations
/// port does not serve on a path it does serve (`DELETE /v1/alerts/ID`, `TRACE /metrics`),
/// instead of the router's 404. Runs after ``AccessGuard``, so a stranger still gets 401
/// and learns nothing of the routes; unknown paths pass on to the router's 404.
///
/// The table is the routes of ``AlertAPI``, ``AccessAPI``, ``ReportAPI`` and the health and
/// metrics endpoints (docs/openapi.yaml); a route missing from it only answers 404 for a
/// wrong method, as before.
struct MethodGuard: RouterMiddleware {
    typealias Context = OperationsContext

    /// Path patterns (`*` is one segment: an id) and the methods served there.
    static let routes: [(pattern: [Substring], methods: [String])] =
        [
            ("healthz", ["GET"]), ("readyz", ["GET"]), ("metrics", ["GET"]), ("v1/me", ["GET"]), ("v1/tokens", ["GET"]), ("v1/audit", ["GET"]),
            ("v1/alerts", ["GET"]), ("v1/alerts/*", ["GET"]), ("v1/alerts/*/history", ["GET"]), ("v1/reports/ratings", ["GET"]),
            ("v1/reports/cases", ["GET"]), ("v1/ratings", ["GET"]),
        ].map { (Substring($0.0).split(separator: "/"), $0.1) } + AlertAPI.actionNames.map { (["v1", "alerts", "*", Substring($0)], ["POST"]) }

    /// The methods served at `path`, or nil for a path the port does not serve.
    static func methods(at path: String) -> [String]? {
        guard path.hasPrefix("/"), !path.hasSuffix("/") || path == "/" else { return nil }
        let segments = path.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
        guard !segments.contains(where: \.isEmpty) else { return nil }
        return Self.routes.first { route in
            route.pattern.count == segments.count && zip(route.pattern, segments).allSatisfy { $0 == "*" || $0 == $1 }
        }?.methods
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let method = request.method.rawValue
        guard let methods = Self.methods(at: request.uri.path), !methods.contains(method), !(method == "HEAD" && methods.contains("GET"))
        else { return try await next(request, context) }
        var response = OperationsJSON.error(.methodNotAllowed, "methodNotAllowed", "\(methods.joined(separator: ", ")) only")
        response.headers[.allow] = methods.joined(separator: ", ")
        return response
    }
}

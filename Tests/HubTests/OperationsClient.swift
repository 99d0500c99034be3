import Foundation
import FoundationNetworking
import Hub
import Testing
import Wire

/// Calls a hub's operations port over real HTTP, as an API user would.
struct OperationsClient {
    let port: Int

    init(_ hub: Hub) throws {
        self.port = try #require(hub.httpAddress?.port)
    }

    /// Makes a token in `store`, as `feedback-hub tokens add` does, and returns its secret.
    static func token(
        in store: any AccessStore, role: APIToken.Role, sites: SiteScope = .any, name: String? = nil, expiresAt: Int64? = nil
    ) throws -> (secret: String, token: APIToken) {
        let secret = APIToken.newSecret()
        let token = APIToken(
            id: UUID(), name: name ?? "test \(role.rawValue)", role: role, sites: sites, createdAt: Int64(Date().timeIntervalSince1970 * 1000),
            expiresAt: expiresAt
        )
        try store.addAPIToken(token, hash: SecretToken.hash(secret), by: .commandLine)
        return (secret, token)
    }

    /// No cookie jar: a session cookie goes only where a test puts it (`Cookie` header),
    /// never to another test's hub on the same address.
    static let session: URLSession = {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpCookieStorage = nil
        configuration.httpShouldSetCookies = false
        return URLSession(configuration: configuration)
    }()

    struct Answer {
        let status: Int
        let json: [String: Any]
        let headers: [String: String]
        let body: String

        var errorCode: String? { (self.json["error"] as? [String: Any])?["code"] as? String }
    }

    /// One request; `token` goes in `Authorization: Bearer`, `headers` as given.
    func call(_ method: String, _ path: String, token: String?, body: String? = nil, headers: [String: String] = [:]) async throws -> Answer {
        var request = URLRequest(url: try #require(URL(string: "http://127.0.0.1:\(self.port)\(path)")))
        request.httpMethod = method
        request.httpBody = body.map { Data($0.utf8) }
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        let (data, response) = try await Self.session.data(for: request)
        let http = try #require(response as? HTTPURLResponse)
        var fields: [String: String] = [:]
        for (name, value) in http.allHeaderFields {
            if let name = name as? String, let value = value as? String { fields[name.lowercased()] = value }
        }
        let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
        return Answer(status: http.statusCode, json: json, headers: fields, body: String(decoding: data, as: UTF8.self))
    }
}

import Foundation
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore
import ServiceLifecycle

/// A real HTTP server on loopback that takes webhooks at `POST /NAME` and keeps what
/// arrived. `fail(NAME, times:)` makes the next requests to NAME answer 500.
final class WebhookReceiver: Sendable {
    struct Request: Sendable {
        var name: String
        var headers: [String: String]
        var body: String
        var status: Int
        var arrivedAt: Int64

        var json: [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(self.body.utf8))) as? [String: Any] ?? [:]
        }
    }

    private let requests: NIOLockedValueBox<[Request]>
    private let failures: NIOLockedValueBox<[String: Int]>
    private let task: Task<Void, any Error>
    private let group: ServiceGroup
    let port: Int

    static func start() async throws -> WebhookReceiver {
        let bound = AsyncStream.makeStream(of: Int.self)
        let requests = NIOLockedValueBox<[Request]>([])
        let failures = NIOLockedValueBox<[String: Int]>([:])
        let router = Router()
        router.post(":name") { request, context -> Response in
            var request = request
            let body = try await request.collectBody(upTo: 1 << 20)
            let name = context.parameters.get("name") ?? ""
            let failing = failures.withLockedValue { failures -> Bool in
                guard let left = failures[name], left > 0 else { return false }
                failures[name] = left - 1
                return true
            }
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName] = field.value }
            requests.withLockedValue {
                $0.append(
                    Request(
                        name: name, headers: headers, body: String(buffer: body), status: failing ? 500 : 204,
                        arrivedAt: Int64(Date().timeIntervalSince1970 * 1000)
                    )
                )
            }
            return Response(status: failing ? .internalServerError : .noContent)
        }
        var logger = Logger(label: "webhook-receiver")
        logger.logLevel = .warning
        let application = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in bound.continuation.yield(channel.localAddress?.port ?? 0) },
            logger: logger
        )
        let group = ServiceGroup(configuration: .init(services: [application], logger: logger))
        let task = Task { try await group.run() }
        var port = 0
        for await value in bound.stream {
            port = value
            break
        }
        return WebhookReceiver(requests: requests, failures: failures, task: task, group: group, port: port)
    }

    private init(
        requests: NIOLockedValueBox<[Request]>, failures: NIOLockedValueBox<[String: Int]>, task: Task<Void, any Error>,
        group: ServiceGroup, port: Int
    ) {
        self.requests = requests
        self.failures = failures
        self.task = task
        self.group = group
        self.port = port
    }

    func url(_ name: String) -> String { "http://127.0.0.1:\(self.port)/\(name)" }

    func fail(_ name: String, times: Int) {
        self.failures.withLockedValue { $0[name] = times }
    }

    /// Every request so far to `name` (all names when nil).
    func received(_ name: String? = nil) -> [Request] {
        self.requests.withLockedValue { $0.filter { name == nil || $0.name == name } }
    }

    func stop() async throws {
        await self.group.triggerGracefulShutdown()
        try await self.task.value
    }
}

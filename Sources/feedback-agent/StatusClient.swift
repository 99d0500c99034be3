import NIOCore
import NIOHTTP1
import NIOPosix

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What a running agent answers on `GET /status` (HTTPIntake), the fields `status` shows.
struct AgentStatusReply: Decodable {
    var connectedHub: String?
    var lastConnectionError: String?
    var unsealedRecords: Int?
    var unacknowledgedRecords: Int?
    var unacknowledgedBatches: Int?
    var oldestPendingCapturedAt: Int64?
    var spoolBytes: Int?
    var batchesAcknowledged: Int?
    var batchesDeadLettered: Int?
}

/// One `GET` to a running agent's HTTP intake over plain NIO: the agent is local, so a
/// full HTTP client (and the libcurl behind URLSession) would be most of the binary's
/// mapped libraries for one request.
enum StatusClient {
    /// Why the request failed, in one line.
    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    /// The body of `GET path` from `host:port` when it answers 200 within `timeout` with at
    /// most `maxBytes`.
    ///
    /// - Throws: ``Failure`` or the connection's error.
    static func get(host: String, port: Int, path: String, timeout: Duration = .seconds(10), maxBytes: Int = 1 << 20) async throws -> [UInt8] {
        try await withThrowingTaskGroup(of: [UInt8].self) { group in
            group.addTask { try await Self.request(host: host, port: port, path: path, maxBytes: maxBytes) }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw Failure("no answer within \(timeout.components.seconds) s")
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }

    private static func request(host: String, port: Int, path: String, maxBytes: Int) async throws -> [UInt8] {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(5))
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path)
            head.headers.add(name: "Host", value: host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)")
            head.headers.add(name: "Connection", value: "close")
            try await outbound.write(.head(head))
            try await outbound.write(.end(nil))
            var status: HTTPResponseStatus?
            var body = ByteBuffer()
            for try await part in inbound {
                switch part {
                case .head(let response):
                    status = response.status
                case .body(var chunk):
                    guard body.readableBytes + chunk.readableBytes <= maxBytes else {
                        throw Failure("the answer is larger than \(maxBytes) bytes")
                    }
                    body.writeBuffer(&chunk)
                case .end:
                    guard status == .ok else { throw Failure("answered HTTP \(status.map { "\($0.code)" } ?? "without a status")") }
                    return Array(body.readableBytesView)
                }
            }
            throw Failure("the connection closed before the answer was complete")
        }
    }
}

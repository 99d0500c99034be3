import Agent
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import Testing

/// The agent's side of a connection against peers that misbehave at the TCP level.
@Suite struct HubConnectionTests {
    @Test(.timeLimit(.minutes(1)))
    func aPeerThatAcceptsButNeverCompletesTheHandshakeIsDropped() async throws {
        // A TCP listener that accepts and then says nothing: no TLS, no CHALLENGE.
        let silent = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { $0.eventLoop.makeSucceededVoidFuture() }
            .bind(host: "127.0.0.1", port: 0).get()
        defer { silent.close(promise: nil) }
        let port = try #require(silent.localAddress?.port)
        let tls = try NIOSSLContext(configuration: .makeClientConfiguration())
        await #expect {
            _ = try await HubConnection.connect(
                host: "127.0.0.1", port: port, tls: tls, identity: AgentIdentity.generate(),
                handshakeTimeout: .milliseconds(300)
            )
        } throws: { error in
            (error as? ConnectionError)?.reason.contains("did not complete the handshake") == true
        }
    }
}

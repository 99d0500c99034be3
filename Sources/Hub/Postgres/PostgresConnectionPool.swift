import Dispatch
import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization

/// Up to ``size`` PostgreSQL connections, for callers that may block: the group committer's
/// thread, the servers' blocking pools (``StoreAccess``), the command line. Never call it on
/// an event loop or from async code: it waits for the database.
///
/// A connection is opened when needed and kept; one that failed a query is closed (it may
/// be mid-transaction or cut), so a database restart costs each caller one failed call, and
/// the next call connects anew. Every wait is bounded: for a free connection
/// (``leaseTimeout``), for a new connection (``connectTimeout``) and for a query
/// (``queryTimeout``: the connection is closed under it; a second after the connection
/// closed, since the driver may drop a query sent as it closes).
final class PostgresConnectionPool: Sendable {
    /// Longest wait for a free connection.
    static let leaseTimeout: DispatchTimeInterval = .seconds(10)
    /// Longest a query may take before its connection is closed under it.
    static let queryTimeout = TimeAmount.seconds(30)
    /// Longest wait for a new connection: TCP, TLS, startup and authentication.
    static let connectTimeout = TimeAmount.seconds(10)

    let size: Int
    private let configuration: PostgresConnection.Configuration
    private let group: any EventLoopGroup
    private let logger: Logger
    private let free: DispatchSemaphore
    private let idle = Mutex<[PostgresConnection]>([])
    private let nextID = Atomic<Int>(1)
    /// Connections leased now; for the pool metrics.
    let inUse = Atomic<Int>(0)

    init(configuration: PostgresConnection.Configuration, size: Int, group: any EventLoopGroup, logger: Logger) {
        self.configuration = configuration
        self.size = size
        self.group = group
        self.logger = logger
        self.free = DispatchSemaphore(value: size)
    }

    /// Runs `body` on a leased connection. Blocks.
    func withSession<T>(_ body: (PostgresSession) throws -> T) throws -> T {
        guard self.free.wait(timeout: .now() + Self.leaseTimeout) == .success else {
            throw StoreError("PostgreSQL: no connection of the pool's \(self.size) came free within 10 s")
        }
        self.inUse.add(1, ordering: .relaxed)
        defer {
            self.inUse.subtract(1, ordering: .relaxed)
            self.free.signal()
        }
        let connection = try self.idle.withLock({ $0.popLast() }).flatMap { $0.isClosed ? nil : $0 } ?? self.connect()
        do {
            let result = try body(PostgresSession(connection: connection, logger: self.logger))
            if !connection.isClosed { self.idle.withLock { $0.append(connection) } }
            return result
        } catch {
            Self.discard(connection)
            throw error
        }
    }

    /// Runs `body` in a transaction: COMMIT when it returns, ROLLBACK when it throws. When
    /// this returns, the transaction is durable (`synchronous_commit` is on). Blocks.
    func transaction<T>(_ body: (PostgresSession) throws -> T) throws -> T {
        try self.withSession { session in
            try session.execute("BEGIN")
            let result = try body(session)
            try session.execute("COMMIT")
            return result
        }
    }

    /// Closes the idle connections.
    func close() {
        for connection in self.idle.withLock({ idle in defer { idle = [] }; return idle }) {
            Self.discard(connection)
        }
    }

    /// Closes `connection` without waiting, holding it until it is closed (the driver asserts
    /// that no connection is released open).
    static func discard(_ connection: PostgresConnection) {
        let closed: EventLoopFuture<Void> = connection.close()
        closed.whenComplete { _ in withExtendedLifetime(connection) {} }
    }

    private func connect() throws -> PostgresConnection {
        let id = self.nextID.add(1, ordering: .relaxed).oldValue
        let server = "\(self.configuration.host ?? "the server"):\(self.configuration.port ?? 0)"
        let connecting = PostgresConnection.connect(on: self.group.next(), configuration: self.configuration, id: id, logger: self.logger)
        // The driver bounds the TCP connect; a server that accepts and then says nothing
        // (stuck in startup, or a black hole behind a proxy) is bounded here.
        switch Self.wait(for: connecting, within: Self.connectTimeout) {
        case .answered(.success(let connection)):
            return connection
        case .answered(.failure(let error)):
            throw StoreError("PostgreSQL: cannot connect to \(server): \(PostgresSession.describe(error))")
        case .closed, .timedOut:
            connecting.whenSuccess { Self.discard($0) }
            throw StoreError("PostgreSQL: cannot connect to \(server): no answer within \(Self.connectTimeout.nanoseconds / 1_000_000_000) s")
        }
    }

    /// How a bounded wait for a future ended.
    enum Wait<T> {
        case answered(Result<T, any Error>)
        /// `closing` completed and the future did not within a second after it.
        case closed
        case timedOut
    }

    /// Waits for `future`, at most `timeout`, and at most a second after `closing` completes.
    ///
    /// The driver writes a query to its channel without a promise for the write, so a query
    /// sent on a connection the server closed a moment before is dropped and its future never
    /// completes: no wait may rely on it alone. Blocks.
    static func wait<T: Sendable>(
        for future: EventLoopFuture<T>, closing: EventLoopFuture<Void>? = nil, within timeout: TimeAmount
    ) -> Wait<T> {
        let outcome = Mutex<Result<T, any Error>?>(nil)
        let signal = DispatchSemaphore(value: 0)
        future.whenComplete { result in
            outcome.withLock { $0 = result }
            signal.signal()
        }
        closing?.whenComplete { _ in signal.signal() }
        let deadline = DispatchTime.now() + .nanoseconds(Int(timeout.nanoseconds))
        var closedAt: DispatchTime?
        while true {
            let until = closedAt.map { Swift.min($0 + .seconds(1), deadline) } ?? deadline
            let timedOut = signal.wait(timeout: until) == .timedOut
            if let result = outcome.withLock({ $0 }) { return .answered(result) }
            if timedOut { return closedAt == nil ? .timedOut : .closed }
            closedAt = closedAt ?? .now()
        }
    }
}

/// One leased connection. Each query waits for its answer, at most
/// ``PostgresConnectionPool/queryTimeout``.
struct PostgresSession {
    let connection: PostgresConnection
    let logger: Logger

    /// Runs `query` and returns its rows.
    @discardableResult
    func query(_ query: PostgresQuery) throws -> PostgresQueryResult {
        let connection = self.connection
        guard !connection.isClosed else { throw StoreError("PostgreSQL: the connection was closed (the server went away)") }
        let answer = connection.query(query, logger: self.logger)
        switch PostgresConnectionPool.wait(for: answer, closing: connection.closeFuture, within: PostgresConnectionPool.queryTimeout) {
        case .answered(.success(let result)):
            return result
        case .answered(.failure(let error)):
            throw StoreError("PostgreSQL: \(Self.describe(error))")
        case .closed:
            throw StoreError("PostgreSQL: the connection was closed (the server went away)")
        case .timedOut:
            PostgresConnectionPool.discard(connection)
            throw StoreError("PostgreSQL: no answer within \(PostgresConnectionPool.queryTimeout.nanoseconds / 1_000_000_000) s; the connection was closed")
        }
    }

    /// Runs a statement that returns no rows.
    func execute(_ query: PostgresQuery) throws {
        try self.query(query)
    }

    /// What went wrong, for logs and errors: the server's message when it sent one, never
    /// a bound value or a password.
    static func describe(_ error: any Error) -> String {
        guard let error = error as? PSQLError else { return "\(error)" }
        if let message = error.serverInfo?[.message] {
            let code = error.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? ""
            return message + code
        }
        return "\(error.code)" + (error.underlying.map { ": \($0)" } ?? "")
    }

    /// The SQLSTATE of a server error, if `error` is one.
    static func sqlState(_ error: any Error) -> String? {
        (error as? PSQLError)?.serverInfo?[.sqlState]
    }
}

import Foundation
import NIOPosix

/// Everything a hub keeps: ratings (``RecordStore``), the node registry (``RegistryStore``),
/// alerts and their outbox (``AlertStore``), reports (``ReportStore``) and the fleet's status
/// (``FleetStatusStore``), and its upkeep (``StoreUpkeep``). One hub holds one: ``SQLiteStore``,
/// the embedded default, or ``PostgresStore``, which several hubs share.
///
/// Each part of the hub takes only the protocol of what it uses.
public typealias FeedbackStore = AccessStore & AlertStore & FleetStatusStore & RecordStore & RegistryStore & ReportStore & StoreUpkeep

/// A store failure, with a message naming what failed.
public struct StoreError: Error, CustomStringConvertible {
    /// What failed.
    public var description: String

    /// Creates an error.
    public init(_ description: String) {
        self.description = description
    }
}

/// Runs blocking store calls from async code on a thread pool of their own, so no store call
/// holds an event loop or one of Swift concurrency's few threads while the disk or the
/// database answers, and no other blocking work (NIO's shared pool has one thread per core)
/// delays the alert outbox or the store's ping.
public enum StoreAccess {
    /// Threads that may block on a store, shared by the hubs of a process: enough for the
    /// alert API, the dispatcher, the fleet monitor and the store watch to wait on a slow
    /// database at once.
    public static let threads = 8

    private static let pool: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: StoreAccess.threads)
        pool.start()
        return pool
    }()

    /// Runs `body` on the store threads and returns its result.
    public static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await Self.pool.runIfActive(body)
    }
}

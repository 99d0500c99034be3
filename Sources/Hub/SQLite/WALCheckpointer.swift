import Dispatch
import Foundation
import GRDBSQLite
import Support

/// Copies the write-ahead log into the database file from a thread and connection of its
/// own, every ``interval``, so the commit thread seldom has to.
///
/// SQLite checkpoints in the connection that commits once the WAL holds 1,000 pages: the
/// commit that crosses it also copies those pages into the database file and fsyncs it,
/// and a fresh alert's batch waiting behind that commit waits for the copy too. A passive
/// checkpoint here copies what is committed without blocking the writer or readers; the
/// writer's own checkpoint still runs at 1,000 pages, finds little left to copy, and keeps
/// the WAL as bounded as before. A checkpoint that finds the writer's own under way gets
/// `SQLITE_BUSY` and tries again at the next tick.
final class WALCheckpointer: Sendable {
    /// How often a checkpoint runs.
    static let interval: DispatchTimeInterval = .milliseconds(50)

    private let stopping = DispatchSemaphore(value: 0)
    private let stopped = DispatchSemaphore(value: 0)

    /// Opens a connection to the database at `path` and starts checkpointing it; nil when
    /// the connection cannot be opened (the writer's own checkpoints then do it all).
    init?(path: String) {
        var connection: OpaquePointer?
        guard sqlite3_open_v2(path, &connection, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nil) == SQLITE_OK,
            let connection
        else {
            sqlite3_close_v2(connection)
            return nil
        }
        // As the store's own connections: the database file is fsync'd after each copy.
        sqlite3_exec(connection, "PRAGMA synchronous = FULL", nil, nil, nil)
        let database = Connection(connection)
        Thread.start(named: "hub-checkpoint") { [stopping, stopped] in
            while stopping.wait(timeout: .now() + Self.interval) == .timedOut {
                sqlite3_wal_checkpoint_v2(database.pointer, nil, SQLITE_CHECKPOINT_PASSIVE, nil, nil)
            }
            sqlite3_close_v2(database.pointer)
            stopped.signal()
        }
    }

    /// Ends the thread and closes its connection; returns once both are done (at once when
    /// called again).
    func stop() {
        self.stopping.signal()
        self.stopped.wait()
        self.stopped.signal()
    }

    /// The connection, used by the checkpointer's thread alone.
    private struct Connection: @unchecked Sendable {
        let pointer: OpaquePointer
        init(_ pointer: OpaquePointer) { self.pointer = pointer }
    }
}

/// What a store needs done while the hub runs, and what it tells about its health. Every
/// method blocks; call them off the event loops and off Swift concurrency's threads.
public protocol StoreUpkeep: Sendable {
    /// Answers when the store can be read and written now; throws ``StoreError`` saying why
    /// not. `/readyz` says not ready while it throws.
    func ping() throws

    /// Periodic upkeep at `now` (ms since the epoch): for PostgreSQL, record partitions
    /// made ahead and old ones dropped by the retention setting. Idempotent; safe when
    /// several hubs run it together.
    func maintain(now: Int64) throws

    /// The connection pool's use now: connections leased and the pool's size; nil for a
    /// store without a pool.
    var poolUsage: (inUse: Int, size: Int)? { get }

    /// The store's kind for metric labels and logs: `sqlite` or `postgres`.
    var kind: String { get }
}

import CoreMetrics
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOPosix
@testable import Hub
import PostgresNIO
import TestSupport
import Testing
import Wire

/// What only the shared store does: partitions, several hubs (store instances) on one
/// database at once, claims. A real PostgreSQL server (scripts/test.sh starts one).
@Suite(.serialized)
struct PostgresStoreTests {
    /// 2026-12-15T00:00:00Z, ms.
    static let december: Int64 = 1_797_292_800_000
    static let day: Int64 = 86_400_000

    /// A UUIDv7 whose time is `ms`.
    static func id(at ms: Int64, _ index: Int) -> UUID {
        var bytes = [UInt8](repeating: 0, count: 16)
        for shift in 0..<6 { bytes[shift] = UInt8(truncatingIfNeeded: UInt64(ms) >> UInt64(40 - 8 * shift)) }
        bytes[6] = 0x70
        bytes[8] = 0x80
        bytes[15] = UInt8(truncatingIfNeeded: index)
        bytes[14] = UInt8(truncatingIfNeeded: index >> 8)
        return UUID(uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7], bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]))
    }

    static func partitions(_ settings: PostgresSettings) throws -> [String] {
        try TestStores.sql(
            settings,
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'records'::regclass ORDER BY 1"
        ).map { try $0.decode(String.self) }
    }

    @Test func partitionsAreMadeAheadAndAFutureIdMovesIntoItsMonth() throws {
        var settings = try TestStores.makeDatabase()
        defer { try? TestStores.dropDatabase(settings) }
        settings.partitionsAhead = 1
        let store = try PostgresStore(settings: settings, logger: TestStores.logger, now: Self.december)
        #expect(try Self.partitions(settings) == ["records_default", "records_y2026m12", "records_y2027m01"])
        // A node whose clock runs months ahead: its record waits in the default partition…
        var record = Samples.popupRecord(1)
        record.id = Self.id(at: Self.december + 120 * Self.day, 1)
        _ = try store.commit([IncomingBatch(key: BatchKey(origin: record.origin, sequence: 1), records: [record], receivedAt: 1)])
        let where1 = try TestStores.sql(settings, "SELECT tableoid::regclass::text FROM records").map { try $0.decode(String.self) }
        #expect(where1 == ["records_default"])
        // …and moves into its month's partition when that is made.
        try store.maintain(now: Self.december + 120 * Self.day)
        let where2 = try TestStores.sql(settings, "SELECT tableoid::regclass::text FROM records").map { try $0.decode(String.self) }
        #expect(where2 == ["records_y2027m04"])
        #expect(try store.recordCount() == 1)
        // Still one record under that id: a re-send is a duplicate whatever partition holds it.
        #expect(try store.commit([IncomingBatch(key: BatchKey(origin: record.origin, sequence: 2), records: [record], receivedAt: 2)]) == [.stored(newRecords: 0)])
    }

    @Test func retentionDropsWholeOldMonthsOnly() throws {
        var settings = try TestStores.makeDatabase()
        defer { try? TestStores.dropDatabase(settings) }
        settings.partitionsAhead = 1
        let old = Self.december - 200 * Self.day
        let store = try PostgresStore(settings: settings, logger: TestStores.logger, now: old)
        var record = Samples.popupRecord(1)
        record.id = Self.id(at: old, 1)
        _ = try store.commit([IncomingBatch(key: BatchKey(origin: record.origin, sequence: 1), records: [record], receivedAt: 1)])
        settings.retentionMonths = 3
        let later = try PostgresStore(settings: settings, logger: TestStores.logger, now: Self.december)
        let left = try Self.partitions(settings)
        #expect(left == ["records_default", "records_y2026m12", "records_y2027m01"], "May and June dropped: \(left)")
        #expect(try later.recordCount() == 0)
        // The batch is still known: re-sent, it is a duplicate.
        #expect(try later.commit([IncomingBatch(key: BatchKey(origin: record.origin, sequence: 1), records: [record], receivedAt: 1)]) == [.duplicate])
    }

    /// Two hubs (two stores) committing the same batches at the same moment: each batch is
    /// stored by one and a duplicate at the other, and each detractor alerts once.
    @Test func twoHubsCommittingTheSameBatchesStoreEachOnce() async throws {
        let settings = try TestStores.makeDatabase()
        defer { try? TestStores.dropDatabase(settings) }
        let rules = try StoreContractTests.rules()
        let one = try PostgresStore(settings: settings, alerts: rules, logger: TestStores.logger)
        let two = try PostgresStore(settings: settings, alerts: rules, logger: TestStores.logger)
        let batches = (1...40).map { sequence in
            StoreContractTests.batch(UInt64(sequence), (0..<20).map { StoreContractTests.detractor(sequence * 100 + $0) })
        }
        async let first = offThePool { try batches.map { try one.commit([$0])[0] } }
        async let second = offThePool { try batches.reversed().map { try two.commit([$0])[0] }.reversed() }
        let (a, b) = try await (first, Array(second))
        for (x, y) in zip(a, b) {
            #expect(Set([x, y]) == [.stored(newRecords: 20), .duplicate], "one stored, one duplicate: \(x), \(y)")
        }
        #expect(try one.recordCount() == 800)
        #expect(try one.alerts(status: nil, site: nil, within: .any, overdueAt: nil, limit: 1000).count == 800)
    }

    /// A hub on PostgreSQL commits on two connections at once (`commitWriters`): every
    /// batch is stored once, each origin's batches are committed in order by one writer,
    /// and both writers work.
    @Test func twoCommitWritersKeepEachOriginsBatchesInOrder() async throws {
        let settings = try TestStores.makeDatabase()
        defer { try? TestStores.dropDatabase(settings) }
        let store = CommitLog(try PostgresStore(settings: settings, alerts: try StoreContractTests.rules(), logger: TestStores.logger))
        #expect(store.commitWriters == 2, "the default")
        // Three origins for each writer.
        var origins: [UUID] = []
        while origins.count < 6 {
            let origin = UUID()
            if origins.filter({ GroupCommitter.writer(of: $0, among: 2) == GroupCommitter.writer(of: origin, among: 2) }).count < 3 {
                origins.append(origin)
            }
        }
        let committer = GroupCommitter(store: store, writers: store.commitWriters, metrics: HubMetrics(factory: NOOPMetricsHandler.instance), logger: TestStores.logger)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var futures: [EventLoopFuture<CommitOutcome>] = []
        for sequence in 1...30 {
            for (index, origin) in origins.enumerated() {
                let records = (0..<10).map { StoreContractTests.calm(index * 10_000 + sequence * 10 + $0) }
                futures.append(committer.submit(StoreContractTests.batch(UInt64(sequence), records, origin: origin), on: group.next()))
            }
        }
        let outcomes = try await EventLoopFuture.whenAllSucceed(futures, on: group.next()).get()
        committer.stop()
        try await group.shutdownGracefully()

        #expect(outcomes.allSatisfy { $0 == .stored(newRecords: 10) })
        #expect(try store.recordCount() == 1_800)
        let calls = store.calls.withLockedValue { $0 }
        for origin in origins {
            let handed = calls.flatMap { call in call.keys.filter { $0.origin == origin }.map { (call.thread, $0.sequence) } }
            #expect(handed.map(\.1) == Array(1...30), "origin \(origin) committed in order")
            #expect(Set(handed.map(\.0)).count == 1, "origin \(origin) by one writer")
            #expect(try store.committedSequence(origin: origin) == 30)
        }
        #expect(Set(calls.map(\.thread)).count == 2, "both writers committed: \(Set(calls.map(\.thread)))")
    }

    /// Old window events go in chunks, however many there are; newer ones stay.
    @Test func pruningWindowEventsTakesEveryOldOneInChunksAndKeepsTheRest() throws {
        let settings = try TestStores.makeDatabase()
        defer { try? TestStores.dropDatabase(settings) }
        let store = try PostgresStore(settings: settings, logger: TestStores.logger)
        _ = try TestStores.sql(
            settings,
            """
            INSERT INTO alert_window_events (rule, key, occurred_at, record_id, negative, stored_at)
            SELECT 'r', 'k', n, gen_random_uuid(), false, n FROM generate_series(1, 25000) AS n
            """
        )
        try store.pruneAlertWindows(before: 24_001)
        let left = try TestStores.sql(settings, "SELECT COUNT(*), MIN(stored_at) FROM alert_window_events").first?.decode((Int, Int64).self)
        #expect(left?.0 == 1_000 && left?.1 == 24_001, "\(String(describing: left))")
    }

    /// Two hubs asking for due deliveries at once each get their own; a claim whose lease
    /// ended (its hub died) goes to the other.
    @Test func aDeliveryIsClaimedByOneHubAndPassesOnWhenItsLeaseEnds() async throws {
        let settings = try TestStores.makeDatabase()
        defer { try? TestStores.dropDatabase(settings) }
        let rules = try StoreContractTests.rules()
        let one = try PostgresStore(settings: settings, alerts: rules, logger: TestStores.logger)
        let two = try PostgresStore(settings: settings, alerts: rules, logger: TestStores.logger)
        _ = try one.commit([StoreContractTests.batch(1, (0..<30).map(StoreContractTests.detractor))])
        let now = Int64(Date().timeIntervalSince1970 * 1000) + 1_000
        async let a = offThePool { try one.dueDeliveries(now: now, limit: 20, excluding: []) }
        async let b = offThePool { try two.dueDeliveries(now: now, limit: 20, excluding: []) }
        let (first, second) = try await (a, b)
        #expect(first.count + second.count == 30)
        #expect(Set(first.map(\.id)).isDisjoint(with: second.map(\.id)))
        // Hub one "dies" holding its claims: after the lease, hub two takes them.
        #expect(try two.dueDeliveries(now: now + 1, limit: 50, excluding: []).isEmpty)
        let lease = rules.delivery.timeoutMilliseconds * 2 + 5_000
        let taken = try two.dueDeliveries(now: now + lease + 1, limit: 50, excluding: Set(second.map(\.id)))
        #expect(Set(taken.map(\.id)) == Set(first.map(\.id)))
        // Hub one comes back late: its outcome no longer counts; hub two's does.
        let late = try #require(taken.first)
        try one.deliveryFailed(late.id, error: "late", retryAt: nil)
        try one.deliveryDone(late.id, at: now)
        #expect(try one.deliveryCounts()["dead"] == nil && one.deliveryCounts()["delivered"] == nil)
        try two.deliveryDone(late.id, at: now + lease + 2)
        #expect(try one.deliveryCounts()["delivered"] == 1)
    }

    /// The server ends the store's sessions again and again, some in the middle of a commit's
    /// transaction: a call whose connection was ended fails, bounded, the next connects
    /// anew, and nothing is stored twice. (The driver drops a query written just after its
    /// connection closed, and that query's future never completes: before the pool bounded
    /// the wait, a database restart could hang a hub's committer for good.)
    @Test func sessionsTheServerEndsCostOneCallEachAndNeverHang() async throws {
        let settings = try TestStores.makeDatabase()
        defer { try? TestStores.dropDatabase(settings) }
        let store = try PostgresStore(settings: settings, alerts: try StoreContractTests.rules(), logger: TestStores.logger)
        let done = NIOLockedValueBox(false)
        let terminated = NIOLockedValueBox(0)
        let stopped = DispatchSemaphore(value: 0)
        // The store's sessions only: not the server's own (autovacuum) nor the one asking.
        let terminator = Thread {
            while !done.withLockedValue({ $0 }) {
                let ended = try? TestStores.sql(
                    settings,
                    """
                    SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                    WHERE datname = current_database() AND usename = current_user AND pid <> pg_backend_pid()
                    """
                ).count
                terminated.withLockedValue { $0 += ended ?? 0 }
                Thread.sleep(forTimeInterval: Double.random(in: 0.02...0.08))
            }
            stopped.signal()
        }
        terminator.start()
        defer { done.withLockedValue { $0 = true } }
        // A hang guard: each call is bounded (a second after its connection closed, 30 s at most).
        let (stored, failures) = try await offThePool(within: .seconds(120)) { () throws -> (Int, Int) in
            var (stored, failures) = (0, 0)
            for sequence in 1...40 {
                let batch = StoreContractTests.batch(UInt64(sequence), (0..<5).map { StoreContractTests.detractor(sequence * 10 + $0) })
                // Retried until stored; on a busy machine a commit may lose many races in a row.
                let deadline = ContinuousClock.now + .seconds(30)
                while ContinuousClock.now < deadline {
                    do {
                        _ = try store.commit([batch])
                        stored += 1
                        break
                    } catch {
                        failures += 1
                    }
                }
            }
            return (stored, failures)
        }
        done.withLockedValue { $0 = true }
        stopped.wait()
        print("sessions ended: \(terminated.withLockedValue { $0 }), failed commits: \(failures)")
        #expect(failures > 0, "the server ended sessions under the commits")
        #expect(stored == 40, "every batch stored once retried (failed tries: \(failures))")
        #expect(try store.recordCount() == 200)
        #expect(try store.alerts(status: nil, site: nil, within: .any, overdueAt: nil, limit: 1000).count == 200)
    }

    /// Hubs starting together on an empty database migrate it once.
    @Test func hubsStartingTogetherMigrateOnce() async throws {
        let settings = try TestStores.makeDatabase()
        defer { try? TestStores.dropDatabase(settings) }
        let stores = try await withThrowingTaskGroup(of: (any FeedbackStore).self) { group in
            for _ in 0..<4 { group.addTask { try await offThePool { try PostgresStore(settings: settings, logger: TestStores.logger) } } }
            return try await group.reduce(into: [any FeedbackStore]()) { $0.append($1) }
        }
        #expect(stores.count == 4)
        let versions = try TestStores.sql(settings, "SELECT version FROM schema_migrations").map { try $0.decode(String.self) }
        #expect(versions.sorted() == PostgresSchema.migrations.map(\.version).sorted(), "each migration once")
    }

    @Test func aBadPasswordOrAnUnreachableServerIsNamedNotHidden() throws {
        var settings = try TestStores.serverSettings()
        settings.passwordEnv = "FEEDBACK_TEST_NO_SUCH_VARIABLE"
        #expect(throws: PostgresSettingsError.self) { try PostgresStore(settings: settings, logger: TestStores.logger) }
        settings.passwordEnv = TestStores.passwordVariable
        settings.port = try CrashTests.freePort()
        let error = #expect(throws: StoreError.self) { try PostgresStore(settings: settings, logger: TestStores.logger) }
        #expect(error?.description.contains("cannot connect") == true)
        #expect(error?.description.contains(ProcessInfo.processInfo.environment[TestStores.passwordVariable] ?? "-") == false)
    }
}

/// The `store:` URL and the `postgres` section: every mistake named.
struct PostgresSettingsTests {
    @Test func aURLWithAPasswordOrParametersIsRefused() {
        let cases: [(String, String)] = [
            ("postgres://u:secret@db/x", "holds a password"),
            ("postgres://u@db/x?sslmode=require", "may not carry parameters"),
            ("postgres://db/x", "names no user"),
            ("postgres://u@db", "names no database"),
        ]
        for (url, message) in cases {
            let error = #expect(throws: PostgresSettingsError.self) { try PostgresSettings(url: url) }
            #expect(error?.description.contains(message) == true, "\(url): \(error?.description ?? "accepted")")
            #expect(error?.description.contains("secret") == false)
        }
        #expect(throws: PostgresSettingsError.self) { try PostgresSettings(url: "postgres://u@db:70000/x") }
        let good = try? PostgresSettings(url: "postgresql://feedback@db.internal:6432/feedback")
        #expect(good?.host == "db.internal" && good?.port == 6432 && good?.user == "feedback" && good?.database == "feedback")
        #expect(good?.redactedURL == "postgres://feedback@db.internal:6432/feedback")
    }

    @Test func aPasswordFileOthersMayReadIsRefused() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("pw-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try "hunter2\n".write(toFile: path, atomically: true, encoding: .utf8)
        var settings = try PostgresSettings(url: "postgres://u@db/x")
        settings.passwordFile = path
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
        let error = #expect(throws: PostgresSettingsError.self) { try settings.password() }
        #expect(error?.description.contains("chmod 600") == true)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        #expect(try settings.password() == "hunter2")
        // Saved with Windows line endings: the password without them.
        try Data("hunter2\r\nsecond line\r\n".utf8).write(to: URL(fileURLWithPath: path))
        #expect(try settings.password() == "hunter2")
        // Through a symbolic link (as container secrets are mounted): the file's mode counts.
        let link = path + ".link"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: path)
        defer { try? FileManager.default.removeItem(atPath: link) }
        settings.passwordFile = link
        #expect(try settings.password() == "hunter2")
        // A FIFO would block the hub's start: refused, not opened.
        let fifo = path + ".fifo"
        #expect(mkfifo(fifo, 0o600) == 0)
        defer { try? FileManager.default.removeItem(atPath: fifo) }
        settings.passwordFile = fifo
        let notAFile = #expect(throws: PostgresSettingsError.self) { try settings.password() }
        #expect(notAFile?.description.contains("is not a regular file") == true)
        settings.passwordFile = path
        settings.passwordEnv = "X"
        #expect(throws: PostgresSettingsError.self) { try settings.check() }
        // verify with an address and no CA: the name could not be checked.
        var byAddress = try PostgresSettings(url: "postgres://u@10.0.0.5/x")
        byAddress.tls = .verify
        let refusal = #expect(throws: PostgresSettingsError.self) { try byAddress.check() }
        #expect(refusal?.description.contains("needs postgres.caFile") == true)
        byAddress.caFile = "/etc/db-ca.pem"
        #expect(throws: Never.self) { try byAddress.check() }
    }

    @Test func thePostgresSectionIsCheckedInHubYAML() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("pgconf-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let base = "hubId: \(UUID().uuidString)\ntls: {certificate: hub.pem, privateKey: hub-key.pem}\n"
        let cases: [(String, String)] = [
            ("store: feedback.sqlite\npostgres: {poolSize: 4}\n", "store is not a postgres:// URL"),
            ("store: postgres://u@db/x\npostgres: {poolSize: 0}\n", "postgres.poolSize must be 1–200, got 0"),
            ("store: postgres://u@db/x\npostgres: {tls: maybe}\n", "postgres.tls: must be disable, require or verify"),
            ("store: postgres://u@db/x\npostgres: {passwordFile: a, passwordEnv: B}\n", "not both"),
            ("store: postgres://u@db/x\npostgres: {colour: red}\n", "colour"),
            ("store: postgres://u@db/x\npostgres: {commitWriters: 0}\n", "postgres.commitWriters must be 1–16, got 0"),
            ("store: postgres://u@db/x\npostgres: {poolSize: 2, commitWriters: 2}\n", "must be less than postgres.poolSize (2)"),
            ("store: postgres://u@db/x\npostgres: {poolSize: 1, commitWriters: 2}\n", "must be less than postgres.poolSize (1)"),
        ]
        for (text, message) in cases {
            let path = folder.appendingPathComponent("hub.yaml").path
            try (base + text).write(toFile: path, atomically: true, encoding: .utf8)
            let error = #expect(throws: ConfigurationError.self) { try HubConfiguration.load(from: path) }
            #expect(error?.description.contains(message) == true, "\(text): \(error?.description ?? "accepted")")
        }
        let path = folder.appendingPathComponent("hub.yaml").path
        try (base + "store: postgres://u@db:5433/x\npostgres: {passwordEnv: PW, tls: require, poolSize: 3, commitWriters: 1, retentionMonths: 12}\n")
            .write(toFile: path, atomically: true, encoding: .utf8)
        let settings = try #require(try HubConfiguration.load(from: path).postgres())
        #expect(settings.port == 5433 && settings.tls == .require && settings.poolSize == 3 && settings.commitWriters == 1 && settings.retentionMonths == 12)
        // Unset, the writers fit the pool: a pool of one or two (valid before there were
        // writers) gets one writer.
        for (pool, writers) in [(1, 1), (2, 1), (3, 2), (8, 2)] {
            try (base + "store: postgres://u@db/x\npostgres: {poolSize: \(pool)}\n").write(toFile: path, atomically: true, encoding: .utf8)
            #expect(try HubConfiguration.load(from: path).postgres()?.commitWriters == writers, "poolSize \(pool)")
        }
    }
}

/// The real store, with a note of each commit call: which thread made it, and the
/// keys it was handed, in order.
private final class CommitLog: RecordStore, Sendable {
    let store: PostgresStore
    let calls = NIOLockedValueBox<[(thread: String, keys: [BatchKey])]>([])

    init(_ store: PostgresStore) {
        self.store = store
    }

    func commit(_ batches: [IncomingBatch]) throws -> [CommitOutcome] {
        self.calls.withLockedValue { $0.append(("\(pthread_self())", batches.map(\.key))) }
        return try self.store.commit(batches)
    }

    func isCommitted(_ key: BatchKey) throws -> Bool { try self.store.isCommitted(key) }
    func committedSequence(origin: UUID) throws -> UInt64 { try self.store.committedSequence(origin: origin) }
    func recordCount() throws -> Int { try self.store.recordCount() }
    func batchCount() throws -> Int { try self.store.batchCount() }
    var commitWriters: Int { self.store.commitWriters }
}

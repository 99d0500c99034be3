import Agent
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import GRDB
import TestSupport
import Testing

/// A kiosk whose presses cannot go into the spool (it is at its quota and the hub is
/// down), as a real `feedback-agent run` process. From a FIFO (or a file) nothing is
/// lost: the agent stops reading while its buffer is full and the writer waits. From a
/// character device, which cannot wait, every press beyond the buffer is counted and
/// logged with its source.
@Suite(.serialized) struct KioskBufferTests {
    static let capacity = 10_000

    /// An agent whose spool is full while its hub is down; `start()` brings the hub back.
    struct StalledAgent {
        let hubFolder: URL
        let hubPort: Int
        let folder: String
        let agent: Process
        let http: Int
        let log: String
        let filled: Int

        /// Starts the agent with a kiosk source reading `device`, and fills its spool.
        static func start(device: String) async throws -> StalledAgent {
            let hub = try await HubHarness.start()
            let (folder, _) = try hub.agentFolder("agent")
            try await hub.stop()
            let http = try CrashTests.freePort()
            let config = folder + "/agent.yaml"
            try """
                identity: agent.json
                hubs: ["127.0.0.1:\(hub.port)"]
                ca: \(hub.caPath)
                spool: {directory: spool, fsync: "5", segmentBytes: 16384, quotaBytes: 262144}
                batch: {maxRecords: 200, maxAgeMs: 20}
                http: {listen: "127.0.0.1:\(http)"}
                sources:
                  - name: entrance
                    kind: kiosk
                    device: \(device)
                    site: branch-042
                    kiosk: entrance-1
                    keys: {KEY_1: 1, KEY_2: 2, KEY_3: 3, KEY_4: 4}
                """.write(toFile: config, atomically: true, encoding: .utf8)
            let log = folder + "/agent.log"
            let agent = try launch(SourcesProcessTests.binary, ["run", "--config", config, "--log-level", "info"], log: log)
            var stalled = StalledAgent(hubFolder: hub.folder, hubPort: hub.port, folder: folder, agent: agent, http: http, log: log, filled: 0)
            #expect(await eventually { (try? await stalled.get("/healthz")) != nil }, "the agent's HTTP intake came up")
            // Fill the spool to its quota: fifty ratings a request, then one, until refused.
            var filled = 0
            for size in [50, 1] {
                let body = "[" + Array(repeating: #"{"source":"popup","scale":"nps","score":7}"#, count: size).joined(separator: ",") + "]"
                for _ in 0..<2_000 {
                    guard try await stalled.post(body) == 202 else { break }
                    filled += size
                }
            }
            #expect(try await stalled.post(#"{"source":"popup","scale":"nps","score":7}"#) == 503, "the spool is full")
            stalled = StalledAgent(hubFolder: hub.folder, hubPort: hub.port, folder: folder, agent: agent, http: http, log: log, filled: filled)
            return stalled
        }

        func get(_ path: String) async throws -> String {
            var request = URLRequest(url: URL(string: "http://127.0.0.1:\(self.http)\(path)")!)
            request.timeoutInterval = 5
            let (data, _) = try await URLSession.shared.data(for: request)
            return String(decoding: data, as: UTF8.self)
        }

        func post(_ body: String) async throws -> Int {
            var request = URLRequest(url: URL(string: "http://127.0.0.1:\(self.http)/v1/feedback")!)
            request.httpMethod = "POST"
            request.httpBody = Data(body.utf8)
            request.timeoutInterval = 5
            let (_, response) = try await URLSession.shared.data(for: request)
            return (response as? HTTPURLResponse)?.statusCode ?? 0
        }

        func metric(_ series: String) async -> Double? {
            guard let text = try? await self.get("/metrics") else { return nil }
            return AgentMetricsTests.value("\n" + text, series)
        }

        /// The hub again, on the port the agent knows.
        func startHub() async throws -> HubHarness {
            try await HubHarness.start(folder: self.hubFolder) { $0.listen = "127.0.0.1:\(self.hubPort)" }
        }

        func stop(_ hub: HubHarness) async throws {
            kill(self.agent.processIdentifier, SIGTERM)
            await waitForExit(self.agent)
            #expect(self.agent.terminationStatus == 0)
            try await hub.stopAndRemove()
        }
    }

    /// `count` key-downs (codes 2–5 in turn), each followed by its release, one second
    /// apart: no press is contact bounce.
    static func presses(_ count: Int, from start: Int64) -> [UInt8] {
        (0..<count).flatMap { index -> [UInt8] in
            let code = UInt16(2 + index % 4)
            let second = start + Int64(index)
            return InputEvent(seconds: second, microseconds: 0, type: 1, code: code, value: 1).bytes
                + InputEvent(seconds: second, microseconds: 80_000, type: 1, code: code, value: 0).bytes
        }
    }

    /// When each kiosk rating in the hub happened.
    static func pressTimes(_ hub: HubHarness) throws -> [Int64] {
        try hub.hub.sqlite.read { db in try Int64.fetchAll(db, sql: "SELECT occurred_at FROM records WHERE source = 2") }
    }

    @Test func aFIFOIsReadNoFurtherWhileTheSpoolIsFullAndNoPressIsLost() async throws {
        #expect(FileManager.default.fileExists(atPath: SourcesProcessTests.binary), "build first: swift build --build-tests")
        let fifoFolder = FileManager.default.temporaryDirectory.appendingPathComponent("kiosk-\(UUID())").path
        try FileManager.default.createDirectory(atPath: fifoFolder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: fifoFolder) }
        let fifo = fifoFolder + "/kiosk.events"
        #expect(mkfifo(fifo, 0o600) == 0)
        let stalled = try await StalledAgent.start(device: fifo)
        defer { if stalled.agent.isRunning { kill(stalled.agent.processIdentifier, SIGKILL) } }

        var writer: Int32 = -1
        _ = await eventually {
            writer = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC)
            return writer >= 0
        }
        try #require(writer >= 0, "the agent opened the kiosk FIFO")
        // More presses than the buffer and the pipe hold together.
        let total = 12_000
        let start = Int64(Date().timeIntervalSince1970) - 20_000
        let bytes = Self.presses(total, from: start)
        let fd = writer
        let written = Task { try await offThePool { writeAll(fd, bytes, seconds: 180) } }

        // The buffer fills, and then the writer has to wait: the agent reads no further.
        #expect(await eventually(seconds: 30) { await stalled.metric(#"feedback_agent_source_buffered_events{source="entrance"}"#) == Double(Self.capacity) })
        #expect(try String(contentsOfFile: stalled.log, encoding: .utf8).contains("kiosk buffer full; reading paused"))
        #expect(await stalled.metric(#"feedback_agent_source_lines_total{source="entrance",outcome="dropped"}"#) == 0)
        let hub = try await stalled.startHub()
        #expect(try await written.value == bytes.count, "the writer could write everything once the spool took presses again")
        close(writer)

        #expect(try await eventually(seconds: 120) { try Self.pressTimes(hub).count >= total && hub.recordCount >= stalled.filled + total })
        let times = try Self.pressTimes(hub)
        #expect(times.count == total && Set(times) == Set((0..<Int64(total)).map { (start + $0) * 1000 }), "every press once")
        #expect(try hub.recordCount == stalled.filled + total)
        #expect(await stalled.metric(#"feedback_agent_source_lines_total{source="entrance",outcome="rating"}"#) == Double(total))
        #expect(await stalled.metric(#"feedback_agent_source_lines_total{source="entrance",outcome="dropped"}"#) == 0)
        try await stalled.stop(hub)
    }

    @Test func aDeviceThatCannotWaitHasEveryDroppedPressCountedAndLogged() async throws {
        #expect(FileManager.default.fileExists(atPath: SourcesProcessTests.binary), "build first: swift build --build-tests")
        // A pseudo-terminal in raw mode is a character device that passes bytes unchanged,
        // as the kernel's input device does.
        let (master, device) = try #require(Self.pseudoTerminal(), "a pseudo-terminal from /dev/ptmx")
        defer { close(master) }
        let slave = open(device, O_RDWR | O_NOCTTY | O_CLOEXEC)
        try #require(slave >= 0)
        defer { close(slave) }
        var settings = termios()
        tcgetattr(slave, &settings)
        cfmakeraw(&settings)
        #expect(tcsetattr(slave, TCSANOW, &settings) == 0)

        let stalled = try await StalledAgent.start(device: device)
        defer { if stalled.agent.isRunning { kill(stalled.agent.processIdentifier, SIGKILL) } }
        #expect(await eventually { (try? String(contentsOfFile: stalled.log, encoding: .utf8))?.contains("kiosk device opened") == true })
        let total = Self.capacity + 500
        let start = Int64(Date().timeIntervalSince1970) - 20_000
        let bytes = Self.presses(total, from: start)
        #expect(try await offThePool { writeAll(master, bytes, seconds: 60) } == bytes.count)

        let dropped = #"feedback_agent_source_lines_total{source="entrance",outcome="dropped"}"#
        #expect(await eventually(seconds: 30) { await stalled.metric(dropped) == 500 }, "each press beyond the buffer is counted")
        #expect(await stalled.metric(#"feedback_agent_source_buffered_events{source="entrance"}"#) == Double(Self.capacity))
        // Logged with the source and the count, at most every few seconds, the last drops too.
        #expect(
            await eventually(seconds: 30) {
                let log = (try? String(contentsOfFile: stalled.log, encoding: .utf8)) ?? ""
                return log.split(separator: "\n").contains { $0.contains("kiosk buffer full; presses dropped") && $0.contains("source=entrance") && $0.contains("total=500") }
            }
        )

        let hub = try await stalled.startHub()
        #expect(try await eventually(seconds: 120) { try Self.pressTimes(hub).count >= Self.capacity && hub.recordCount >= stalled.filled + Self.capacity })
        let times = try Self.pressTimes(hub)
        #expect(times.count == Self.capacity && Set(times) == Set((0..<Int64(Self.capacity)).map { (start + $0) * 1000 }), "the buffered presses, each once")
        #expect(await stalled.metric(dropped) == 500)
        try await stalled.stop(hub)
    }
}

extension KioskBufferTests {
    /// A new pseudo-terminal: its master and the path of its slave device. Glibc declares
    /// unlockpt and ptsname_r only for X/Open code, so they are looked up by name.
    static func pseudoTerminal() -> (master: Int32, device: String)? {
        typealias Unlock = @convention(c) (Int32) -> Int32
        typealias Name = @convention(c) (Int32, UnsafeMutablePointer<CChar>?, Int) -> Int32
        guard let unlockSymbol = dlsym(nil, "unlockpt"), let nameSymbol = dlsym(nil, "ptsname_r") else { return nil }
        let master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard master >= 0 else { return nil }
        var name = [CChar](repeating: 0, count: 128)
        guard unsafeBitCast(unlockSymbol, to: Unlock.self)(master) == 0,
            unsafeBitCast(nameSymbol, to: Name.self)(master, &name, name.count) == 0
        else {
            close(master)
            return nil
        }
        return (master, String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }
}

/// Writes `bytes` to the non-blocking `fd`, waiting while it is full, for at most
/// `seconds`; returns how many bytes were written.
func writeAll(_ fd: Int32, _ bytes: [UInt8], seconds: Double) -> Int {
    _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    var offset = 0
    while offset < bytes.count, ContinuousClock.now < deadline {
        let count = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if count > 0 {
            offset += count
        } else if count < 0, errno != EAGAIN, errno != EINTR {
            break
        } else {
            var waiting = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            _ = poll(&waiting, 1, 100)
        }
    }
    return offset
}

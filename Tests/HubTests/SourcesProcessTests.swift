import Agent
import Foundation
import GRDB
import Hub
import TestSupport
import Testing
import Wire

/// `feedback-agent run` with edge sources, as a real process against a real hub: Asterisk
/// CDR lines written, rotated and truncated while it runs, the agent SIGKILLed and
/// restarted in the middle, kiosk key events through a FIFO, and a JSON-lines feed. Every
/// rating must arrive once, with the right score, site, subject and time.
@Suite(.serialized) struct SourcesProcessTests {
    static let binary = CrashTests.root.appendingPathComponent(".build/debug/feedback-agent").path

    /// A CDR line for call `n`: uniqueid `call-n`, agent `agentK`, survey score n % 5 + 1
    /// (none when `survey` is false), started at 09:00 + n minutes, London time, in July.
    static func cdr(_ n: Int, survey: Bool = true) -> String {
        let minute = String(format: "%02d", n % 60)
        let hour = String(format: "%02d", 9 + n / 60)
        let userfield = survey ? "survey=\(n % 5 + 1)" : ""
        return #""","+4411355501\#(String(format: "%02d", n % 100))","600","from-queue","""Caller \#(n)"" <100>","SIP/trunk-1","SIP/agent\#(n % 3)-0000\#(n)","Dial","SIP/agent\#(n % 3)","2026-07-01 \#(hour):\#(minute):00","2026-07-01 \#(hour):\#(minute):05","2026-07-01 \#(hour):\#(minute):50","50","45","ANSWERED","DOCUMENTATION","call-\#(n)","\#(userfield)""#
            + "\n"
    }

    /// Rows of the hub's records from `source` (3 call, 2 kiosk, 4 api).
    private func stored(_ hub: HubHarness, source: Int) throws -> [(score: Int, site: String, subject: String, occurredAt: Int64, attributes: String)] {
        try hub.hub.sqlite.read { db in
            try Row.fetchAll(db, sql: "SELECT score, site, subject, occurred_at, attributes FROM records WHERE source = ?", arguments: [source])
                .map { ($0[0], $0[1], $0[2], $0[3], $0[4]) }
        }
    }

    @Test func sourcesSurviveRotationTruncationAndAKillAndDeliverEachRatingOnce() async throws {
        #expect(FileManager.default.fileExists(atPath: Self.binary), "build first: swift build --build-tests")
        let hub = try await HubHarness.start()
        let (folder, _) = try hub.agentFolder("agent")
        try FileManager.default.createDirectory(atPath: folder + "/cdr", withIntermediateDirectories: true)
        let master = folder + "/cdr/Master.csv"
        let fifo = folder + "/kiosk.events"
        #expect(mkfifo(fifo, 0o600) == 0)
        let feed = folder + "/feed.jsonl"
        let config = folder + "/agent.yaml"
        try """
            \(hub.agentYAMLHead)
            sources:
              - name: cdr
                kind: asterisk
                path: cdr/Master.csv
                site: cc-leeds
                scale: csat
                score: {column: userfield, pattern: 'survey=(\\d+)'}
                subject: {column: dstchannel, pattern: 'SIP/([a-z0-9]+)-'}
                timeZone: Europe/London
              - name: entrance
                kind: kiosk
                device: kiosk.events
                site: branch-042
                kiosk: entrance-1
                keys: {KEY_1: 1, KEY_2: 2, KEY_3: 3, KEY_4: 4}
              - name: crm
                kind: jsonl
                path: feed.jsonl
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let log = folder + "/agent.log"
        var agent = try launch(Self.binary, ["run", "--config", config, "--log-level", "info"], log: log)
        defer { if agent.isRunning { kill(agent.processIdentifier, SIGKILL) } }

        // Calls 0–29 (every fifth without a survey), one line torn in two writes, one bad line.
        var expected: Set<Int> = []
        for n in 0..<30 {
            let survey = n % 5 != 4
            if survey { expected.insert(n) }
            let line = Self.cdr(n, survey: survey)
            if n == 7 {
                try appendText(String(line.prefix(40)), to: master)
                try await Task.sleep(for: .milliseconds(300))
                try appendText(String(line.dropFirst(40)), to: master)
            } else {
                try appendText(line, to: master)
            }
        }
        try appendText("this is not a CDR line\n", to: master)
        #expect(try await eventually { try self.stored(hub, source: 3).count == expected.count }, "first calls reached the hub")

        // Killed for real; while it is down the log rotates (rename) and more calls come.
        kill(agent.processIdentifier, SIGKILL)
        agent.waitUntilExit()
        try appendText(Self.cdr(30) + Self.cdr(31), to: master)
        #expect(rename(master, master + ".1") == 0)
        for n in 32..<40 { try appendText(Self.cdr(n), to: master) }
        expected.formUnion(30..<40)
        agent = try launch(Self.binary, ["run", "--config", config, "--log-level", "info"], log: log)
        #expect(try await eventually { try self.stored(hub, source: 3).count == expected.count }, "calls from both files")

        // Copy-truncate rotation while it runs.
        try await Task.sleep(for: .milliseconds(300))
        #expect(truncate(master, 0) == 0)
        for n in 40..<45 { try appendText(Self.cdr(n), to: master) }
        expected.formUnion(40..<45)
        #expect(try await eventually { try self.stored(hub, source: 3).count == expected.count }, "calls after truncation")

        // Kiosk: a button box writing input events into the FIFO.
        // Non-blocking, so a reader that never came would fail the test instead of hanging it.
        var writer: Int32 = -1
        _ = await eventually {
            writer = open(fifo, O_WRONLY | O_NONBLOCK)
            return writer >= 0
        }
        try #require(writer >= 0, "the agent opened the kiosk FIFO")
        let now = Int64(Date().timeIntervalSince1970)
        var events: [InputEvent] = []
        for (index, code) in [UInt16(2), 5, 3, 5, 4].enumerated() {
            let second = now + Int64(index)
            events.append(InputEvent(seconds: second, microseconds: 0, type: 1, code: code, value: 1))
            events.append(InputEvent(seconds: second, microseconds: 3_000, type: 1, code: code, value: 1))  // bounce
            events.append(InputEvent(seconds: second, microseconds: 90_000, type: 1, code: code, value: 0))  // release
        }
        let bytes = events.flatMap(\.bytes)
        #expect(bytes.withUnsafeBytes { write(writer, $0.baseAddress, $0.count) } == bytes.count)
        close(writer)

        // JSON lines: two good, one bad.
        try appendText(
            #"{"source":"api","scale":"nps","score":9,"site":"web-eu","subject":"checkout"}"# + "\n"
                + "{not json\n"
                + #"{"source":"api","scale":"nps","score":2,"site":"web-eu","subject":"checkout"}"# + "\n",
            to: feed
        )

        #expect(try await eventually { try self.stored(hub, source: 2).count == 5 && self.stored(hub, source: 4).count == 2 })
        try await Task.sleep(for: .milliseconds(500))

        let calls = try self.stored(hub, source: 3)
        let ids = calls.compactMap { row -> Int? in
            guard let range = row.attributes.range(of: #"call-(\d+)"#, options: .regularExpression) else { return nil }
            return Int(row.attributes[range].dropFirst(5))
        }
        #expect(ids.count == expected.count && Set(ids) == expected, "each surveyed call once: none lost, none twice")
        let july1 = Int64(1_782_864_000_000)  // 2026-07-01 00:00 UTC
        for (row, n) in zip(calls, ids) {
            #expect(row.score == n % 5 + 1)
            #expect(row.site == "cc-leeds")
            #expect(row.subject == "agent\(n % 3)")
            // 09:00 London (BST) is 08:00 UTC.
            #expect(row.occurredAt == july1 + Int64(8 * 60 + n) * 60_000)
        }
        let presses = try self.stored(hub, source: 2)
        #expect(presses.map(\.score).sorted() == [1, 2, 3, 4, 4], "one rating per key-down, bounces dropped")
        #expect(presses.allSatisfy { $0.site == "branch-042" && $0.subject == "entrance-1" })
        #expect(try self.stored(hub, source: 4).map(\.score).sorted() == [2, 9])
        let text = try String(contentsOfFile: log, encoding: .utf8)
        #expect(text.contains("bad line skipped") && text.contains("line=31"), "the bad CDR line is logged with its number")
        #expect(text.contains("feed.jsonl") && text.contains("line=2"))

        kill(agent.processIdentifier, SIGTERM)
        await waitForExit(agent)
        #expect(agent.terminationStatus == 0)
        try await hub.stopAndRemove()
    }

    /// Issue 18's kiosk findings, as a real agent reads them: a FIFO writer that closes in the
    /// middle of an event, a button box of another layout (16-byte events), and a regular file.
    @Test func kioskStreamsKeepTheirAlignmentAndOtherLayoutsAndFilesAreRefused() async throws {
        #expect(FileManager.default.fileExists(atPath: Self.binary), "build first: swift build --build-tests")
        let hub = try await HubHarness.start()
        let (folder, _) = try hub.agentFolder("kiosks")
        let (fifo, narrow) = (folder + "/door.events", folder + "/narrow.events")
        #expect(mkfifo(fifo, 0o600) == 0 && mkfifo(narrow, 0o600) == 0)
        let file = folder + "/file.events"
        let now = Int64(Date().timeIntervalSince1970)
        let press = { (index: Int64, code: UInt16) in InputEvent(seconds: now - 100 + index, microseconds: 0, type: 1, code: code, value: 1).bytes }
        try Data(press(0, 2) + press(1, 3)).write(to: URL(fileURLWithPath: file))
        let config = folder + "/agent.yaml"
        var sources = ""
        for (name, device) in [("door", fifo), ("narrow", narrow), ("file", file)] {
            sources += "\n  - {name: \(name), kind: kiosk, device: \(device), site: branch-042, kiosk: \(name), keys: {KEY_1: 1, KEY_2: 2, KEY_3: 3, KEY_4: 4}}"
        }
        try """
            identity: agent.json
            hubs: ["127.0.0.1:\(hub.port)"]
            ca: \(hub.caPath)
            spool: {directory: spool, fsync: "5"}
            batch: {maxRecords: 100, maxAgeMs: 20}
            sources:\(sources)
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let log = folder + "/agent.log"
        let agent = try launch(Self.binary, ["run", "--config", config, "--log-level", "info"], log: log)
        defer { if agent.isRunning { kill(agent.processIdentifier, SIGKILL) } }
        func writer(_ path: String) async throws -> Int32 {
            var fd: Int32 = -1
            _ = await eventually {
                fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC)
                return fd >= 0
            }
            try #require(fd >= 0, "the agent opened \(path)")
            return fd
        }
        func put(_ fd: Int32, _ bytes: [UInt8]) { #expect(bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == bytes.count) }

        // Three presses; the first writer stops 10 bytes into the second and closes.
        let stream = press(10, 2) + press(11, 3) + press(12, 4)
        var fd = try await writer(fifo)
        put(fd, Array(stream[..<34]))
        close(fd)
        // The agent sees the writer gone and opens the FIFO again before the next writer.
        #expect(await eventually {
            ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").components(separatedBy: "kiosk device opened").filter { $0.contains("door.events") }.count >= 2
        })
        fd = try await writer(fifo)
        put(fd, Array(stream[34...]))
        close(fd)
        // A 32-bit kernel's events: 32-bit seconds and microseconds, then type, code, value.
        var sixteen: [UInt8] = []
        for index in 0..<6 {
            var event = [UInt8](repeating: 0, count: 16)
            event.withUnsafeMutableBytes { raw in
                raw.storeBytes(of: Int32(now - 50 + Int64(index)), toByteOffset: 0, as: Int32.self)
                raw.storeBytes(of: UInt16(1), toByteOffset: 8, as: UInt16.self)
                raw.storeBytes(of: UInt16(2 + index % 4), toByteOffset: 10, as: UInt16.self)
                raw.storeBytes(of: Int32(1), toByteOffset: 12, as: Int32.self)
            }
            sixteen += event
        }
        fd = try await writer(narrow)
        put(fd, sixteen)
        close(fd)

        let expected = Set([(now - 90) * 1000, (now - 89) * 1000, (now - 88) * 1000])
        #expect(try await eventually { Set(try self.stored(hub, source: 2).map(\.occurredAt)) == expected })
        try await Task.sleep(for: .milliseconds(500))
        let rows = try self.stored(hub, source: 2)
        #expect(rows.map(\.score).sorted() == [1, 2, 3] && rows.allSatisfy { $0.subject == "door" }, "three presses from the door, none from the other two: \(rows)")
        let text = try String(contentsOfFile: log, encoding: .utf8)
        #expect(text.contains("kiosk device does not send input events of this platform's layout; refused") && text.contains("narrow.events"))
        #expect(text.contains("kiosk device is a regular file; not read"))
        kill(agent.processIdentifier, SIGTERM)
        await waitForExit(agent)
        try await hub.stopAndRemove()
    }

    /// A child hammering the red button: the whole burst, its first presses included, is
    /// stored flagged as misuse and raises no alert; a customer's single red press a while
    /// later raises one, a misuse window after it was pressed.
    @Test func aWholeBurstOfPressesIsMisuseAndRaisesNoAlertButASinglePressDoes() async throws {
        #expect(FileManager.default.fileExists(atPath: Self.binary), "build first: swift build --build-tests")
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("hub-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let rules = folder.appendingPathComponent("alerts.yaml").path
        try """
            targets:
              manager: {url: "http://127.0.0.1:9/nowhere"}
            rules:
              - {name: unhappy, scale: smiley, notify: [manager]}
            """.write(toFile: rules, atomically: true, encoding: .utf8)
        let hub = try await HubHarness.start(folder: folder, adjust: { $0.alerts = rules })
        let (agentFolder, _) = try hub.agentFolder("kiosk")
        let fifo = agentFolder + "/red.events"
        #expect(mkfifo(fifo, 0o600) == 0)
        let config = agentFolder + "/agent.yaml"
        try """
            identity: agent.json
            hubs: ["127.0.0.1:\(hub.port)"]
            ca: \(hub.caPath)
            spool: {directory: spool, fsync: "5"}
            batch: {maxRecords: 100, maxAgeMs: 20}
            sources:
              - {name: door, kind: kiosk, device: \(fifo), site: branch-042, kiosk: door, keys: {KEY_1: 1, KEY_4: 4}, misuse: {presses: 5, seconds: 3}}
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let agent = try launch(Self.binary, ["run", "--config", config, "--log-level", "info"], log: agentFolder + "/agent.log")
        defer { if agent.isRunning { kill(agent.processIdentifier, SIGKILL) } }
        var fd: Int32 = -1
        #expect(await eventually {
            fd = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC)
            return fd >= 0
        })
        func press(_ code: UInt16) {
            var now = timeval()
            gettimeofday(&now, nil)
            let bytes = InputEvent(seconds: Int64(now.tv_sec), microseconds: Int64(now.tv_usec), type: 1, code: code, value: 1).bytes
            #expect(bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == bytes.count)
        }
        // Eight presses of the red button (KEY_1 → 1), 100 ms apart and ending now: one burst.
        // Written in one write with their own timestamps, so a busy machine that stalls this
        // test cannot spread them over more than the misuse window.
        var now = timeval()
        gettimeofday(&now, nil)
        let end = Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_usec)
        var burstBytes: [UInt8] = []
        for index in 0..<8 {
            let at = end - Int64(7 - index) * 100_000
            burstBytes += InputEvent(seconds: at / 1_000_000, microseconds: at % 1_000_000, type: 1, code: 2, value: 1).bytes
        }
        #expect(burstBytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == burstBytes.count, "one write: under PIPE_BUF, whole")
        func all() throws -> [(score: Int, site: String, subject: String, occurredAt: Int64, attributes: String)] { try self.stored(hub, source: 2) }
        #expect(try await eventually(seconds: 30) { try all().count == 8 })
        let burst = try all()
        #expect(burst.allSatisfy { $0.attributes.contains("misuse") }, "every press of the burst flagged, the first five too: \(burst)")
        #expect(try hub.hub.sqlite.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM alerts") } == 0, "no alert for a burst")

        // A customer, well after the window: one red press.
        try await Task.sleep(for: .seconds(4))
        let pressed = ContinuousClock.now
        press(2)
        #expect(try await eventually(seconds: 30) { try all().count == 9 })
        let held = ContinuousClock.now - pressed
        #expect(try all().filter { !$0.attributes.contains("misuse") }.count == 1)
        #expect(held >= .seconds(3), "held for the misuse window before sealing: \(held)")
        #expect(try await eventually(seconds: 10) { try hub.hub.sqlite.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM alerts") } == 1 })
        print("kiosk: a single press reached the hub \(held) after it was made (misuse window 3 s)")
        close(fd)
        kill(agent.processIdentifier, SIGTERM)
        await waitForExit(agent)
        try await hub.stopAndRemove()
    }

    /// A hub, and a folder with an agent configuration for `feedback-agent import`.
    static func importer() async throws -> (hub: HubHarness, folder: String, config: String) {
        #expect(FileManager.default.fileExists(atPath: Self.binary), "build first: swift build --build-tests")
        let hub = try await HubHarness.start()
        let (folder, _) = try hub.agentFolder("importer")
        let config = folder + "/agent.yaml"
        try """
            identity: agent.json
            hubs: ["127.0.0.1:\(hub.port)"]
            ca: \(hub.caPath)
            spool: {directory: spool}
            """.write(toFile: config, atomically: true, encoding: .utf8)
        return (hub, folder, config)
    }

    @Test func importGoesOnPastALineLongerThanTheLimitAndIgnoresAByteOrderMark() async throws {
        let (hub, folder, config) = try await Self.importer()
        let rating = #"{"source":"import","scale":"nps","score":9,"site":"web-eu"}"#
        let long = #"{"source":"import","scale":"nps","score":1,"site":"web-eu","comment":""# + String(repeating: "x", count: 3 << 20) + #""}"#
        let jsonl = folder + "/export.jsonl"
        try ("\u{FEFF}" + rating + "\n" + long + "\n" + rating.replacingOccurrences(of: "9", with: "8") + "\n").write(toFile: jsonl, atomically: true, encoding: .utf8)
        let log = folder + "/import.log"
        let process = try launch(Self.binary, ["import", jsonl, "--config", config, "--wait", "20"], log: log)
        process.waitUntilExit()
        let output = try String(contentsOfFile: log, encoding: .utf8)
        #expect(process.terminationStatus == 0, "\(output)")
        #expect(output.contains("imported 2 ratings") && output.contains("(1 bad lines skipped)"), "\(output)")
        #expect(output.contains("export.jsonl:2: skipped: the line is \(long.utf8.count) bytes"), "\(output)")
        let scores = try hub.hub.sqlite.read { db in try Int.fetchAll(db, sql: "SELECT score FROM records ORDER BY score") }
        #expect(scores == [8, 9], "the first line despite its byte-order mark, the third after the long one")
        try await hub.stopAndRemove()
    }

    @Test func importTakesACSVOnceAndRefusesASpoolInUse() async throws {
        let (hub, folder, config) = try await Self.importer()
        let csv = folder + "/survey-export.csv"
        try #"""
            source,scale,score,occurredAt,site,subject,comment,attr.wave
            import,nps,9,1764000000000,web-eu,checkout,"Great, fast",2026-q4
            import,nps,2,1764000001000,web-eu,checkout,"Too ""slow""",2026-q4
            import,nps,11,1764000002000,web-eu,checkout,,2026-q4
            import,csat,5,1764000003000,cc-leeds,queue-billing,,2026-q4

            """#.write(toFile: csv, atomically: true, encoding: .utf8)
        func runImport(_ log: String) throws -> (Int32, String) {
            let process = try launch(Self.binary, ["import", csv, "--config", config, "--wait", "20"], log: log)
            process.waitUntilExit()
            return (process.terminationStatus, try String(contentsOfFile: log, encoding: .utf8))
        }
        var (status, output) = try runImport(folder + "/import-1.log")
        #expect(status == 0, "\(output)")
        #expect(output.contains("imported 3 ratings") && output.contains("1 bad lines skipped"), "\(output)")
        #expect(output.contains("survey-export.csv:4: skipped: score 11 is outside the nps scale"), "\(output)")
        #expect(output.contains("all acknowledged by the hub"), "\(output)")
        let rows = try hub.hub.sqlite.read { db in
            try Row.fetchAll(db, sql: "SELECT score, comment, attributes FROM records ORDER BY occurred_at").map { ($0[0] as Int, $0[1] as String, $0[2] as String) }
        }
        #expect(rows.map(\.0) == [9, 2, 5])
        #expect(rows.map(\.1) == ["Great, fast", #"Too "slow""#, ""])
        #expect(rows.allSatisfy { $0.2.contains("2026-q4") })

        (status, output) = try runImport(folder + "/import-2.log")
        #expect(status == 0 && output.contains("imported 0 ratings") && output.contains("nothing new"), "\(output)")
        #expect(try hub.recordCount == 3, "importing the same file again adds nothing")

        // While the agent runs, its spool is its own.
        let agent = try launch(Self.binary, ["run", "--config", config], log: folder + "/agent.log")
        defer { if agent.isRunning { kill(agent.processIdentifier, SIGKILL) } }
        #expect(await eventually { (try? String(contentsOfFile: folder + "/agent.log", encoding: .utf8))?.contains("connected to hub") == true })
        (status, output) = try runImport(folder + "/import-3.log")
        #expect(status != 0 && output.contains("is in use by another process"), "\(output)")
        kill(agent.processIdentifier, SIGTERM)
        await waitForExit(agent)
        try await hub.stopAndRemove()
    }

    /// A CDR line with the newer columns: linkedid `L-n`, agent `agentK`, no userfield score.
    static func cdrWithLinkedID(_ n: Int) -> String {
        #""","+44113555010\#(n)","600","from-queue","""Caller"" <100>","SIP/trunk-1","SIP/agent\#(n % 3)-000\#(n)","Dial","SIP/agent\#(n % 3)","2026-07-01 10:0\#(n):00","2026-07-01 10:0\#(n):05","2026-07-01 10:0\#(n):50","50","45","ANSWERED","DOCUMENTATION","u-\#(n)","","","L-\#(n)","\#(n)""#
            + "\n"
    }

    @Test func surveysFromASeparateLogAreJoinedWithTheirCallsOnLinkedID() async throws {
        #expect(FileManager.default.fileExists(atPath: Self.binary), "build first: swift build --build-tests")
        let hub = try await HubHarness.start()
        let (folder, _) = try hub.agentFolder("join")
        try FileManager.default.createDirectory(atPath: folder + "/cdr", withIntermediateDirectories: true)
        let master = folder + "/cdr/Master.csv"
        let surveys = folder + "/surveys.jsonl"
        let config = folder + "/agent.yaml"
        try """
            \(hub.agentYAMLHead)
            sources:
              - name: calls
                kind: asterisk
                path: cdr/Master.csv
                newColumns: true
                site: cc-leeds
                scale: csat
                subject: {column: dstchannel, pattern: 'SIP/([a-z0-9]+)-'}
                timeZone: Europe/London
                surveyLog: {path: surveys.jsonl, wait: 20s}
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let log = folder + "/agent.log"
        var agent = try launch(Self.binary, ["run", "--config", config, "--log-level", "info"], log: log)
        defer { if agent.isRunning { kill(agent.processIdentifier, SIGKILL) } }
        func survey(_ n: Int, _ score: Int) -> String { #"{"linkedid":"L-\#(n)","score":\#(score)}"# + "\n" }

        // Call 1's survey arrives before its CDR line (the CDR is written at hang-up). The wait
        // is far above the half second between them: with both cores busy, this test's own
        // half-second sleep once took over 6 s (other suites' blocking PostgreSQL calls hold
        // the test process's threads), so the wait is 20 s and call 3 is waited for longer.
        try appendText(survey(1, 2), to: surveys)
        try await Task.sleep(for: .milliseconds(500))
        try appendText(Self.cdrWithLinkedID(1) + Self.cdrWithLinkedID(2), to: master)
        try appendText(survey(2, 5) + "{\"score\": 3}\n" + survey(3, 1), to: surveys)  // a bad line; call 3 never gets a CDR
        #expect(try await eventually(seconds: 60) { try self.stored(hub, source: 3).count == 3 })

        // Killed; meanwhile the CDR log rotates and calls 4 and 5 happen.
        kill(agent.processIdentifier, SIGKILL)
        agent.waitUntilExit()
        try appendText(Self.cdrWithLinkedID(4), to: master)
        #expect(rename(master, master + ".1") == 0)
        try appendText(Self.cdrWithLinkedID(5), to: master)
        try appendText(survey(4, 4) + survey(5, 1), to: surveys)
        agent = try launch(Self.binary, ["run", "--config", config, "--log-level", "info"], log: log)
        #expect(try await eventually { try self.stored(hub, source: 3).count == 5 })
        try await Task.sleep(for: .milliseconds(500))

        var byCall: [String: (score: Int, subject: String, occurredAt: Int64)] = [:]
        for row in try self.stored(hub, source: 3) {
            guard let range = row.attributes.range(of: #"L-\d"#, options: .regularExpression) else { continue }
            #expect(byCall[String(row.attributes[range])] == nil, "each survey once")
            byCall[String(row.attributes[range])] = (row.score, row.subject, row.occurredAt)
        }
        #expect(byCall.keys.sorted() == ["L-1", "L-2", "L-3", "L-4", "L-5"])
        #expect(byCall["L-1"]?.score == 2 && byCall["L-1"]?.subject == "agent1", "waited for its CDR line")
        #expect(byCall["L-2"]?.score == 5 && byCall["L-2"]?.subject == "agent2")
        #expect(byCall["L-3"]?.score == 1 && byCall["L-3"]?.subject == "", "no CDR within the wait: kept without the call")
        #expect(byCall["L-4"]?.subject == "agent1", "its CDR is in the rotated file")
        #expect(byCall["L-5"]?.subject == "agent2" && byCall["L-5"]?.score == 1)
        // 10:01 London (BST) on 1 July is 09:01 UTC.
        #expect(byCall["L-1"]?.occurredAt == 1_782_864_000_000 + Int64(9 * 60 + 1) * 60_000)
        #expect(try String(contentsOfFile: log, encoding: .utf8).contains("line=3"), "the bad survey line is logged")
        kill(agent.processIdentifier, SIGTERM)
        await waitForExit(agent)
        try await hub.stopAndRemove()
    }
}

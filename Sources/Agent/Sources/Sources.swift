import Foundation
import Logging
import Support
import Synchronization
import Wire

/// A configured edge source: where ratings come from besides `submit` and HTTP.
public struct SourceConfiguration: Sendable {
    /// The kinds of source.
    public enum Kind: Sendable {
        /// A USB button box presenting itself as a keyboard: Linux input events from `device`.
        case kiosk(device: String, buttons: KioskButtons)
        /// Asterisk's CDR CSV (`Master.csv`), tailed; the score in a CDR column.
        case asterisk(path: String, parser: AsteriskCDRParser)
        /// A survey log of JSON lines (`{"linkedid": …, "score": …}`), tailed, each joined on
        /// `linkedid` with its call in Asterisk's CDR CSV; a survey waits up to `waitMilliseconds`
        /// for its call's CDR line, then is kept without it.
        case asteriskSurveys(cdrPath: String, surveyPath: String, parser: AsteriskCDRParser, waitMilliseconds: Int64)
        /// A file of JSON lines, one rating each (the HTTP intake's JSON), tailed.
        case jsonLines(path: String)
    }

    /// Unique name: metrics, logs and the cursor in the spool carry it.
    public var name: String
    /// What and where.
    public var kind: Kind
    /// How often a tailed file is checked for new lines.
    public var pollInterval: Duration = .milliseconds(200)

    /// Creates a source.
    public init(name: String, kind: Kind) {
        self.name = name
        self.kind = kind
    }
}

/// Counts of one source, for `/metrics` and `status`.
public struct SourceStats: Sendable, Hashable {
    /// Ratings captured.
    public var ratings = 0
    /// Lines or events that held no rating to record (calls without a survey, key releases).
    public var skipped = 0
    /// Lines refused as bad (each logged with file and line number).
    public var badLines = 0
    /// Times the input was (re)opened.
    public var opens = 0
    /// Kiosk key presses dropped because the buffer was full: only from a device, which
    /// cannot be made to wait (a FIFO or a file is read no further instead). Each is logged.
    public var dropped = 0
    /// Kiosk key presses read and not yet in the spool.
    public var buffered = 0
}

/// Runs the configured sources of one agent: tails files into the spool (records and
/// cursor in one durable entry) and turns kiosk key presses into ratings.
final class SourceRunner: Sendable {
    private let sources: [SourceConfiguration]
    private let spool: Spool
    private let origin: UUID
    private let ids: Mutex<UUIDv7>
    private let logger: Logger
    private let onCaptured: @Sendable () -> Void
    private let sites: SiteScope
    private let counters = Mutex<[String: SourceStats]>([:])
    private let kioskBuffers = Mutex<[String: KioskBuffer]>([:])

    /// Most kiosk presses held while the spool does not take them (24 bytes each).
    static let kioskBufferPresses = 10_000
    /// Most presses in one spool entry.
    static let kioskAppendLimit = 256

    init(
        sources: [SourceConfiguration], spool: Spool, origin: UUID, sites: SiteScope, logger: Logger,
        onCaptured: @escaping @Sendable () -> Void
    ) {
        self.sources = sources
        self.sites = sites
        self.spool = spool
        self.origin = origin
        self.ids = Mutex(UUIDv7())
        self.logger = logger
        self.onCaptured = onCaptured
        self.counters.withLock { counters in
            for source in sources { counters[source.name] = SourceStats() }
        }
    }

    var stats: [String: SourceStats] {
        let buffered = self.kioskBuffers.withLock { $0.mapValues(\.held) }
        var stats = self.counters.withLock { $0 }
        for (name, held) in buffered { stats[name]?.buffered = held }
        return stats
    }

    /// Runs every source until cancelled.
    func run() async {
        await withDiscardingTaskGroup { group in
            for source in self.sources {
                group.addTask {
                    switch source.kind {
                    case .kiosk(let device, let buttons):
                        await self.runKiosk(source, device: device, buttons: buttons)
                    case .asterisk(let path, let parser):
                        await self.runTail(source, path: path) { line in
                            switch try parser.parse(line) {
                            case .rating(let submission): return submission
                            case .noRating: return nil
                            }
                        }
                    case .asteriskSurveys(let cdrPath, let surveyPath, let parser, let wait):
                        await self.runSurveyJoin(source, cdrPath: cdrPath, surveyPath: surveyPath, parser: parser, wait: wait)
                    case .jsonLines(let path):
                        await self.runTail(source, path: path) { line in
                            guard !line.allSatisfy(\.isWhitespace) else { return nil }
                            do {
                                return try StrictJSONNumbers.submission(from: Array(line.utf8))
                            } catch {
                                throw SourceError("not a JSON rating: \(Self.describe(error))")
                            }
                        }
                    }
                }
            }
        }
    }

    private func count(_ source: String, _ update: (inout SourceStats) -> Void) {
        self.counters.withLock { update(&$0[source, default: SourceStats()]) }
    }

    private func records(_ submissions: [FeedbackSubmission], now: Int64) throws -> [FeedbackRecord] {
        try self.ids.withLock { ids in
            try submissions.map { try $0.record(id: $0.id ?? ids.next(milliseconds: now), origin: self.origin, capturedAt: now, sites: self.sites) }
        }
    }

    // MARK: Files

    private func runTail(_ source: SourceConfiguration, path: String, parse: (Substring) throws -> FeedbackSubmission?) async {
        var tailer = FileTailer(path: path, name: source.name, cursor: self.spool.cursor(of: source.name))
        var saved = self.spool.cursor(of: source.name)
        var waiting = false
        while !Task.isCancelled {
            let chunk: FileTailer.Chunk?
            do {
                chunk = try tailer.poll()
                self.reportLostFile(tailer, source)
            } catch {
                self.logger.error("source cannot read its file", metadata: ["source": "\(source.name)", "error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
                continue
            }
            guard let chunk else {
                if !waiting { self.logger.warning("source file not there yet; waiting", metadata: ["source": "\(source.name)", "file": "\(path)"]) }
                waiting = true
                try? await Task.sleep(for: source.pollInterval)
                continue
            }
            waiting = false
            guard !chunk.lines.isEmpty || chunk.cursor != saved else {
                try? await Task.sleep(for: source.pollInterval)
                continue
            }
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            var records: [FeedbackRecord] = []
            var skipped = 0
            var bad = self.refuseOverlong(source, chunk)
            for (text, number) in chunk.lines {
                do {
                    guard let submission = try parse(text) else {
                        skipped += 1
                        continue
                    }
                    records += try self.records([submission], now: now)
                } catch {
                    bad += 1
                    self.badLine(source, chunk, number, error)
                }
            }
            if await self.keep(records, through: chunk.cursor, source, skipped: skipped, bad: bad) {
                saved = chunk.cursor
            } else {
                // Nothing of the chunk was kept: read it again from the durable cursor later.
                try? await Task.sleep(for: .seconds(1))
                saved = self.spool.cursor(of: source.name)
                tailer = FileTailer(path: path, name: source.name, cursor: saved)
            }
        }
    }

    // MARK: Survey log joined with the CDR

    /// The survey log is the tailed source (its cursor is in the spool); the CDR files are
    /// an index rebuilt from disk at every start (Master.csv and its rotated siblings), so
    /// the join needs no state of its own. A survey whose call is not in the index yet stops
    /// the reading there (the cursor stays before it) until the call appears or `wait` passes.
    private func runSurveyJoin(_ source: SourceConfiguration, cdrPath: String, surveyPath: String, parser: AsteriskCDRParser, wait: Int64) async {
        var calls: [String: AsteriskCDRParser.Call] = [:]
        var order: [String] = []
        func index(_ text: Substring) {
            guard let call = try? parser.call(text), let linkedID = call.linkedID else { return }
            if calls.updateValue(call, forKey: linkedID) == nil { order.append(linkedID) }
            if order.count > 200_000 {
                for old in order.prefix(50_000) { calls[old] = nil }
                order.removeFirst(50_000)
            }
        }
        // Rotated CDR files first, oldest name last (Master.csv.2 before Master.csv.1).
        let folder = URL(fileURLWithPath: cdrPath).deletingLastPathComponent().path
        let base = URL(fileURLWithPath: cdrPath).lastPathComponent
        let rotated = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [])
            .filter { $0.hasPrefix(base + ".") && !$0.hasSuffix(".gz") }.sorted().reversed()
        for name in rotated {
            if let text = try? String(contentsOfFile: folder + "/" + name, encoding: .utf8) {
                for line in text.split(separator: "\n") { index(line) }
            }
        }
        let cdr = FileTailer(path: cdrPath, name: source.name + ":cdr", cursor: nil)
        var surveys = FileTailer(path: surveyPath, name: source.name, cursor: self.spool.cursor(of: source.name))
        var saved = self.spool.cursor(of: source.name)
        var firstSeen: [String: Int64] = [:]
        while !Task.isCancelled {
            while let chunk = try? cdr.poll(), !chunk.lines.isEmpty {
                for (text, _) in chunk.lines { index(text) }
            }
            let polled = try? surveys.poll()
            self.reportLostFile(surveys, source)
            guard let chunk = polled, !chunk.lines.isEmpty || chunk.cursor != saved else {
                try? await Task.sleep(for: source.pollInterval)
                continue
            }
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            var records: [FeedbackRecord] = []
            var bad = 0
            var cursor = chunk.cursor
            var waiting = false
            for (position, (text, number)) in chunk.lines.enumerated() {
                if text.allSatisfy(\.isWhitespace) { continue }
                do {
                    guard let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
                        let linkedID = object["linkedid"] as? String ?? (object["linkedid"] as? Int).map(String.init),
                        let score = object["score"] as? Int
                    else { throw SourceError("a survey line needs \"linkedid\" and a whole-number \"score\"") }
                    var submission: FeedbackSubmission
                    if let call = calls[linkedID] {
                        submission = try parser.rating(score: score, of: call)
                    } else {
                        let key = "\(chunk.cursor.inode):\(number)"
                        let seen = firstSeen[key] ?? now
                        firstSeen[key] = seen
                        if now - seen < wait {
                            // Its call's CDR line is not written yet: stop here, read it again later.
                            cursor = chunk.cursor(through: position - 1)
                            waiting = true
                            break
                        }
                        self.logger.warning(
                            "survey without a CDR line; kept without its call's details",
                            metadata: ["source": "\(source.name)", "linkedid": "\(linkedID)", "file": "\(chunk.path)", "line": "\(number)"]
                        )
                        submission = FeedbackSubmission(
                            source: "call", scale: parser.scale, score: score, site: parser.site, channel: "phone",
                            survey: parser.survey, attributes: ["linkedid": String(linkedID.prefix(255))]
                        )
                    }
                    if let survey = object["survey"] as? String { submission.survey = survey }
                    records += try self.records([submission], now: now)
                    firstSeen["\(chunk.cursor.inode):\(number)"] = nil
                } catch {
                    bad += 1
                    self.badLine(source, chunk, number, error)
                }
            }
            // Over-long lines before where reading stopped; those after are read again later.
            bad += self.refuseOverlong(source, chunk, through: cursor.line)
            let kept = cursor == saved ? true : await self.keep(records, through: cursor, source, skipped: 0, bad: bad)
            if kept {
                saved = cursor
            } else {
                try? await Task.sleep(for: .seconds(1))
                saved = self.spool.cursor(of: source.name)
                waiting = true
                cursor = saved ?? cursor
            }
            if waiting {
                surveys = FileTailer(path: surveyPath, name: source.name, cursor: saved)
                try? await Task.sleep(for: source.pollInterval)
            }
        }
    }

    /// Lines after a saved position in a file that is gone cannot be read or counted:
    /// say so, once.
    private func reportLostFile(_ tailer: FileTailer, _ source: SourceConfiguration) {
        guard let lost = tailer.takeLostFile() else { return }
        self.logger.warning(
            "source file of the saved position is gone (rotated away and deleted or compressed while the agent was stopped); lines written to it after that position were not read",
            metadata: ["source": "\(source.name)", "file": "\(tailer.path)", "line": "\(lost.line)"]
        )
    }

    /// Says which lines of `chunk` (up to line `last`) were refused whole for their length;
    /// returns how many.
    private func refuseOverlong(_ source: SourceConfiguration, _ chunk: FileTailer.Chunk, through last: UInt64 = .max) -> Int {
        let refused = chunk.overlong.filter { $0.number <= last }
        for (number, length) in refused {
            self.logger.warning(
                "line too long; refused whole",
                metadata: ["source": "\(source.name)", "file": "\(chunk.path)", "line": "\(number)", "bytes": "\(length)", "limit": "\(FileTailer.defaultMaxLineBytes)"]
            )
        }
        return refused.count
    }

    private func badLine(_ source: SourceConfiguration, _ chunk: FileTailer.Chunk, _ number: UInt64, _ error: any Error) {
        self.logger.warning(
            "bad line skipped",
            metadata: ["source": "\(source.name)", "file": "\(chunk.path)", "line": "\(number)", "reason": "\(Self.describe(error))"]
        )
    }

    /// Appends a chunk's records with the cursor after them, in one spool entry, and counts
    /// them. Returns false when the spool refused (nothing of the chunk was kept).
    private func keep(
        _ records: [FeedbackRecord], through cursor: SourceCursor, _ source: SourceConfiguration, skipped: Int, bad: Int
    ) async -> Bool {
        do {
            try await self.spool.append(records, cursor: cursor)
        } catch {
            self.logger.error("source cannot write to the spool; will retry", metadata: ["source": "\(source.name)", "error": "\(error)"])
            return false
        }
        self.count(source.name) {
            $0.ratings += records.count
            $0.skipped += skipped
            $0.badLines += bad
        }
        if !records.isEmpty { self.onCaptured() }
        return true
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case let error as WireError: error.detail
        case DecodingError.keyNotFound(let key, _): "\"\(key.stringValue)\" is required"
        case DecodingError.typeMismatch(_, let context): "\"\(context.codingPath.map(\.stringValue).joined(separator: "."))\" has the wrong type"
        case is DecodingError: "not valid JSON"
        default: "\(error)"
        }
    }

    // MARK: Kiosk

    /// Presses wait in a bounded buffer until the spool takes them: a full spool holds
    /// them (retried) rather than losing them, and a full buffer holds back the reader.
    private func runKiosk(_ source: SourceConfiguration, device: String, buttons: KioskButtons) async {
        let buffer = KioskBuffer(capacity: Self.kioskBufferPresses)
        self.kioskBuffers.withLock { $0[source.name] = buffer }
        let reader = InputEventReader(
            device: device, name: source.name, logger: self.logger, buffer: buffer, isPress: { [buttons] in buttons.isPress($0) },
            onOpen: { [self] in self.count(source.name) { $0.opens += 1 } },
            onRead: { [self] skipped, dropped in
                self.count(source.name) {
                    $0.skipped += skipped
                    $0.dropped += dropped
                }
            }
        )
        Thread.start(named: "kiosk-\(source.name)") { reader.run() }
        defer { reader.stop() }
        var buttons = buttons
        await withTaskCancellationHandler {
            var bell = buffer.bell.makeAsyncIterator()
            // Ratings wait in `hold` for their misuse window, then in `held` for the spool;
            // both keep their presses' room in the buffer until stored.
            var hold = buttons.burstHold
            var held: [FeedbackRecord] = []
            var limit = Self.kioskAppendLimit
            var refused = false
            var readerDone = false
            while true {
                if held.isEmpty {
                    let presses = buffer.take(upTo: Self.kioskAppendLimit)
                    let now = Int64(Date().timeIntervalSince1970 * 1000)
                    if !presses.isEmpty {
                        let submissions = self.kioskSubmissions(presses, buttons: &buttons, source)
                        buffer.release(presses.count - submissions.count)
                        for submission in submissions { hold.add(submission, now: now) }
                    }
                    readerDone = readerDone || buffer.isDrained
                    let due = readerDone ? hold.all() : hold.due(now: now)
                    if !due.isEmpty {
                        held = self.kioskRecords(due, source)
                        buffer.release(due.count - held.count)
                        continue
                    }
                    if !presses.isEmpty { continue }
                    if readerDone { break }
                    if let next = hold.nextDue {
                        // Held ratings fall due on the clock; new presses are looked for meanwhile.
                        try? await Task.sleep(for: .milliseconds(min(max(next - now, 1), 100)))
                        continue
                    }
                    if await bell.next() == nil { readerDone = true }
                    continue
                }
                let entry = Array(held.prefix(limit))
                do {
                    try await self.spool.append(entry)
                } catch let error as SpoolError where error.code == .closed {
                    break
                } catch {
                    if entry.count > 1 {
                        // A smaller entry may fit in what is left of the quota.
                        limit = max(entry.count / 2, 1)
                        continue
                    }
                    if !refused {
                        self.logger.warning(
                            "kiosk presses held: the spool does not take them; retrying",
                            metadata: ["source": "\(source.name)", "error": "\(Self.describe(error))"]
                        )
                        refused = true
                    }
                    if Task.isCancelled { break }
                    try? await Task.sleep(for: .milliseconds(200))
                    continue
                }
                held.removeFirst(entry.count)
                buffer.release(entry.count)
                limit = min(limit * 2, Self.kioskAppendLimit)
                self.count(source.name) { $0.ratings += entry.count }
                self.onCaptured()
                if refused {
                    self.logger.notice("kiosk presses go into the spool again", metadata: ["source": "\(source.name)"])
                    refused = false
                }
            }
            let lost = buffer.held
            if lost > 0 {
                self.count(source.name) { $0.dropped += lost }
                self.logger.warning("kiosk presses not kept: the agent stopped while the spool refused them", metadata: ["source": "\(source.name)", "dropped": "\(lost)"])
            }
        } onCancel: {
            reader.stop()
        }
    }

    /// The ratings of `presses` (debounced); presses that make none are counted here.
    private func kioskSubmissions(_ presses: [InputEvent], buttons: inout KioskButtons, _ source: SourceConfiguration) -> [FeedbackSubmission] {
        let submissions = presses.compactMap { buttons.rating(for: $0) }
        let bounces = presses.count - submissions.count
        if bounces > 0 { self.count(source.name) { $0.skipped += bounces } }
        return submissions
    }

    /// The records of held kiosk ratings; ratings that fail validation are counted here.
    private func kioskRecords(_ submissions: [FeedbackSubmission], _ source: SourceConfiguration) -> [FeedbackRecord] {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        var records: [FeedbackRecord] = []
        var bad = 0
        for submission in submissions {
            do {
                records += try self.records([submission], now: now)
            } catch {
                bad += 1
                self.logger.error("kiosk press not kept", metadata: ["source": "\(source.name)", "error": "\(Self.describe(error))"])
            }
        }
        if bad > 0 { self.count(source.name) { $0.badLines += bad } }
        return records
    }
}

/// Reads input events from a device (or a FIFO or file in tests) on its own thread into
/// a ``KioskBuffer``, reopening it when it goes away (an unplugged button box) and comes
/// back. Only key presses go into the buffer; other events are counted as skipped.
final class InputEventReader: Sendable {
    private let device: String
    private let name: String
    private let logger: Logger
    private let buffer: KioskBuffer
    private let isPress: @Sendable (InputEvent) -> Bool
    private let onOpen: @Sendable () -> Void
    private let onRead: @Sendable (_ skipped: Int, _ dropped: Int) -> Void
    private let stopped = Atomic<Bool>(false)
    /// Whether the last read was refused for its layout (logged once until a good read).
    private let layoutRefused = Atomic<Bool>(false)
    /// Drops are logged at most this often per source, each line with the count since the last.
    static let dropLogInterval: Duration = .seconds(10)

    init(
        device: String, name: String, logger: Logger, buffer: KioskBuffer, isPress: @escaping @Sendable (InputEvent) -> Bool,
        onOpen: @escaping @Sendable () -> Void, onRead: @escaping @Sendable (_ skipped: Int, _ dropped: Int) -> Void
    ) {
        self.device = device
        self.name = name
        self.logger = logger
        self.buffer = buffer
        self.isPress = isPress
        self.onOpen = onOpen
        self.onRead = onRead
    }

    func stop() {
        self.stopped.store(true, ordering: .relaxed)
    }

    /// Dropped presses not yet logged, and when drops were last logged.
    private struct DropLog {
        var unlogged = 0
        var total = 0
        var last: ContinuousClock.Instant?
    }

    func run() {
        var missingLogged = false
        var regularLogged = false
        var drops = DropLog()
        // Bytes of an event a FIFO's writer began and did not finish before it closed: the
        // next writer goes on with the same stream, so they are kept across the reopen.
        var pending: [UInt8] = []
        var pendingFrom: (device: UInt64, inode: UInt64)?
        while !self.stopped.load(ordering: .relaxed) {
            // No controlling terminal, even from a terminal device.
            let fd = open(self.device, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
            guard fd >= 0 else {
                if !missingLogged {
                    self.logger.warning("kiosk device not there; waiting for it", metadata: ["source": "\(self.name)", "device": "\(self.device)"])
                    missingLogged = true
                }
                Thread.sleep(forTimeInterval: 0.2)
                continue
            }
            missingLogged = false
            var status = stat()
            fstat(fd, &status)
            let kind = status.st_mode & S_IFMT
            if kind == S_IFREG {
                // A file has no position kept like a tailer's: read from its start at every
                // agent start, its presses would be stored again under new ids.
                if !regularLogged {
                    self.logger.error(
                        "kiosk device is a regular file; not read (its presses would be stored again at every start): use the input device (/dev/input/by-id/…) or a FIFO",
                        metadata: ["source": "\(self.name)", "device": "\(self.device)"]
                    )
                    regularLogged = true
                }
                close(fd)
                Thread.sleep(forTimeInterval: 1)
                continue
            }
            regularLogged = false
            // Only the same FIFO goes on with the same stream; a recreated one starts anew.
            let identity = (UInt64(status.st_dev), UInt64(status.st_ino))
            if kind != S_IFIFO || pendingFrom.map({ $0 != identity }) ?? false { pending = [] }
            pendingFrom = identity
            self.onOpen()
            self.logger.info("kiosk device opened", metadata: ["source": "\(self.name)", "device": "\(self.device)"])
            if !self.readEvents(fd, &pending, &drops) {
                // Not input events of this platform's layout: wait, then try the device again.
                close(fd)
                pending = []
                Thread.sleep(forTimeInterval: 1)
                continue
            }
            close(fd)
        }
        self.logDrops(&drops, force: true)
        self.buffer.finish()
    }

    private func logDrops(_ drops: inout DropLog, force: Bool = false) {
        guard drops.unlogged > 0 else { return }
        let now = ContinuousClock.now
        if !force, let last = drops.last, now - last < Self.dropLogInterval { return }
        self.logger.warning(
            "kiosk buffer full; presses dropped",
            metadata: ["source": "\(self.name)", "dropped": "\(drops.unlogged)", "total": "\(drops.total)"]
        )
        drops.unlogged = 0
        drops.last = now
    }

    /// Reads until the device goes away (or a FIFO's writer closes it); false when the
    /// stream does not hold input events of this platform's layout (``InputEvent/plausible``).
    private func readEvents(_ fd: Int32, _ pending: inout [UInt8], _ drops: inout DropLog) -> Bool {
        var status = stat()
        fstat(fd, &status)
        let isRegularFile = (status.st_mode & S_IFMT) == S_IFREG
        // A FIFO's writer waits while the buffer is full; a device cannot.
        let canWait = (status.st_mode & S_IFMT) == S_IFIFO
        var buffer = [UInt8](repeating: 0, count: InputEvent.size * 64)
        var sawWriter = false
        var paused = false
        while !self.stopped.load(ordering: .relaxed) {
            var wanted = buffer.count
            if canWait {
                let room = self.buffer.room
                if room == 0 {
                    if !paused {
                        self.logger.warning(
                            "kiosk buffer full; reading paused until the spool takes presses",
                            metadata: ["source": "\(self.name)", "buffered": "\(self.buffer.capacity)"]
                        )
                        paused = true
                    }
                    Thread.sleep(forTimeInterval: 0.02)
                    continue
                }
                if paused {
                    self.logger.notice("kiosk buffer has room; reading again", metadata: ["source": "\(self.name)"])
                    paused = false
                }
                // Never more whole events than there is room for.
                wanted = min(room, 64) * InputEvent.size - pending.count
            }
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, 200)
            if ready == 0 {
                self.logDrops(&drops)
                continue
            }
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, wanted) }
            if count < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                self.logger.warning(
                    "kiosk device gone; will reopen", metadata: ["source": "\(self.name)", "error": "\(String(cString: strerror(errno)))"]
                )
                return true
            }
            if count == 0 {
                // A file: wait for more. A FIFO whose writer left, or a device that went away: reopen.
                if isRegularFile || !sawWriter {
                    Thread.sleep(forTimeInterval: 0.05)
                    if !isRegularFile && (poller.revents & Int16(POLLHUP)) != 0 && !sawWriter { return true }
                    continue
                }
                return true
            }
            sawWriter = true
            pending += buffer[0..<count]
            let whole = pending.count / InputEvent.size * InputEvent.size
            let events = pending.withUnsafeBytes { raw in
                stride(from: 0, to: whole, by: InputEvent.size).map {
                    InputEvent(bytes: UnsafeRawBufferPointer(rebasing: raw[$0..<($0 + InputEvent.size)]))
                }
            }
            pending.removeFirst(whole)
            if let (index, event) = events.enumerated().first(where: { !$0.element.isPlausible }) {
                // Said once until the device sends events that fit again.
                guard !self.layoutRefused.exchange(true, ordering: .relaxed) else {
                    self.onRead(events.count, 0)
                    return false
                }
                self.logger.error(
                    "kiosk device does not send input events of this platform's layout; refused",
                    metadata: [
                        "source": "\(self.name)", "device": "\(self.device)", "eventSize": "\(InputEvent.size)", "event": "\(index)",
                        "type": "\(event.type)", "microseconds": "\(event.microseconds)",
                    ]
                )
                self.onRead(events.count, 0)
                return false
            }
            self.layoutRefused.store(false, ordering: .relaxed)
            let presses = events.filter(self.isPress)
            let dropped = self.buffer.add(presses)
            self.onRead(events.count - presses.count, dropped)
            if dropped > 0 {
                drops.unlogged += dropped
                drops.total += dropped
                self.logDrops(&drops)
            }
        }
        return true
    }
}

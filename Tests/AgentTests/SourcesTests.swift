import Agent
import AgentBench
import Foundation
import TestSupport
import Testing
import Wire

/// The pieces of the edge sources on real files: CSV as Asterisk writes it, the tailer
/// through partial lines, rotation and truncation, key presses, and cursors in the spool.
@Suite struct SourcesTests {
    private func folder() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sources-\(UUID())").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    private func texts(_ chunk: FileTailer.Chunk?) -> [String] {
        chunk?.lines.map { String($0.text) } ?? []
    }

    // MARK: CSV and CDR

    @Test func csvFieldsAreSplitAsAsteriskQuotesThem() throws {
        #expect(try splitCSVLine(#""a","b ""quoted"" c",,"",x"#) == ["a", #"b "quoted" c"#, "", "", "x"])
        #expect(try splitCSVLine(#""""Alice"" <1001>","with, comma""#) == [#""Alice" <1001>"#, "with, comma"])
        #expect(throws: SourceError.self) { try splitCSVLine(#""open"#) }
        #expect(throws: SourceError.self) { try splitCSVLine(#""closed"junk,x"#) }
    }

    static let cdrLine = #""","+441135550199","600","from-queue","""Customer"" <+441135550199>","SIP/trunk-00000012","SIP/agent417-00000013","Dial","SIP/agent417","2026-07-01 09:15:00","2026-07-01 09:15:04","2026-07-01 09:21:30","390","386","ANSWERED","DOCUMENTATION","1751361300.18","survey=2;q=billing""#

    private func parser() -> AsteriskCDRParser {
        AsteriskCDRParser(
            columns: AsteriskCDRParser.baseColumns + AsteriskCDRParser.uniqueIDColumns,
            score: .init(column: "userfield", pattern: #"survey=(\d+)"#), scale: "csat",
            subject: .init(column: "dstchannel", pattern: #"SIP/([a-z0-9]+)-"#), site: "cc-leeds",
            timeZone: TimeZone(identifier: "Europe/London")!
        )
    }

    @Test func aCDRLineBecomesARatingWithScoreSubjectSiteAndLocalTime() throws {
        guard case .rating(let rating) = try self.parser().parse(Substring(Self.cdrLine)) else {
            Issue.record("no rating")
            return
        }
        #expect(rating.score == 2 && rating.scale == "csat" && rating.source == "call")
        #expect(rating.subject == "agent417")
        #expect(rating.site == "cc-leeds")
        #expect(rating.customer == "+441135550199")
        #expect(rating.attributes?["uniqueid"] == "1751361300.18")
        // 09:15 in London in July is 08:15 UTC.
        #expect(rating.occurredAt == 1_782_893_700_000)
    }

    @Test func callsWithoutASurveyAreSkippedAndBrokenLinesSayWhy() throws {
        let noSurvey = Self.cdrLine.replacingOccurrences(of: "survey=2;q=billing", with: "")
        guard case .noRating = try self.parser().parse(Substring(noSurvey)) else {
            Issue.record("a call without a survey made a rating")
            return
        }
        #expect { try self.parser().parse(#""","1","2""#) } throws: { "\($0)".contains("3 fields; the configured columns are 18") }
        let badTime = Self.cdrLine.replacingOccurrences(of: "\"2026-07-01 09:15:00\"", with: "\"yesterday\"")
        #expect { try self.parser().parse(Substring(badTime)) } throws: { "\($0)".contains("start \"yesterday\"") }
        let badScore = Self.cdrLine.replacingOccurrences(of: "survey=2", with: "survey=x2")
        guard case .noRating = try self.parser().parse(Substring(badScore)) else {
            Issue.record("a userfield the pattern does not match made a rating")
            return
        }
    }

    // MARK: Tailer

    @Test func aPartialLastLineWaitsForItsNewline() throws {
        let folder = try self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/feed.log"
        let tailer = FileTailer(path: path, name: "feed", cursor: nil)
        #expect(try tailer.poll() == nil, "no file yet")
        try appendText("one\ntw", to: path)
        #expect(self.texts(try tailer.poll()) == ["one"])
        #expect(self.texts(try tailer.poll()) == [])
        try appendText("o\r\nthree\n", to: path)
        let chunk = try tailer.poll()
        #expect(self.texts(chunk) == ["two", "three"])
        #expect(chunk?.lines.map(\.number) == [2, 3])
        #expect(chunk?.cursor.offset == 15)
    }

    @Test func aByteOrderMarkAtTheStartIsNotPartOfTheFirstLine() throws {
        let folder = try self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/Master.csv"
        // As a spreadsheet saves CSV: the mark, then the first field.
        try appendText("\u{FEFF}branch-042,5\nweb-eu,\u{FEFF}3\n", to: path)
        let chunk = try FileTailer(path: path, name: "cdr", cursor: nil).poll()
        #expect(self.texts(chunk) == ["branch-042,5", "web-eu,\u{FEFF}3"], "only the mark at the file's start is dropped")
        #expect(chunk?.cursor.offset == UInt64("\u{FEFF}branch-042,5\nweb-eu,\u{FEFF}3\n".utf8.count))
        // A file that is only the mark so far, then its first line.
        let second = folder + "/feed.log"
        try appendText("\u{FEFF}", to: second)
        let tailer = FileTailer(path: second, name: "feed", cursor: nil)
        #expect(self.texts(try tailer.poll()) == [])
        try appendText("one\n", to: second)
        #expect(self.texts(try tailer.poll()) == ["one"])
    }

    @Test func aLineLongerThanTheLimitIsRefusedWholeAndTheLinesAfterItKeepTheirNumbers() throws {
        let folder = try self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/Master.csv"
        // A long first field, then what would be a rating with any site if the line's tail
        // were read as a line of its own.
        let long = String(repeating: "A", count: 40) + ",forged-site,0"
        try appendText("ok\n" + long + "\nnext\n", to: path)
        let tailer = FileTailer(path: path, name: "cdr", cursor: nil, maxLineBytes: 16, maxChunkBytes: 8)
        var lines: [(String, UInt64)] = []
        var overlong: [(UInt64, UInt64)] = []
        var cursor: SourceCursor?
        for _ in 0..<20 {
            let chunk = try tailer.poll()
            lines += chunk?.lines.map { (String($0.text), $0.number) } ?? []
            overlong += chunk?.overlong.map { ($0.number, $0.length) } ?? []
            cursor = chunk?.cursor
        }
        #expect(lines.map(\.0) == ["ok", "next"] && lines.map(\.1) == [1, 3], "\(lines)")
        #expect(overlong.count == 1 && overlong.first?.0 == 2 && overlong.first?.1 == UInt64(long.utf8.count))
        #expect(cursor?.line == 3 && cursor?.offset == UInt64(("ok\n" + long + "\nnext\n").utf8.count))

        // The agent stops in the middle of such a line: it starts again at the line's start,
        // and the line's tail is never read as a line.
        let second = folder + "/feed.log"
        try appendText("ok\n" + String(repeating: "B", count: 40), to: second)
        let first = FileTailer(path: second, name: "feed", cursor: nil, maxLineBytes: 16, maxChunkBytes: 8)
        var saved: SourceCursor?
        for _ in 0..<10 { saved = try first.poll()?.cursor ?? saved }
        #expect(saved?.offset == 3 && saved?.line == 1, "the cursor stays at the long line's start")
        try appendText(",tail-site,0\nthird\n", to: second)
        // The tailer that was dropping sees the newline in a later poll: the same outcome.
        var went: [(String, UInt64)] = []
        var wentRefused: [UInt64] = []
        for _ in 0..<20 {
            let chunk = try first.poll()
            went += chunk?.lines.map { (String($0.text), $0.number) } ?? []
            wentRefused += chunk?.overlong.map(\.number) ?? []
        }
        #expect(went.map(\.0) == ["third"] && went.map(\.1) == [3] && wentRefused == [2], "\(went) \(wentRefused)")
        let again = FileTailer(path: second, name: "feed", cursor: saved, maxLineBytes: 16, maxChunkBytes: 8)
        var after: [(String, UInt64)] = []
        var refused: [UInt64] = []
        for _ in 0..<20 {
            let chunk = try again.poll()
            after += chunk?.lines.map { (String($0.text), $0.number) } ?? []
            refused += chunk?.overlong.map(\.number) ?? []
        }
        #expect(after.map(\.0) == ["third"] && after.map(\.1) == [3] && refused == [2], "\(after) \(refused)")

        // A line of exactly the limit is taken, its \r\n split across polls or not.
        let third = folder + "/edge.log"
        let exact = String(repeating: "C", count: 16)
        try appendText(exact + "\r", to: third)
        let edge = FileTailer(path: third, name: "edge", cursor: nil, maxLineBytes: 16, maxChunkBytes: 8)
        var taken: [String] = []
        for _ in 0..<5 { taken += self.texts(try edge.poll()) }
        try appendText("\n" + exact + "D\n", to: third)
        var longer: [UInt64] = []
        for _ in 0..<5 {
            let chunk = try edge.poll()
            taken += self.texts(chunk)
            longer += chunk?.overlong.map(\.length) ?? []
        }
        #expect(taken == [exact] && longer == [17], "\(taken) \(longer)")
    }

    @Test func renameRotationFinishesTheOldFileThenReadsTheNewOne() throws {
        let folder = try self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/Master.csv"
        try appendText("a\nb\n", to: path)
        let tailer = FileTailer(path: path, name: "cdr", cursor: nil)
        #expect(self.texts(try tailer.poll()) == ["a", "b"])
        try appendText("c\nlast-without-newline", to: path)
        #expect(rename(path, path + ".1") == 0)
        try appendText("d\n", to: path)
        var seen: [String] = []
        for _ in 0..<5 { seen += self.texts(try tailer.poll()) }
        #expect(seen == ["c", "last-without-newline", "d"])
    }

    @Test func copyTruncateStartsAgainAtTheTop() throws {
        let folder = try self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/feed.log"
        try appendText("one\ntwo\n", to: path)
        let tailer = FileTailer(path: path, name: "feed", cursor: nil)
        #expect(self.texts(try tailer.poll()) == ["one", "two"])
        #expect(truncate(path, 0) == 0)
        try appendText("three\n", to: path)
        #expect(self.texts(try tailer.poll()) == ["three"])
    }

    /// A feed of lines one, two and three in a new folder, and the cursor after two: what
    /// a tailer saved before the agent stopped.
    private func feedReadToLineTwoOfThree() throws -> (folder: String, path: String, cursor: SourceCursor) {
        let folder = try self.folder()
        let path = folder + "/feed.log"
        try appendText("one\ntwo\n", to: path)
        let cursor = try #require(try FileTailer(path: path, name: "feed", cursor: nil).poll()?.cursor)
        try appendText("three\n", to: path)
        return (folder, path, cursor)
    }

    @Test func aNewTailerResumesAtItsCursorEvenAfterARotationWhileAway() throws {
        let (folder, path, cursor) = try self.feedReadToLineTwoOfThree()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // Rotated while no tailer ran; then a new file.
        #expect(rename(path, path + ".1") == 0)
        try appendText("four\n", to: path)
        let tailer = FileTailer(path: path, name: "feed", cursor: cursor)
        var seen: [String] = []
        for _ in 0..<5 { seen += self.texts(try tailer.poll()) }
        #expect(seen == ["three", "four"], "nothing re-read, nothing skipped")
    }

    @Test func aCursorWhoseFileIsGoneIsReportedOnceNotSkippedSilently() throws {
        let (folder, path, cursor) = try self.feedReadToLineTwoOfThree()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // Rotated and compressed (the old inode gone) while no tailer ran: "three" is lost.
        // The new file is made first, so it cannot be given the old inode number.
        try appendText("four\n", to: path + ".new")
        #expect(unlink(path) == 0)
        #expect(rename(path + ".new", path) == 0)
        let tailer = FileTailer(path: path, name: "feed", cursor: cursor)
        #expect(self.texts(try tailer.poll()) == ["four"])
        let lost = try #require(tailer.takeLostFile(), "the tailer says the file of its cursor was gone")
        #expect(lost.offset == cursor.offset && lost.line == 2)
        #expect(tailer.takeLostFile() == nil, "said once")
    }

    // MARK: Kiosk

    @Test func aWholeBurstIsFlaggedItsFirstPressesIncludedAndEachPressWaitsOneWindow() {
        var hold = KioskBurstHold(limit: 3, windowMilliseconds: 10_000)
        let start: Int64 = 1_700_000_000_000
        func press(_ score: Int, at ms: Int64) -> FeedbackSubmission {
            FeedbackSubmission(source: "kiosk", scale: "smiley", score: score, occurredAt: ms, attributes: ["kiosk": "door"])
        }
        // A customer's single press: held for its window, then released unflagged.
        hold.add(press(1, at: start), now: start)
        #expect(hold.due(now: start + 9_999).isEmpty, "still inside its window")
        #expect(hold.nextDue == start + 11_000)
        let single = hold.due(now: start + 11_000)
        #expect(single.count == 1 && single[0].attributes?["misuse"] == nil)

        // A child hammering: five presses in two seconds, the first ones included, all flagged.
        let burst = start + 60_000
        for index in 0..<5 { hold.add(press(1, at: burst + Int64(index) * 500), now: burst + Int64(index) * 500) }
        #expect(hold.due(now: burst + 2_000).isEmpty, "nothing of a burst leaves before its window")
        // A press a window after the burst completes the burst's windows by event time.
        hold.add(press(4, at: burst + 12_100), now: burst + 12_100)
        let flagged = hold.due(now: burst + 12_100)
        #expect(flagged.count == 5)
        #expect(flagged.allSatisfy { $0.attributes?["misuse"] == "true" && $0.attributes?["kiosk"] == "door" })
        #expect(hold.count == 1)
        // The later press was alone in its window: not flagged; handed over whole when the source stops.
        let rest = hold.all()
        #expect(rest.count == 1 && rest[0].score == 4 && rest[0].attributes?["misuse"] == nil)
        #expect(hold.count == 0 && hold.nextDue == nil)

        // Exactly the limit in a window is not misuse; a press with a timestamp far in the
        // future is not held longer than a window on the clock.
        for index in 0..<3 { hold.add(press(2, at: start + 200_000 + Int64(index)), now: start + 200_000) }
        hold.add(press(3, at: start + 9_000_000_000), now: start + 200_000)
        let calm = hold.due(now: start + 200_000 + 11_000)
        #expect(calm.count == 4 && calm.allSatisfy { $0.attributes?["misuse"] == nil })
        // …and it does not make later presses look a window old: a burst after it is still held whole.
        for index in 0..<4 { hold.add(press(1, at: start + 300_000 + Int64(index)), now: start + 300_000) }
        #expect(hold.due(now: start + 300_001).isEmpty)
        #expect(hold.due(now: start + 311_000).filter { $0.attributes?["misuse"] == "true" }.count == 4)
    }

    @Test func keyDownsBecomeRatingsDebounced() {
        var buttons = KioskButtons(keys: [2: 1, 3: 2, 4: 3, 5: 4], scale: "smiley", site: "branch-042", kiosk: "entrance")
        func press(_ code: UInt16, at ms: Int64, value: Int32 = 1) -> FeedbackSubmission? {
            buttons.rating(for: InputEvent(seconds: ms / 1000, microseconds: ms % 1000 * 1000, type: 1, code: code, value: value))
        }
        let first = press(2, at: 1_000_000)
        #expect(first?.score == 1 && first?.site == "branch-042" && first?.subject == "entrance" && first?.occurredAt == 1_000_000)
        #expect(press(2, at: 1_000_000, value: 0) == nil, "key up")
        #expect(press(2, at: 1_000_010) == nil, "bounce within 30 ms")
        #expect(press(2, at: 1_000_500, value: 2) == nil, "autorepeat")
        #expect(press(9, at: 1_000_600) == nil, "a key not in the map")
        #expect(press(5, at: 1_001_000)?.score == 4)
        let event = InputEvent(seconds: 1_700_000_000, microseconds: 250_000, type: 1, code: 30, value: 1)
        #expect(event.bytes.withUnsafeBytes { InputEvent(bytes: $0) } == event)
    }

    // MARK: Cursor in the spool

    @Test func aSourceCursorIsDurableWithItsRecordsAndOutlivesItsSegment() async throws {
        let folder = try self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var configuration = Spool.Configuration(directory: folder)
        configuration.segmentBytes = 1
        var spool = try Spool(configuration: configuration)
        let identity = AgentIdentity.generate()
        var ratings = SyntheticRatings(origin: identity.nodeID)
        let cursor = SourceCursor(source: "cdr", device: 1, inode: 2, offset: 300, line: 3)
        try await spool.append(ratings.next(3), cursor: cursor)
        try await spool.append([], cursor: SourceCursor(source: "feed", device: 1, inode: 9, offset: 10, line: 1))
        spool.close()
        spool = try Spool(configuration: configuration)
        #expect(spool.cursor(of: "cdr") == cursor)
        #expect(spool.stats.unsealedRecords == 3)
        // Seal and acknowledge everything: the segments that first held the cursors go.
        let records = try spool.unsealed(limit: 10)
        let batch = try BatchSealer(origin: identity.nodeID, signingKey: identity.signingKey).seal(records, sequence: 1)
        try await spool.sealed(batch, recordCount: records.count)
        try spool.acknowledged(batch.key)
        spool.close()
        spool = try Spool(configuration: configuration)
        #expect(spool.cursor(of: "cdr") == cursor)
        #expect(spool.cursor(of: "feed")?.offset == 10)
        spool.close()
    }
}

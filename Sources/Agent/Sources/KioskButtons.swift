import Foundation
import Wire

/// One Linux input event (`struct input_event` on 64-bit Linux: `struct timeval` of two
/// 64-bit fields, `u16 type`, `u16 code`, `s32 value`; 24 bytes, host byte order). The
/// agent reads this layout only; a stream of another (a 32-bit kernel's 16-byte events) is
/// refused (``isPlausible``).
public struct InputEvent: Sendable, Hashable {
    /// Size of one event on the wire.
    public static let size = 24
    /// `EV_KEY`.
    public static let keyType: UInt16 = 1

    /// Seconds of the event time.
    public var seconds: Int64
    /// Microseconds of the event time.
    public var microseconds: Int64
    /// Event type (`EV_KEY` for keys).
    public var type: UInt16
    /// Key code (`KEY_1` is 2, …).
    public var code: UInt16
    /// 1 press, 0 release, 2 autorepeat.
    public var value: Int32

    /// Creates an event.
    public init(seconds: Int64, microseconds: Int64, type: UInt16, code: UInt16, value: Int32) {
        self.seconds = seconds
        self.microseconds = microseconds
        self.type = type
        self.code = code
        self.value = value
    }

    /// Reads an event from 24 bytes.
    public init(bytes: UnsafeRawBufferPointer) {
        self.seconds = bytes.loadUnaligned(fromByteOffset: 0, as: Int64.self)
        self.microseconds = bytes.loadUnaligned(fromByteOffset: 8, as: Int64.self)
        self.type = bytes.loadUnaligned(fromByteOffset: 16, as: UInt16.self)
        self.code = bytes.loadUnaligned(fromByteOffset: 18, as: UInt16.self)
        self.value = bytes.loadUnaligned(fromByteOffset: 20, as: Int32.self)
    }

    /// The 24 bytes of this event, as the kernel writes them.
    public var bytes: [UInt8] {
        var out = [UInt8](repeating: 0, count: Self.size)
        out.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: self.seconds, toByteOffset: 0, as: Int64.self)
            raw.storeBytes(of: self.microseconds, toByteOffset: 8, as: Int64.self)
            raw.storeBytes(of: self.type, toByteOffset: 16, as: UInt16.self)
            raw.storeBytes(of: self.code, toByteOffset: 18, as: UInt16.self)
            raw.storeBytes(of: self.value, toByteOffset: 20, as: Int32.self)
        }
        return out
    }

    /// Event time in ms since the epoch.
    public var milliseconds: Int64 { self.seconds * 1000 + self.microseconds / 1000 }

    /// Whether this can be an event the kernel wrote in this layout: a time after 1970 and
    /// before the year 36,000, microseconds under a million, a type up to `EV_MAX` (0x1f).
    /// A stream of another layout (a 32-bit kernel's 16-byte events, a file of something
    /// else) read as 24-byte events fails this at once: its fields land in the wrong places.
    public var isPlausible: Bool {
        (0..<(1 << 40)).contains(self.seconds) && (0..<1_000_000).contains(self.microseconds) && self.type <= 0x1f
    }
}

/// Turns key presses from a kiosk's button box into ratings: key-down only, by a key map,
/// with debouncing and a misuse filter.
///
/// A press of the same key within ``debounce`` of the previous one is contact bounce and
/// dropped. More than ``misuseLimit`` presses within ``misuseWindowMilliseconds`` is
/// someone hammering the buttons: the source holds each rating for that window
/// (``KioskBurstHold``), so the whole burst, its first presses included, is kept with the
/// attribute `misuse=true`, which leaves it out of scores and alerts.
public struct KioskButtons: Sendable {
    /// Key code → score.
    public var keys: [UInt16: Int]
    /// The scale the scores are on (`smiley`, `nps`, …).
    public var scale: String
    /// Where the kiosk is.
    public var site: String
    /// Which kiosk (the rating's subject).
    public var kiosk: String
    /// The survey id.
    public var survey: String
    /// Presses of one key closer than this, ms, are one press.
    public var debounceMilliseconds: Int64 = 30
    /// More presses than this within ``misuseWindowMilliseconds`` are flagged.
    public var misuseLimit = 10
    /// The misuse window, ms.
    public var misuseWindowMilliseconds: Int64 = 10_000

    private var lastPress: [UInt16: Int64] = [:]

    /// Creates the mapping.
    public init(keys: [UInt16: Int], scale: String, site: String, kiosk: String, survey: String = "kiosk") {
        self.keys = keys
        self.scale = scale
        self.site = site
        self.kiosk = kiosk
        self.survey = survey
    }

    /// Whether `event` is a key-down of a mapped key: a rating unless it is contact bounce.
    func isPress(_ event: InputEvent) -> Bool {
        event.type == InputEvent.keyType && event.value == 1 && self.keys[event.code] != nil
    }

    /// The rating this event makes, if any.
    public mutating func rating(for event: InputEvent) -> FeedbackSubmission? {
        guard self.isPress(event), let score = self.keys[event.code] else { return nil }
        let time = event.milliseconds
        if let last = self.lastPress[event.code], time - last >= 0, time - last < self.debounceMilliseconds {
            return nil
        }
        self.lastPress[event.code] = time
        return FeedbackSubmission(
            source: "kiosk", scale: self.scale, score: score, occurredAt: time, site: self.site, channel: "kiosk",
            subject: self.kiosk, survey: self.survey, attributes: ["kiosk": self.kiosk]
        )
    }

    /// The hold that flags this kiosk's bursts.
    public var burstHold: KioskBurstHold {
        KioskBurstHold(limit: self.misuseLimit, windowMilliseconds: self.misuseWindowMilliseconds)
    }

    /// Key names a configuration may use, with their Linux key codes.
    public static let keyNames: [String: UInt16] = {
        var names: [String: UInt16] = ["KEY_0": 11, "KEY_ENTER": 28, "KEY_SPACE": 57, "KEY_KP0": 82, "KEY_KPENTER": 96]
        for digit in 1...9 { names["KEY_\(digit)"] = UInt16(1 + digit) }
        for (index, letter) in ["Q", "W", "E", "R", "T", "Y", "U", "I", "O", "P"].enumerated() { names["KEY_\(letter)"] = UInt16(16 + index) }
        for (index, letter) in ["A", "S", "D", "F", "G", "H", "J", "K", "L"].enumerated() { names["KEY_\(letter)"] = UInt16(30 + index) }
        for (index, letter) in ["Z", "X", "C", "V", "B", "N", "M"].enumerated() { names["KEY_\(letter)"] = UInt16(44 + index) }
        for (index, code) in [79, 80, 81, 75, 76, 77, 71, 72, 73].enumerated() { names["KEY_KP\(index + 1)"] = UInt16(code) }
        for number in 1...12 { names["KEY_F\(number)"] = UInt16(number <= 10 ? 58 + number : 76 + number) }
        return names
    }()
}

/// Holds a kiosk's ratings for its misuse window before they go into the spool, so that a
/// burst (more than ``limit`` presses within ``windowMilliseconds``) is flagged whole: the
/// presses before the limit was passed as well as those after. None of a burst raises an
/// alert. The price is latency: a press is sealed a window after it was made (10 s by
/// default), plus at most ``graceMilliseconds`` for a press nothing follows.
///
/// A press is due when a later press is a window younger (the window around it is
/// complete), or when a window and the grace have passed on the clock since the press (or
/// since it was read, for a timestamp in the future). Every window holding more than
/// ``limit`` presses ends at one of them, so checking the window that ends at each new
/// press finds every burst.
public struct KioskBurstHold: Sendable {
    /// Most presses in a window that are not misuse.
    public let limit: Int
    /// The window, ms.
    public let windowMilliseconds: Int64
    /// How long past the window a press waits for presses still on their way, ms.
    public let graceMilliseconds: Int64 = 1_000

    private var held: [(submission: FeedbackSubmission, time: Int64, read: Int64)] = []
    /// Press times of the last window, held or released.
    private var recent: [Int64] = []
    private var latest = Int64.min

    /// Creates a hold.
    public init(limit: Int, windowMilliseconds: Int64) {
        self.limit = limit
        self.windowMilliseconds = windowMilliseconds
    }

    /// Ratings held.
    public var count: Int { self.held.count }

    /// Holds `submission` (a kiosk press, `occurredAt` its time) read at `now`; flags it and
    /// every held press of its window when the window holds more than ``limit``.
    public mutating func add(_ submission: FeedbackSubmission, now: Int64) {
        let time = submission.occurredAt ?? now
        // A timestamp from the future (a wrong clock) must not make every later press look a window old.
        if time <= now + self.graceMilliseconds { self.latest = max(self.latest, time) }
        self.recent.append(time)
        self.recent.removeAll { time - $0 >= self.windowMilliseconds || $0 - time > self.windowMilliseconds }
        self.held.append((submission, time, now))
        guard self.recent.count > self.limit else { return }
        for index in self.held.indices where time - self.held[index].time < self.windowMilliseconds && self.held[index].time <= time {
            self.held[index].submission.attributes = (self.held[index].submission.attributes ?? [:]).merging([FeedbackRecord.misuseAttribute: "true"]) { $1 }
        }
    }

    /// The held ratings whose window is complete at `now`, in press order.
    public mutating func due(now: Int64) -> [FeedbackSubmission] {
        var out: [FeedbackSubmission] = []
        while let first = self.held.first, self.isDue(first.time, read: first.read, now: now) {
            out.append(self.held.removeFirst().submission)
        }
        return out
    }

    /// Every held rating, as flagged so far (the source is stopping).
    public mutating func all() -> [FeedbackSubmission] {
        defer { self.held.removeAll() }
        return self.held.map(\.submission)
    }

    /// When the first held rating falls due on the clock, ms since the epoch.
    public var nextDue: Int64? {
        self.held.first.map { min($0.time, $0.read) + self.windowMilliseconds + self.graceMilliseconds }
    }

    private func isDue(_ time: Int64, read: Int64, now: Int64) -> Bool {
        self.latest - time >= self.windowMilliseconds || now - min(time, read) >= self.windowMilliseconds + self.graceMilliseconds
    }
}

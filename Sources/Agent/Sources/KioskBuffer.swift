import Synchronization

/// Key presses read from a kiosk's input and not yet in the spool: at most ``capacity``,
/// counting those the source's task has taken and not yet stored.
///
/// The reader thread adds; when there is no room it stops reading (a FIFO or a file: the
/// writer or the file holds the rest) or counts what does not fit as dropped (a device:
/// the kernel's queue is small and drops without counting). The source's task takes
/// presses, and releases their room once they are stored or given up.
final class KioskBuffer: Sendable {
    private struct State {
        var waiting: [InputEvent] = []
        var taken = 0
        var finished = false
    }

    /// Most presses held.
    let capacity: Int
    /// Rings when presses were added, and ends when the reader stopped.
    let bell: AsyncStream<Void>
    private let ringer: AsyncStream<Void>.Continuation
    private let state = Mutex(State())

    init(capacity: Int) {
        self.capacity = capacity
        (self.bell, self.ringer) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Presses held: waiting or taken and not yet released.
    var held: Int { self.state.withLock { $0.waiting.count + $0.taken } }

    /// How many more presses fit.
    var room: Int { self.capacity - self.held }

    /// Adds as many of `presses` as fit, in order; returns how many did not.
    func add(_ presses: [InputEvent]) -> Int {
        guard !presses.isEmpty else { return 0 }
        let left = self.state.withLock { state -> Int in
            let fitting = min(presses.count, self.capacity - state.waiting.count - state.taken)
            state.waiting += presses.prefix(fitting)
            return presses.count - fitting
        }
        if left < presses.count { self.ringer.yield() }
        return left
    }

    /// Takes up to `limit` waiting presses, oldest first; their room stays used until
    /// ``release(_:)``.
    func take(upTo limit: Int) -> [InputEvent] {
        self.state.withLock { state in
            let presses = Array(state.waiting.prefix(limit))
            state.waiting.removeFirst(presses.count)
            state.taken += presses.count
            return presses
        }
    }

    /// `count` taken presses are stored or given up: their room is free again.
    func release(_ count: Int) {
        self.state.withLock { $0.taken -= count }
    }

    /// The reader stopped: no more presses come.
    func finish() {
        self.state.withLock { $0.finished = true }
        self.ringer.finish()
    }

    /// Whether the reader stopped and every press was taken.
    var isDrained: Bool { self.state.withLock { $0.finished && $0.waiting.isEmpty } }
}

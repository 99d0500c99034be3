/// Bounded waits for a condition that becomes true asynchronously: tests never assert
/// right after an asynchronous event, and never wait without a deadline.
///
/// The default deadline is a hang guard, not a performance claim: a condition that holds
/// returns at once, and 30 s leaves room for a machine running the whole suite with both
/// cores busy (CI has seen a busy disk hold a hub's commits for over 10 s).

/// Waits for an asynchronous `condition` up to `seconds`; returns whether it became true.
public func eventually(seconds: Double = 30, _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return try await condition()
}

/// Waits for `condition` up to `seconds`; returns whether it became true.
public func eventually(seconds: Double = 30, _ condition: () throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if try condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return try condition()
}

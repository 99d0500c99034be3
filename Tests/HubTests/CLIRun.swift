import Foundation

/// One run of a FeedbackMesh command-line tool as a real process: its exit status, its
/// output (standard output and error together) and whether it had to be killed.
struct CLIRun {
    var status: Int32
    var output: String
    var timedOut: Bool
    /// Whether it ended by a signal (a crash, or the kill after the timeout).
    var signalled: Bool
    /// Wall time until it exited or was killed.
    var seconds: Double

    static let hub = CrashTests.binary
    static let agent = AgentProcessTests.binary
    static let bench = CrashTests.root.appendingPathComponent(".build/debug/feedback-bench").path

    /// Runs `binary` with `arguments`, feeding `input` on standard input, under `umask`
    /// if given; kills it after `timeout` seconds.
    ///
    /// The wait happens on a thread of its own: a test blocking one of the concurrency
    /// pool's few threads for the seconds a process runs would stall every other suite
    /// running beside it (and an in-process hub's tasks) on a busy machine.
    static func run(
        _ binary: String, _ arguments: [String], input: String? = nil, umask: String? = nil, timeout: Double = 60
    ) async throws -> CLIRun {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                continuation.resume(with: Result { try Self.runBlocking(binary, arguments, input: input, umask: umask, timeout: timeout) })
            }
            thread.start()
        }
    }

    private static func runBlocking(
        _ binary: String, _ arguments: [String], input: String?, umask: String?, timeout: Double
    ) throws -> CLIRun {
        let process = Process()
        if let umask {
            // The umask is per process: set it in a shell that then becomes the tool, so the
            // test process's own umask (shared by every test) is left alone.
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", "umask \(umask) && exec \"$0\" \"$@\"", binary] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = arguments
        }
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID()).log").path
        guard FileManager.default.createFile(atPath: log, contents: nil), let handle = FileHandle(forWritingAtPath: log) else {
            throw CocoaError(.fileWriteUnknown)
        }
        defer {
            try? handle.close()
            try? FileManager.default.removeItem(atPath: log)
        }
        process.standardOutput = handle
        process.standardError = handle
        let stdin = Pipe()
        process.standardInput = stdin
        let started = ContinuousClock.now
        try process.run()
        if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
        try stdin.fileHandleForWriting.close()
        let deadline = started + .milliseconds(Int(timeout * 1000))
        while process.isRunning, ContinuousClock.now < deadline { usleep(10_000) }
        let timedOut = process.isRunning
        if timedOut { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        let elapsed = ContinuousClock.now - started
        let output = String(decoding: FileManager.default.contents(atPath: log) ?? Data(), as: UTF8.self)
        return CLIRun(
            status: process.terminationStatus, output: output, timedOut: timedOut,
            signalled: process.terminationReason == .uncaughtSignal,
            seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        )
    }
}

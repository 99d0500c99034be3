import Agent
import AgentBench
import ArgumentParser
import Foundation
import Support
import Wire

struct SpoolCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "spool",
        abstract: "Measures durable spool appends on this machine's disk.",
        discussion: """
            --writers concurrent callers each append --per-append records at a time, as HTTP
            intake callers or a tailer would, until --records are appended. Each append
            returns only once durable under --fsync. The folder is deleted afterwards.
            """
    )

    @Option(help: "Where to make the scratch spool (a folder on the disk to measure).")
    var directory = FileManager.default.temporaryDirectory.path

    @Option(help: "Records to append in all, 1–100000000.")
    var records = 1_000_000

    @Option(help: "Concurrent appenders, 1–100000.")
    var writers = 1_000

    @Option(help: "Records per append call, 1–10000.")
    var perAppend = 1

    @Option(help: "always, never, or a group interval in ms (e.g. 10).")
    var fsync = "10"

    func validate() throws {
        try RangeError.check(self.records, 1...100_000_000, "--records")
        try RangeError.check(self.writers, 1...100_000, "--writers")
        try RangeError.check(self.perAppend, 1...10_000, "--per-append")
        _ = try self.policy()
    }

    private func policy() throws -> Spool.FsyncPolicy {
        switch self.fsync {
        case "always": return .always
        case "never": return .never
        default:
            guard let ms = Int(self.fsync), (1...10_000).contains(ms) else {
                throw CLIError("--fsync must be always, never or 1–10000 (ms), got \(TerminalText.excerpt(self.fsync))")
            }
            return .interval(.milliseconds(ms))
        }
    }

    func run() async throws {
        let folder = URL(fileURLWithPath: self.directory).appendingPathComponent("spool-bench-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var configuration = Spool.Configuration(directory: folder)
        configuration.fsync = try self.policy()
        configuration.quotaBytes = Int.max
        let spool = try Spool(configuration: configuration)
        let origin = UUID()
        let calls = (self.records + self.perAppend - 1) / self.perAppend
        let perWriter = (calls + self.writers - 1) / self.writers
        // Records are made before the clock starts: this measures the spool, not the generator.
        var ratings = SyntheticRatings(origin: origin)
        let chunks = (0..<min(self.writers, calls)).map { _ in ratings.next(self.perAppend) }
        let started = ContinuousClock.now
        try await withThrowingTaskGroup(of: Int.self) { group in
            for chunk in chunks {
                group.addTask {
                    var written = 0
                    var ids = UUIDv7()
                    for _ in 0..<perWriter where written < calls * self.perAppend {
                        let now = Int64(Date().timeIntervalSince1970 * 1000)
                        try await spool.append(chunk.map { record in
                            var copy = record
                            copy.id = ids.next(milliseconds: now)
                            return copy
                        })
                        written += chunk.count
                    }
                    return written
                }
            }
            var total = 0
            for try await written in group { total += written }
            let elapsed = ContinuousClock.now - started
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let stats = spool.stats
            spool.close()
            print("appended \(total) records (\(stats.bytes / max(total, 1)) bytes each on disk) in "
                + String(format: "%.2f s: %.0f records/s", seconds, Double(total) / seconds)
                + " with fsync \(self.fsync), \(self.writers) writers × \(self.perAppend) per append")
        }
    }
}

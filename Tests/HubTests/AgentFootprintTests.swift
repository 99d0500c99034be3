import Foundation
import Testing

/// Issue 13, "a small process": the `feedback-agent` a kiosk runs carries no benchmark code
/// and maps no Swift shared libraries (docs/BENCHMARKS.md, "Agent footprint").
@Suite struct AgentFootprintTests {
    /// Type names the load generator and the synthetic ratings leave in a binary's metadata.
    static let benchmarkTypes = ["LoadGenerator", "SyntheticRatings"]

    @Test func theAgentBinaryCarriesNoBenchmarkCodeAndTheBenchBinaryDoes() throws {
        let agent = try Data(contentsOf: URL(fileURLWithPath: CLIRun.agent))
        let bench = try Data(contentsOf: URL(fileURLWithPath: CLIRun.bench))
        for name in Self.benchmarkTypes {
            #expect(agent.range(of: Data(name.utf8)) == nil, "feedback-agent holds \(name)")
            // The same search finds them where they now live, so it can see them at all.
            #expect(bench.range(of: Data(name.utf8)) != nil, "feedback-bench lacks \(name)")
        }
    }

    @Test func theBenchmarksAreSubcommandsOfFeedbackBenchNotOfTheAgent() async throws {
        // Arguments the old subcommands refused at once (a missing option, a stray argument),
        // so neither would have started a run.
        for old in [["bench"], ["spool-bench", "stray"]] {
            let run = try await CLIRun.run(CLIRun.agent, old, timeout: 20)
            #expect(run.status != 0 && run.output.contains("nexpected argument") && run.output.contains("'\(old[0])'"), "feedback-agent \(old[0]): \(run.output)")
        }
        for new in ["load", "spool"] {
            let run = try await CLIRun.run(CLIRun.bench, [new, "--help"], timeout: 20)
            #expect(run.status == 0 && run.output.contains("USAGE: feedback-bench \(new)"), "feedback-bench \(new): \(run.output)")
        }
    }

    #if os(Linux)
    /// The Swift runtime, Foundation and ICU are linked into the binary (`-static-stdlib`),
    /// and URLSession's libcurl is not needed at all: what is left are the C libraries.
    @Test func theAgentLoadsNoSwiftOrCurlSharedLibraries() async throws {
        let run = try await CLIRun.run("/usr/bin/ldd", [CLIRun.agent], timeout: 20)
        #expect(run.status == 0, "\(run.output)")
        for library in ["libswiftCore", "libswift_Concurrency", "libFoundation", "lib_FoundationICU", "libdispatch", "libcurl"] {
            #expect(!run.output.contains(library), "feedback-agent loads \(library): \(run.output)")
        }
        #expect(run.output.contains("libc.so"), "ldd listed the C library: \(run.output)")
    }
    #endif
}

import Agent
import ArgumentParser
import Crypto
import NIOCore
import Support
import Wire

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

@main
struct FeedbackAgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "feedback-agent",
        abstract: "Captures customer ratings and forwards them, sealed, to a FeedbackMesh hub.",
        subcommands: [Keygen.self, Enroll.self, Run.self, Status.self, Import.self, Seal.self, IntakeKeyCommand.self]
    )
}

struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Creates the agent's identity: a node id and an Ed25519 signing key."
    )

    @Option(name: .shortAndLong, help: "Where to write the identity file (mode 0600).")
    var out: String

    @Flag(help: "Replace an existing identity file. The old key is lost.")
    var force = false

    func run() throws {
        let identity = AgentIdentity.generate()
        do {
            try identity.save(to: self.out, overwrite: self.force)
        } catch let error as AgentIdentityError {
            throw CLIError(error.description)
        }
        print("node id:    \(identity.nodeID)")
        print("key id:     \(identity.keyID)")
        print("public key: \(identity.publicKeyBase64)")
    }
}

struct IntakeKeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "intake-key",
        abstract: "Makes a key for the HTTP intake and prints the lines agent.yaml needs.",
        discussion: """
            A write key (the default) is a backend's secret: it is printed once, agent.yaml keeps
            only its SHA-256. A survey key (--survey) is public: a product page sends it with the
            popup widget, for one survey and one site, from the listed origins.
            """
    )

    @Option(help: "The key's name (letters, digits, '.', '_', '-').")
    var name: String

    @Option(help: "Make a public survey key for this survey, for the popup widget.")
    var survey: String?

    @Option(help: "A survey key's site.")
    var site: String?

    @Option(help: "A page origin a survey key is used from (https://shop.example.com); repeat for more.")
    var origin: [String] = []

    func run() throws {
        guard (1...64).contains(self.name.utf8.count), self.name.utf8.allSatisfy({ AgentConfigurationFile.HTTPSection.nameBytes.contains($0) }) else {
            throw CLIError("--name must be 1–64 letters, digits, '.', '_' or '-'")
        }
        var random = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &random) }
        let body = Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
        if let survey = self.survey {
            guard let site = self.site, !site.isEmpty else { throw CLIError("a survey key needs --site") }
            guard !self.origin.isEmpty else { throw CLIError("a survey key needs --origin, the page origin it is used from") }
            if let bad = self.origin.first(where: { !AgentConfigurationFile.HTTPSection.isOrigin($0) }) {
                throw CLIError("--origin must be scheme://host[:port] like https://shop.example.com, got \(TerminalText.excerpt(bad))")
            }
            let key = "fms_" + body
            let origins = self.origin.map { String(reflecting: $0) }.joined(separator: ", ")
            print("survey key: \(key)   (public: it goes into the page's widget snippet)")
            print("add to agent.yaml under http.surveyKeys:")
            print("  - {name: \(self.name), key: \(String(reflecting: key)), survey: \(String(reflecting: survey)), site: \(String(reflecting: site)), origins: [\(origins)]}")
        } else {
            let key = "fmw_" + body
            let digest = Array(SHA256.hash(data: Array(key.utf8))).hexString
            print("write key: \(key)")
            print("it is shown once: give it to the backend now (Authorization: Bearer KEY); the agent keeps only its SHA-256.")
            print("add to agent.yaml under http.writeKeys (sites and surveys optional):")
            print("  - {name: \(self.name), sha256: \"\(digest)\"}")
        }
    }
}

struct Seal: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Seals ratings from a JSON-lines file into one signed BATCH frame.",
        discussion: """
            Each input line is a submission such as
              {"source":"kiosk","scale":"smiley","score":1,"site":"branch-042"}
            The agent assigns the id, its node id as origin, and the capture time.
            """
    )

    /// A batch encodes to at most 8 MiB (BatchLimits); its JSON is a few times that.
    static let maxInputBytes = 64 << 20

    @Option(help: "The agent identity file made by keygen.")
    var identity: String

    @Option(help: "JSON-lines file of submissions; - reads standard input.")
    var records: String

    @Option(help: "The batch sequence number, from 1 (never reused by one agent).")
    var sequence: UInt64

    @Option(help: "zstd level, 1–19.")
    var level: Int32 = 3

    @Option(name: .shortAndLong, help: "Where to write the BATCH frame (mode 0600: it holds customer data).")
    var out: String

    func validate() throws {
        try RangeError.check(self.sequence, 1...UInt64.max, "--sequence")
        try RangeError.check(self.level, 1...19, "--level")
    }

    func run() throws {
        let identity: AgentIdentity
        do {
            identity = try AgentIdentity.load(from: self.identity)
        } catch let error as AgentIdentityError {
            throw CLIError(error.description)
        }
        let read: [UInt8]?
        do {
            read = try BoundedFile.read(self.records, maxBytes: Self.maxInputBytes)
        } catch {
            throw CLIError("cannot read \(self.records): \(error.cause)")
        }
        guard let data = read else {
            throw CLIError("\(self.records) is larger than \(Self.maxInputBytes >> 20) MiB; one batch holds less")
        }
        let text = String(decoding: data, as: UTF8.self)
        var ids = UUIDv7()
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        var records: [FeedbackRecord] = []
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingWhitespace()
            if trimmed.isEmpty { continue }
            let place = "\(self.records):\(index + 1)"
            let submission: FeedbackSubmission
            do {
                submission = try StrictJSONNumbers.submission(from: Array(trimmed.utf8))
            } catch {
                throw CLIError("\(place): not a submission: \(Self.describe(error))")
            }
            do {
                records.append(try submission.record(id: ids.next(milliseconds: now), origin: identity.nodeID, capturedAt: now))
            } catch let error as WireError {
                throw CLIError("\(place): \(error.detail)")
            }
        }
        guard !records.isEmpty else { throw CLIError("\(self.records) holds no submissions") }
        let sealer = BatchSealer(origin: identity.nodeID, signingKey: identity.signingKey, level: self.level)
        let batch: SealedBatch
        do {
            batch = try sealer.seal(records, sequence: self.sequence)
        } catch let error as WireError {
            throw CLIError(error.detail)
        }
        var frame = ByteBuffer()
        Frame.batch(batch).write(into: &frame)
        do {
            // A batch holds customer ids and comments.
            try SecretFile.write(frame.readableBytesView, to: self.out, replacing: true)
        } catch {
            throw CLIError("cannot write \(error)")
        }
        let header = batch.header
        print(
            "sealed \(records.count) records as batch \(header.sequence) of \(identity.nodeID): "
                + "\(header.uncompressedLength) bytes encoded, \(header.compressedLength) compressed, "
                + "\(frame.readableBytes) bytes framed"
        )
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): "missing \"\(key.stringValue)\""
        case DecodingError.typeMismatch(_, let context): "\(context.codingPath.map(\.stringValue).joined(separator: ".")) has the wrong type"
        case DecodingError.dataCorrupted: "invalid JSON"
        default: "invalid JSON"
        }
    }
}

import ArgumentParser
import Crypto
import Foundation
import Hub
import Support
import Wire

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decodes a file of protocol frames and opens its batches, as a hub would.",
        discussion: "Exits 0 only if every frame decodes and every batch opens under the given key."
    )

    @Argument(help: "A file of frames, binary or (with --hex) hex text.")
    var file: String

    @Flag(help: "The file is hex text, such as a test vector from docs/PROTOCOL.md.")
    var hex = false

    @Option(help: "The origin's Ed25519 public key, base64 of 32 bytes; batches are opened with it.")
    var publicKey: String?

    @Flag(help: "Print each opened record as a JSON line.")
    var records = false

    func run() throws {
        guard let data = FileManager.default.contents(atPath: self.file) else {
            throw CLIError("cannot read \(self.file)")
        }
        var bytes = [UInt8](data)
        if self.hex {
            guard let decoded = [UInt8](hexString: String(decoding: bytes, as: UTF8.self)) else {
                throw CLIError("\(self.file) is not hex text")
            }
            bytes = decoded
        }
        var key: Curve25519.Signing.PublicKey?
        if let publicKey = self.publicKey {
            guard let raw = Data(base64Encoded: publicKey), let parsed = try? Curve25519.Signing.PublicKey(rawRepresentation: raw)
            else {
                throw CLIError("--public-key is not the base64 of a 32-byte Ed25519 public key")
            }
            key = parsed
        }
        let entries: [FrameInspector.Entry]
        do {
            entries = try FrameInspector(publicKey: key).inspect(bytes)
        } catch let error as WireError {
            throw CLIError("\(self.file): \(error.detail) (\(error.rejectCode))")
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var refused = 0
        for entry in entries {
            // Frames come from a peer: their strings are shown escaped.
            print(TerminalText.escape(Self.summary(entry.frame)))
            switch entry.opened {
            case .success(let opened):
                let negative = opened.filter(\.isNegative).count
                print("  signature verified; \(opened.count) valid records, \(negative) negative")
                if self.records {
                    for record in opened {
                        print(TerminalText.escape(String(decoding: try encoder.encode(record), as: UTF8.self), style: .json))
                    }
                }
            case .failure(let error):
                refused += 1
                print("  REFUSED (\(error.rejectCode)): \(TerminalText.escape(error.detail))")
            case nil:
                break
            }
        }
        if refused > 0 { throw ExitCode(1) }
    }

    static func summary(_ frame: Frame) -> String {
        switch frame {
        case .challenge(let c): "CHALLENGE versions \(c.versions) hub \(c.hubID)"
        case .hello(let h): "HELLO v\(h.version) node \(h.nodeID) \(h.role) key \(h.keyID)"
        case .welcome(let w): "WELCOME v\(w.version) credit \(w.initialCredit) resume \(w.resume.count)"
        case .batch(let b):
            "BATCH \(b.key) key \(b.header.keyID): \(b.header.recordCount) records, "
                + "\(b.header.uncompressedLength) → \(b.header.compressedLength) bytes"
        case .ack(let a): "ACK \(a.key) \(a.status) \(a.storedRecords) stored"
        case .reject(let r): "REJECT \(r.isConnectionLevel ? "connection" : r.key.description) \(r.code) \(r.disposition): \(r.message)"
        case .credit(let n): "CREDIT \(n)"
        case .ping(let v): "PING \(v)"
        case .pong(let v): "PONG \(v)"
        case .goAway(let g): "GOAWAY \(g.code) reconnect after \(g.reconnectAfterMilliseconds) ms: \(g.message)"
        case .forward(let f):
            "FORWARD via \(f.path.map(\.uuidString).joined(separator: " → ")): " + Self.summary(.batch(f.batch))
        case .registry(let r):
            "REGISTRY revision \(r.revision)\(r.first ? " first" : "")\(r.last ? " last" : ""): \(r.entries.count) nodes"
        case .enroll(let e): "ENROLL node \(e.hello.nodeID) \(e.hello.role) through the challenge of \(e.challenge.hubID)"
        case .enrolled(let e): "ENROLLED node \(e.nodeID): \(e.outcome)"
        case .status(let s): "STATUS node \(s.nodeID) key \(s.keyID) sent at \(s.sentAt): \(s.body.count) bytes of report"
        }
    }
}

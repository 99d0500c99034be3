import ArgumentParser
import Foundation
import Hub
import Support

struct Certs: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Issues certificates from the hub's CA.",
        subcommands: [Client.self, Relay.self]
    )

    /// The CA, now, and the end of validity `days` from now, checked against the CA's own; the
    /// output folder exists afterwards.
    static func authority(certificate: String, key: String, days: Int, out: String) throws -> (CertificateAuthority, Date, Date) {
        guard (1...3_650).contains(days) else { throw CLIError("--days must be 1–3650, got \(days)") }
        let authority: CertificateAuthority
        do {
            authority = try CertificateAuthority.load(certificate: certificate, privateKey: key)
        } catch let error as FileError {
            throw CLIError(error.description)
        }
        let now = Date()
        guard authority.notValidAfter > now else {
            throw CLIError("the CA certificate \(certificate) expired on \(authority.notValidAfter.formatted(.iso8601)): make a new CA first")
        }
        let notValidAfter = now.addingTimeInterval(Double(days) * 86_400)
        guard notValidAfter <= authority.notValidAfter else {
            let left = Int(authority.notValidAfter.timeIntervalSince(now) / 86_400)
            throw CLIError(
                "--days \(days) would outlive the CA \(certificate), valid until \(authority.notValidAfter.formatted(.iso8601)); at most \(max(left, 0)) days"
            )
        }
        do {
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        } catch {
            throw CLIError("cannot create \(out): \(error.localizedDescription)")
        }
        return (authority, now, notValidAfter)
    }

    struct Relay: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Issues a relay's server certificate from the hub's CA, so agents behind the relay trust it as they trust the hub.",
            discussion: """
                Writes OUT/relay.pem (the certificate, for the names given) and OUT/relay-key.pem (its \
                private key, mode 0600). Name them in the relay's agent.yaml (relay.certificate and \
                relay.privateKey); agents keep the hub's CA (ca.pem) as their one trust anchor.
                """
        )

        @Option(name: .customLong("hostname"), help: "A name or address agents use to reach the relay (repeatable).")
        var hostnames: [String] = []

        @Option(help: "The CA certificate agents trust (the hub's ca.pem).")
        var caCertificate = "hub/ca.pem"

        @Option(help: "The CA's private key (kept offline).")
        var caKey = "hub/ca-key.pem"

        @Option(help: "Days the certificate is valid, 1–3650; not beyond the CA's own expiry.")
        var days = 730

        @Option(name: .shortAndLong, help: "The folder to write the certificate and key to (created if missing).")
        var out: String

        @Flag(help: "Replace a certificate and key that already exist in the folder.")
        var force = false

        func run() throws {
            let names = self.hostnames.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            guard !names.isEmpty else { throw CLIError("name the relay with --hostname (the name or address agents connect to)") }
            if let bad = names.first(where: { $0.count > 253 || $0.unicodeScalars.contains { $0.value < 0x21 || $0.value > 0x7E } }) {
                throw CLIError("--hostname \"\(bad.prefix(64))\" is not a host name or address")
            }
            let (authority, now, notValidAfter) = try Certs.authority(
                certificate: self.caCertificate, key: self.caKey, days: self.days, out: self.out
            )
            let folder = URL(fileURLWithPath: self.out)
            let certificatePath = folder.appendingPathComponent("relay.pem").path
            let keyPath = folder.appendingPathComponent("relay-key.pem").path
            if !self.force, let existing = [certificatePath, keyPath].first(where: FileManager.default.fileExists(atPath:)) {
                throw CLIError("\(existing) already exists; use --force to replace it")
            }
            let issued: CertificateAuthority.Issued
            do {
                issued = try authority.issue(.server(hostnames: names), notValidBefore: now.addingTimeInterval(-300), notValidAfter: notValidAfter)
            } catch let error as FileError {
                throw CLIError(error.description)
            }
            try writeFile(keyPath, issued.privateKey, isSecret: true)
            try writeFile(certificatePath, issued.certificate, isSecret: false)
            print("relay certificate for \(names.joined(separator: ", ")): \(certificatePath), \(keyPath); valid until \(notValidAfter.formatted(.iso8601))")
        }
    }

    struct Client: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Issues client certificates for nodes, for a hub that requires mutual TLS (tls.clientCA).",
            discussion: """
                For each node id, writes OUT/<node id>.pem (the certificate; it names the node as \
                urn:uuid:<node id>) and OUT/<node id>-key.pem (its private key, mode 0600). Give both \
                to the node (agent.yaml clientCertificate and clientKey; enroll --client-certificate \
                and --client-key). The hub refuses a node whose certificate names another node.
                """
        )

        @Option(help: "A node id from `feedback-agent keygen` (repeatable).")
        var nodeId: [String] = []

        @Option(help: "A file of node ids, one per line (blank lines and lines starting with # are skipped).")
        var nodeIds: String?

        @Option(help: "The CA certificate the hub's tls.clientCA names.")
        var caCertificate = "hub/ca.pem"

        @Option(help: "The CA's private key (kept offline).")
        var caKey = "hub/ca-key.pem"

        @Option(help: "Days the certificates are valid, 1–3650; not beyond the CA's own expiry.")
        var days = 730

        @Option(name: .shortAndLong, help: "The folder to write the certificates and keys to (created if missing).")
        var out: String

        @Flag(help: "Replace certificates and keys that already exist in the folder.")
        var force = false

        /// At most this many nodes per run, and node-id files at most 1 MiB.
        static let maxNodes = 10_000

        func run() throws {
            let nodes = try self.nodeIDs()
            let (authority, now, notValidAfter) = try Certs.authority(
                certificate: self.caCertificate, key: self.caKey, days: self.days, out: self.out
            )
            let manager = FileManager.default
            let folder = URL(fileURLWithPath: self.out)
            let files = nodes.map { node in
                (node, folder.appendingPathComponent("\(node).pem").path, folder.appendingPathComponent("\(node)-key.pem").path)
            }
            // Checked for every node before anything is written: a run either issues all or none.
            if !self.force, let existing = files.flatMap({ [$0.1, $0.2] }).first(where: manager.fileExists(atPath:)) {
                throw CLIError("\(existing) already exists; use --force to replace it")
            }
            for (node, certificatePath, keyPath) in files {
                let issued: CertificateAuthority.Issued
                do {
                    issued = try authority.issue(
                        .client(nodeID: node), notValidBefore: now.addingTimeInterval(-300), notValidAfter: notValidAfter
                    )
                } catch let error as FileError {
                    throw CLIError(error.description)
                }
                try writeFile(keyPath, issued.privateKey, isSecret: true)
                try writeFile(certificatePath, issued.certificate, isSecret: false)
                print("\(node): \(certificatePath), \(keyPath)")
            }
            print("issued \(nodes.count) client certificate(s), valid until \(notValidAfter.formatted(.iso8601))")
        }

        private func nodeIDs() throws -> [UUID] {
            var texts = self.nodeId.map { ($0, "--node-id") }
            if let path = self.nodeIds {
                let read: [UInt8]?
                do {
                    read = try BoundedFile.read(path, maxBytes: 1 << 20)
                } catch {
                    throw CLIError("--node-ids \(path) cannot be read")
                }
                guard let data = read else { throw CLIError("--node-ids \(path) is larger than 1 MiB") }
                for (index, line) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                    let text = line.trimmingCharacters(in: .whitespaces)
                    if text.isEmpty || text.hasPrefix("#") { continue }
                    texts.append((text, "\(path) line \(index + 1)"))
                }
            }
            var seen = Set<UUID>()
            var nodes: [UUID] = []
            for (text, origin) in texts {
                guard let node = UUID(uuidString: text), node != UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)) else {
                    throw CLIError("\(origin): \"\(text.prefix(64))\" is not a node id (a UUID from `feedback-agent keygen`)")
                }
                if seen.insert(node).inserted { nodes.append(node) }
            }
            guard !nodes.isEmpty else { throw CLIError("name the nodes with --node-id or --node-ids") }
            guard nodes.count <= Self.maxNodes else { throw CLIError("at most \(Self.maxNodes) nodes per run, got \(nodes.count)") }
            return nodes
        }
    }
}

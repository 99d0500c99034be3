import Dispatch
import Logging
import NIOCore
import Support
import Synchronization
import Wire

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The registered nodes as a relay knows them: the last complete snapshot its upstream sent
/// in REGISTRY frames, kept on disk (`registry` in the spool folder, 0600) so the relay keeps
/// checking HELLOs and signatures, and passing the snapshot on, while its upstream is
/// unreachable. A revocation reaches the relay with the next snapshot (the hub sends one
/// within a second of any change to every connected relay).
public final class RelayRegistry: Sendable {
    struct State: Sendable {
        var directory = NodeDirectory()
        var revision: UInt64?
        /// The directory as frames for the relays below, made once per snapshot.
        var frames: [RegistryUpdate] = []
        /// A snapshot being received: its revision and entries so far.
        var incoming: (revision: UInt64, entries: [RegistryUpdate.Entry])?
    }

    /// Longest registry file read at start (a fleet of about 100,000 nodes).
    static let maxFileBytes = 64 << 20
    /// Most nodes in a snapshot: an upstream that never ends one cannot grow it further.
    static let maxEntries = 200_000
    /// Where snapshots are applied and saved: off the event loop that read them, in order.
    private let queue = DispatchQueue(label: "feedback-agent.relay-registry")

    private let path: String
    private let state = Mutex(State())
    private let logger: Logger

    /// Loads the registry kept at `path`, if there is one; a missing file is an empty
    /// registry (every HELLO refused until the upstream sends one), and a damaged one is
    /// logged and ignored the same way.
    public init(path: String, logger: Logger) {
        self.path = path
        self.logger = logger
        guard let bytes = try? BoundedFile.read(path, maxBytes: Self.maxFileBytes) else { return }
        var buffer = ByteBuffer(bytes: bytes)
        var entries: [RegistryUpdate.Entry] = []
        var revision: UInt64?
        do {
            while buffer.readableBytes > 0 {
                guard case .registry(let update)? = try Frame.read(from: &buffer, limits: FrameLimits()) else {
                    throw WireError(.truncated, field: "registry file", "a frame is cut short")
                }
                entries += update.entries
                revision = update.revision
            }
            self.state.withLock {
                $0.directory = NodeDirectory(entries)
                $0.revision = revision
                $0.frames = RegistryUpdate.frames(revision: revision ?? 0, entries: $0.directory.entries)
            }
            logger.info("relay registry loaded", metadata: ["nodes": "\(entries.count)", "path": "\(path)"])
        } catch {
            logger.error("the relay's registry file cannot be read; waiting for the upstream's", metadata: ["path": "\(path)", "error": "\(error)"])
        }
    }

    /// The directory in force.
    public var directory: NodeDirectory { self.state.withLock { $0.directory } }

    /// The revision of the snapshot in force, nil before the first.
    public var revision: UInt64? { self.state.withLock { $0.revision } }

    /// Takes one REGISTRY frame from the event loop that read it; it is applied on a queue of
    /// the registry's own, in order (building a large directory and saving it with an fsync
    /// would stall the loop). A frame out of order is logged and waits for the next snapshot.
    public func enqueue(_ update: RegistryUpdate) {
        self.queue.async {
            do {
                try self.receive(update)
            } catch {
                self.logger.warning("registry frame out of order; waiting for the next snapshot", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Takes one REGISTRY frame; once a snapshot is complete it replaces the directory and
    /// is written to disk. Returns true when the directory changed.
    ///
    /// - Throws: ``WireError`` for frames out of order (a frame that neither starts a
    ///   snapshot nor continues the one being received).
    @discardableResult
    public func receive(_ update: RegistryUpdate) throws -> Bool {
        let complete = try self.state.withLock { state -> (UInt64, [RegistryUpdate.Entry])? in
            if update.first {
                state.incoming = (update.revision, [])
            }
            guard var incoming = state.incoming, incoming.revision == update.revision else {
                state.incoming = nil
                throw WireError(.protocolViolation, field: "registry", "a REGISTRY frame of revision \(update.revision) out of order")
            }
            incoming.entries += update.entries
            guard incoming.entries.count <= Self.maxEntries else {
                state.incoming = nil
                throw WireError(.limitExceeded, field: "registry", "a registry snapshot of more than \(Self.maxEntries) nodes")
            }
            guard update.last else {
                state.incoming = incoming
                return nil
            }
            state.incoming = nil
            guard state.revision != update.revision else { return nil }
            return (update.revision, incoming.entries)
        }
        guard let (revision, entries) = complete else { return false }
        // Built outside the lock the event loops take for every batch, then swapped in.
        let directory = NodeDirectory(entries)
        let frames = RegistryUpdate.frames(revision: revision, entries: directory.entries)
        self.state.withLock { state in
            state.directory = directory
            state.revision = revision
            state.frames = frames
        }
        self.save(frames)
        self.logger.info("relay registry updated", metadata: ["nodes": "\(entries.count)", "revision": "\(revision)"])
        return true
    }

    /// A node the hub has just enrolled through this relay: known here at once, until the
    /// next snapshot (which holds it) replaces the directory.
    public func admit(_ entry: RegistryUpdate.Entry) {
        self.state.withLock { state in
            var entries = state.directory.entries.filter { $0.nodeID != entry.nodeID }
            entries.append(entry)
            state.directory = NodeDirectory(entries)
        }
    }

    /// The snapshot in force as frames for the relays below this one, and its revision.
    public var snapshot: (revision: UInt64, frames: [RegistryUpdate])? {
        self.state.withLock { state in state.revision.map { ($0, state.frames) } }
    }

    private func save(_ frames: [RegistryUpdate]) {
        var buffer = ByteBuffer()
        for frame in frames { Frame.registry(frame).write(into: &buffer) }
        do {
            try SecretFile.write(buffer.readableBytesView, to: self.path, replacing: true)
        } catch {
            // The registry in memory is in force; only a restart before the next save loses it.
            self.logger.error("cannot save the relay's registry", metadata: ["path": "\(self.path)", "error": "\(error)"])
        }
    }
}

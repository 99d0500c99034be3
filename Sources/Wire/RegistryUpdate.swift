import NIOCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// REGISTRY, hub → relay (protocol version 2): part of a snapshot of the nodes the hub has
/// registered, so a relay can check HELLOs and batch signatures of the nodes it serves and
/// learns of revocations without asking. A relay passes the snapshot on to relays below it.
///
/// A snapshot is one or more frames with the same ``revision``: the first has ``first`` set
/// (the receiver starts a new snapshot), the last has ``last`` set (the receiver replaces its
/// registry with the snapshot, atomically). A frame out of that order is a protocol error.
///
/// On the wire: `u64 revision`, `u8 flags` (bit 0 first, bit 1 last, others 0), `u16 count`,
/// then `count` entries of `16 nodeId, u64 keyId, 32 publicKey, u8 role, u8 revoked (0 or 1),
/// u16 patternCount (0 … 256; 0 is no site at all), patternCount × (u8 length, UTF-8 pattern)`.
public struct RegistryUpdate: Sendable, Hashable {
    /// Longest REGISTRY payload; a sender starts a new frame well before it.
    public static let maxLength = 1 << 20
    /// Encoded size without entries.
    public static let minimumLength = 11
    /// Bytes a sender puts in one frame before it starts the next.
    public static let targetLength = 256 << 10

    /// One registered node as a relay needs it.
    public struct Entry: Sendable, Hashable {
        /// Node id.
        public var nodeID: UUID
        /// Id of ``publicKey``.
        public var keyID: KeyID
        /// The node's Ed25519 public key, 32 raw bytes.
        public var publicKey: [UInt8]
        /// Agent or relay.
        public var role: Hello.Role
        /// A revoked node is refused at the relay as at the hub.
        public var revoked: Bool
        /// The sites the node may report for.
        public var sites: SiteScope

        /// Creates an entry.
        public init(nodeID: UUID, keyID: KeyID, publicKey: [UInt8], role: Hello.Role, revoked: Bool, sites: SiteScope) {
            self.nodeID = nodeID
            self.keyID = keyID
            self.publicKey = publicKey
            self.role = role
            self.revoked = revoked
            self.sites = sites
        }

        var encodedLength: Int { 60 + 2 + self.sites.patterns.reduce(0) { $0 + 1 + $1.utf8.count } }
    }

    /// Names the snapshot this frame belongs to; it changes whenever the registry does.
    public var revision: UInt64
    /// The snapshot starts with this frame.
    public var first: Bool
    /// The snapshot ends with this frame.
    public var last: Bool
    /// Entries in this frame.
    public var entries: [Entry]

    /// Creates one frame's worth of a snapshot.
    public init(revision: UInt64, first: Bool, last: Bool, entries: [Entry]) {
        self.revision = revision
        self.first = first
        self.last = last
        self.entries = entries
    }

    /// A whole snapshot cut into frames of about ``targetLength`` bytes (one frame when empty).
    public static func frames(revision: UInt64, entries: [Entry]) -> [RegistryUpdate] {
        var frames: [RegistryUpdate] = []
        var current: [Entry] = []
        var length = Self.minimumLength
        for entry in entries {
            if !current.isEmpty, length + entry.encodedLength > Self.targetLength || current.count == Int(UInt16.max) {
                frames.append(RegistryUpdate(revision: revision, first: frames.isEmpty, last: false, entries: current))
                current = []
                length = Self.minimumLength
            }
            current.append(entry)
            length += entry.encodedLength
        }
        frames.append(RegistryUpdate(revision: revision, first: frames.isEmpty, last: true, entries: current))
        return frames
    }

    func write(into buffer: inout ByteBuffer) {
        let flags: UInt8 = (self.first ? 1 : 0) | (self.last ? 2 : 0)
        buffer.writeMultipleIntegers(self.revision, flags, UInt16(truncatingIfNeeded: self.entries.count))
        for entry in self.entries {
            buffer.writeUUID(entry.nodeID)
            buffer.writeInteger(entry.keyID.rawValue)
            buffer.writeBytes(entry.publicKey)
            buffer.writeMultipleIntegers(entry.role.rawValue, UInt8(entry.revoked ? 1 : 0), UInt16(entry.sites.patterns.count))
            for pattern in entry.sites.patterns { buffer.writeString8(pattern) }
        }
    }

    static func read(from buffer: inout ByteBuffer) throws -> RegistryUpdate {
        guard let (revision, flags, count) = buffer.readMultipleIntegers(as: (UInt64, UInt8, UInt16).self) else {
            throw WireError.truncated("registry")
        }
        guard flags & ~3 == 0 else {
            throw WireError(.lengthOutOfRange, field: "registry.flags", "registry flags \(flags) set bits other than first (1) and last (2)")
        }
        var entries: [Entry] = []
        for _ in 0..<count {
            let nodeID = try buffer.readUUID("registry.nodeId")
            let keyID = KeyID(rawValue: try buffer.readWire(UInt64.self, "registry.keyId"))
            let publicKey = try buffer.readWireBytes(32, "registry.publicKey")
            let roleByte = try buffer.readWire(UInt8.self, "registry.role")
            guard let role = Hello.Role(rawValue: roleByte) else {
                throw WireError(.lengthOutOfRange, field: "registry.role", "role \(roleByte) is not agent (1) or relay (2)")
            }
            let revokedByte = try buffer.readWire(UInt8.self, "registry.revoked")
            guard revokedByte <= 1 else {
                throw WireError(.lengthOutOfRange, field: "registry.revoked", "revoked \(revokedByte) is not 0 or 1")
            }
            let patternCount = Int(try buffer.readWire(UInt16.self, "registry.patternCount"))
            guard patternCount <= SiteScope.maxPatterns else {
                throw WireError.length("registry.patternCount", patternCount, max: SiteScope.maxPatterns)
            }
            var patterns: [String] = []
            for _ in 0..<patternCount { patterns.append(try buffer.readString8("registry.sites", max: RecordLimits.protocolMaximum.site)) }
            entries.append(
                Entry(nodeID: nodeID, keyID: keyID, publicKey: publicKey, role: role, revoked: revokedByte == 1,
                      sites: patterns.isEmpty ? .none : try SiteScope(patterns))
            )
        }
        return RegistryUpdate(revision: revision, first: flags & 1 != 0, last: flags & 2 != 0, entries: entries)
    }
}

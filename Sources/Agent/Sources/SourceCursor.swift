import NIOCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Where a source has read to: the file (device and inode) and the byte offset after the
/// last line taken, with that line's number for log messages.
///
/// Cursors are kept in the spool, in the same entry as the records read up to them, so a
/// restart resumes exactly after the last line whose ratings are durable: nothing is read
/// twice and nothing is skipped.
public struct SourceCursor: Sendable, Hashable, CustomStringConvertible {
    /// The source's configured name.
    public var source: String
    /// `st_dev` of the file.
    public var device: UInt64
    /// `st_ino` of the file.
    public var inode: UInt64
    /// Bytes read and taken.
    public var offset: UInt64
    /// Lines read and taken.
    public var line: UInt64

    /// Creates a cursor.
    public init(source: String, device: UInt64, inode: UInt64, offset: UInt64, line: UInt64) {
        self.source = source
        self.device = device
        self.inode = inode
        self.offset = offset
        self.line = line
    }

    /// "SOURCE at DEVICE:INODE+OFFSET (line N)".
    public var description: String { "\(self.source) at \(self.device):\(self.inode)+\(self.offset) (line \(self.line))" }

    func write(into buffer: inout ByteBuffer) {
        let name = Array(self.source.utf8.prefix(255))
        buffer.writeInteger(UInt8(name.count))
        buffer.writeBytes(name)
        buffer.writeMultipleIntegers(self.device, self.inode, self.offset, self.line)
    }

    static func read(from buffer: inout ByteBuffer) -> SourceCursor? {
        guard let length = buffer.readInteger(as: UInt8.self), let name = buffer.readString(length: Int(length)),
            let (device, inode, offset, line) = buffer.readMultipleIntegers(as: (UInt64, UInt64, UInt64, UInt64).self)
        else { return nil }
        return SourceCursor(source: name, device: device, inode: inode, offset: offset, line: line)
    }
}

import Foundation
import Synchronization

/// Plain TCP sockets for flood tests: thousands of connections that never speak TLS, or
/// speak HTTP one byte at a time, from chosen loopback source addresses (all of 127.0.0.0/8
/// is local on Linux, so per-address caps can be exercised on one machine).
final class RawSockets: Sendable {
    private let opened = Mutex<[Int32]>([])

    /// The connections opened and not closed by ``closeAll()``.
    var descriptors: [Int32] { self.opened.withLock { $0 } }
    /// POLLRDHUP (Linux): the peer closed its end.
    private static let pollReadHangUp: Int32 = 0x2000

    /// Opens `count` connections to 127.0.0.1:`port`, spread round-robin over `sources`.
    /// Connections the kernel or the server refuse outright are not kept.
    func open(_ count: Int, from sources: [String], to port: Int) {
        for index in 0..<count {
            if let fd = Self.connect(from: sources[index % sources.count], to: port) { self.opened.withLock { $0.append(fd) } }
        }
    }

    /// Writes `bytes` to every connection still open; returns how many took them.
    @discardableResult
    func send(_ bytes: [UInt8]) -> Int {
        var written = 0
        for fd in self.descriptors where Foundation.send(fd, bytes, bytes.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) == bytes.count {
            written += 1
        }
        return written
    }

    /// How many connections the server has closed (end of stream or reset seen).
    func closedByPeer() -> Int {
        var fds = self.descriptors.map { pollfd(fd: $0, events: Int16(POLLIN | Self.pollReadHangUp), revents: 0) }
        _ = poll(&fds, nfds_t(fds.count), 0)
        var closed = 0
        var scratch = [UInt8](repeating: 0, count: 4096)
        for entry in fds where entry.revents != 0 {
            if entry.revents & Int16(POLLHUP | Self.pollReadHangUp | POLLERR) != 0 {
                closed += 1
                continue
            }
            // Readable: drain what the server said; 0 means it closed.
            let read = recv(entry.fd, &scratch, scratch.count, Int32(MSG_DONTWAIT))
            if read == 0 || (read < 0 && errno != EAGAIN && errno != EWOULDBLOCK) { closed += 1 }
        }
        return closed
    }

    func closeAll() {
        for fd in self.opened.withLock({ descriptors in defer { descriptors = [] }; return descriptors }) { Foundation.close(fd) }
    }

    deinit {
        for fd in self.descriptors { Foundation.close(fd) }
    }

    private static func connect(from source: String, to port: Int) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        local.sin_addr.s_addr = inet_addr(source)
        var remote = sockaddr_in()
        remote.sin_family = sa_family_t(AF_INET)
        remote.sin_addr.s_addr = inet_addr("127.0.0.1")
        remote.sin_port = in_port_t(UInt16(port).bigEndian)
        let length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        let connected = withUnsafePointer(to: &remote) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Foundation.connect(fd, $0, length) }
        }
        guard bound == 0, connected == 0 else {
            Foundation.close(fd)
            return nil
        }
        return fd
    }
}

/// A process's resident memory in MiB, from /proc.
func residentMiB(of pid: Int32) -> Double? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
        let kib = Double(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    else { return nil }
    return kib / 1024
}

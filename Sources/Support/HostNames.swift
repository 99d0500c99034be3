#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The `Host` header checks of the HTTP ports (the hub's operations port, the agent's
/// intake): a port answers to IP addresses, `localhost` and the names it is told, so a page
/// whose DNS name was re-pointed at it (DNS rebinding) is refused.
public enum HostNames {
    /// Whether a request naming `authority` (`HOST[:PORT]`) in `Host` may be served: an IP
    /// address or `localhost` (no DNS name to rebind), or one of `names`; any port,
    /// compared without case.
    public static func allows(_ authority: String, names: some Sequence<String>) -> Bool {
        let host = Self.hostPart(of: authority).lowercased()
        if host == "localhost" || Self.isIPAddress(host) { return true }
        return names.contains { $0.lowercased() == host }
    }

    /// Whether `host` is an IPv4 address or a bracketed IPv6 one (`[::1]`).
    public static func isIPAddress(_ host: some StringProtocol) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        if host.hasPrefix("["), host.hasSuffix("]") { return inet_pton(AF_INET6, String(host.dropFirst().dropLast()), &v6) == 1 }
        return inet_pton(AF_INET, String(host), &v4) == 1
    }

    /// Whether a listening `host` is only reachable from this machine: `localhost`, an
    /// address in 127.0.0.0/8, or `::1` (bare or bracketed).
    public static func isLoopback(_ host: String) -> Bool {
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        if bare == "localhost" { return true }
        var v4 = in_addr()
        if inet_pton(AF_INET, bare, &v4) == 1 { return UInt32(bigEndian: v4.s_addr) >> 24 == 127 }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, bare, &v6) == 1 {
            return withUnsafeBytes(of: v6) { bytes in bytes.prefix(15).allSatisfy { $0 == 0 } && bytes[15] == 1 }
        }
        return false
    }

    /// `authority` without its port: `ops.example.com:7080` → `ops.example.com`;
    /// `[::1]:7080` → `[::1]`.
    public static func hostPart(of authority: String) -> Substring {
        if authority.hasPrefix("[") {
            // `[v6]` or `[v6]:port`; anything else is left whole, so it matches no name.
            guard let close = authority.firstIndex(of: "]") else { return authority[...] }
            let rest = authority[authority.index(after: close)...]
            guard rest.isEmpty || (rest.first == ":" && rest.dropFirst().allSatisfy(\.isASCII) && rest.dropFirst().allSatisfy(\.isNumber)) else {
                return authority[...]
            }
            return authority[...close]
        }
        return authority.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
    }

    /// Whether `name` can be listed as a host name: letters, digits, dots and hyphens, at
    /// most 253 bytes (no scheme, port or path).
    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 253
            && name.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "." || $0 == "-" }
    }
}

import Support

/// Where a hub or relay listens: `HOST:PORT`, or `[IPv6]:PORT`.
public struct HubAddress: Sendable, Hashable, CustomStringConvertible {
    /// Name or address.
    public var host: String
    /// TCP port.
    public var port: Int

    /// Creates an address.
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `HOST:PORT` or `[IPv6]:PORT`.
    ///
    /// - Throws: ``HubAddressError`` naming the text when it is not that.
    public init(parsing text: String) throws {
        guard let colon = text.lastIndex(of: ":"), colon > text.startIndex,
            let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port)
        else {
            throw HubAddressError(text: text)
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, !host.contains(" ") else { throw HubAddressError(text: text) }
        self.host = host
        self.port = port
    }

    /// `host:port`, with brackets around an IPv6 address.
    public var description: String { self.host.contains(":") ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)" }
}

/// A hub address that is not `HOST:PORT`.
public struct HubAddressError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The text given.
    public var text: String

    /// Creates the error for `text`.
    public init(text: String) {
        self.text = text
    }
    /// One line for the user.
    public var description: String { "\(TerminalText.excerpt(self.text)) is not a hub address; expected HOST:PORT with a port from 1 to 65535" }
}

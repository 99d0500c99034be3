/// Why a ``NodeServer`` cannot be built or cannot listen.
public struct NodeServerError: Error, CustomStringConvertible {
    /// What kind of failure.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private let name: String

        /// The TLS certificate, key or client CA cannot be used.
        public static let tlsFiles = Code(name: "tlsFiles")
        /// The listener cannot be bound.
        public static let listen = Code(name: "listen")
        /// The listener was not bound in time.
        public static let notListening = Code(name: "notListening")

        /// The code's name.
        public var description: String { self.name }
    }

    /// What kind of failure.
    public var code: Code
    /// What failed, in one line.
    public var reason: String

    /// Creates an error.
    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    /// The reason.
    public var description: String { self.reason }
}

import Yams

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A YAML configuration file (hub.yaml, alerts.yaml, agent.yaml) read with bounds, so a
/// hostile or broken file fails fast with one short line instead of hanging the process.
///
/// - The file is at most ``maxBytes`` and must be UTF-8.
/// - It is parsed once, into a `Node` tree; settings are decoded from that tree.
/// - Anchors and aliases (`&name`, `*name`) are refused: an "alias bomb" expands a few
///   hundred bytes into billions of nodes, and configuration files have no need of them.
///   libyaml bounds nesting to 1,000 levels.
/// - Errors give the setting and the line, quote at most ``TerminalText/excerpt(_:limit:)``
///   of a value, and never the file's text (which may hold secrets).
public struct ConfigDocument {
    /// The largest configuration file read: 1 MiB, far above any real one.
    public static let maxBytes = 1 << 20

    /// The file, as errors name it.
    public let path: String
    /// The document's root; nil for an empty file.
    public let root: Node?

    /// Reads `path`: at most ``maxBytes`` are read, whatever the file is.
    ///
    /// - Throws: ``ConfigFileError``.
    public static func read(_ path: String) throws -> ConfigDocument {
        let bytes: [UInt8]?
        do {
            bytes = try BoundedFile.read(path, maxBytes: Self.maxBytes)
        } catch {
            throw ConfigFileError(path: path, "cannot be read (\(error.cause))")
        }
        guard let bytes else { throw Self.tooLarge(path) }
        return try ConfigDocument(bytes: bytes, path: path)
    }

    private static func tooLarge(_ path: String) -> ConfigFileError {
        ConfigFileError(path: path, "is larger than 1 MiB, the limit for a configuration file")
    }

    /// Parses `bytes`; `path` names them in errors.
    ///
    /// - Throws: ``ConfigFileError``.
    public init(bytes: some Collection<UInt8>, path: String) throws {
        guard bytes.count <= Self.maxBytes else { throw Self.tooLarge(path) }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            let offset = Self.firstInvalidUTF8(bytes)
            throw ConfigFileError(path: path, "is not UTF-8 text (invalid byte at offset \(offset))")
        }
        try self.init(text: text, path: path)
    }

    /// Parses `text`; `path` names it in errors.
    ///
    /// - Throws: ``ConfigFileError``.
    public init(text: String, path: String) throws {
        guard text.utf8.count <= Self.maxBytes else {
            throw ConfigFileError(path: path, "is larger than 1 MiB, the limit for a configuration file")
        }
        self.path = path
        if let line = Self.firstAnchorLine(in: text) {
            throw ConfigFileError(path: path, Self.anchorsRefused, line: line)
        }
        do {
            // The encoding is given: `.default` reads an environment variable and prints.
            let parser = try Parser(yaml: text, resolver: .default, constructor: .default, encoding: .utf8)
            let root = try parser.singleRoot()
            // A node keeps its anchor only while the parser lives (Yams holds it weakly).
            try withExtendedLifetime(parser) {
                if let root { try Self.refuseAnchors(root, path: path) }
            }
            self.root = root
        } catch let error as YamlError {
            throw ConfigFileError(path: path, yaml: error)
        }
    }

    /// Checks that every mapping holds only the keys `schema` knows.
    ///
    /// - Throws: ``ConfigFileError`` naming the first unknown setting and its line.
    public func check(_ schema: ConfigSchema) throws {
        guard let root = self.root else { return }
        try schema.check(root, at: "", path: self.path)
    }

    /// Decodes `type` from the tree (never from the text again).
    ///
    /// - Throws: ``ConfigFileError`` naming the setting that is missing or wrong, and its line.
    public func decode<T: Decodable>(_ type: T.Type) throws -> T {
        guard let root = self.root else { throw ConfigFileError(path: self.path, "is empty; it must be a mapping of settings") }
        do {
            return try YAMLDecoder().decode(type, from: root)
        } catch let DecodingError.keyNotFound(key, context) {
            throw self.error(at: context.codingPath, "misses \(Self.name(context.codingPath + [key]))")
        } catch let DecodingError.typeMismatch(expected, context) {
            throw self.error(at: context.codingPath, "has the wrong type at \(Self.name(context.codingPath)): \(Self.expectation(expected))")
        } catch let DecodingError.valueNotFound(expected, context) {
            throw self.error(at: context.codingPath, "has no value at \(Self.name(context.codingPath)): \(Self.expectation(expected))")
        } catch let DecodingError.dataCorrupted(context) {
            throw self.error(at: context.codingPath, "has an invalid value at \(Self.name(context.codingPath))")
        } catch let error as ConfigFileError {
            throw error
        } catch {
            // Other errors may quote the value; only their kind is shown.
            throw ConfigFileError(path: self.path, "cannot be decoded (\(Swift.type(of: error)))")
        }
    }

    /// The tree as plain Swift values (`[String: Any]`, `[Any]`, `String`, `Int`, …), for
    /// readers that walk it themselves.
    public var tree: Any? { self.root?.any }

    /// The line of the setting at `codingPath`, if the tree has it.
    public func line(of codingPath: [any CodingKey]) -> Int? {
        var node = self.root
        for key in codingPath {
            switch node {
            case .mapping(let mapping)?: node = mapping[key.stringValue]
            case .sequence(let sequence)?:
                guard let index = key.intValue, sequence.indices.contains(index) else { return node?.mark?.line }
                node = sequence[index]
            default: return node?.mark?.line
            }
        }
        return node?.mark?.line
    }

    private func error(at codingPath: [any CodingKey], _ reason: String) -> ConfigFileError {
        ConfigFileError(path: self.path, reason, line: self.line(of: codingPath))
    }

    /// `limits.credit`, `hubs[2]`.
    static func name(_ codingPath: [any CodingKey]) -> String {
        var text = ""
        for key in codingPath {
            if let index = key.intValue {
                text += "[\(index + 1)]"
            } else {
                text += (text.isEmpty ? "" : ".") + TerminalText.escape(key.stringValue)
            }
        }
        return text.isEmpty ? "the top level" : text
    }

    private static func expectation(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "expected text"
        case is Int.Type, is Int64.Type, is UInt64.Type, is Int32.Type, is UInt8.Type, is UInt16.Type: "expected a whole number"
        case is Bool.Type: "expected true or false"
        case is Double.Type: "expected a number"
        default: "expected \(String(describing: type).lowercased().hasPrefix("array") ? "a list" : "a \(type)")"
        }
    }

    static let anchorsRefused = "uses an anchor or alias; anchors and aliases (&name, *name) are not allowed in configuration files"

    /// Walks the tree once; the first anchored node is refused before any alias to it is
    /// followed, so the walk never expands an alias bomb.
    private static func refuseAnchors(_ root: Node, path: String) throws {
        var pending = [root]
        while let node = pending.popLast() {
            if let anchor = node.anchor {
                throw ConfigFileError(path: path, "\(Self.anchorsRefused) (&\(TerminalText.escape(anchor.rawValue.prefix(40))))", line: node.mark?.line)
            }
            switch node {
            case .mapping(let mapping):
                for (key, value) in mapping.reversed() { pending += [value, key] }
            case .sequence(let sequence):
                pending += sequence.reversed()
            case .scalar, .alias:
                break
            }
        }
    }

    private static func firstInvalidUTF8(_ bytes: some Collection<UInt8>) -> Int {
        var offset = 0
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar): offset += UTF8.width(scalar)
            case .emptyInput, .error: return offset
            }
        }
    }
}

/// A configuration file that cannot be used: what is wrong, and where.
public struct ConfigFileError: Error, Sendable, CustomStringConvertible {
    /// The file.
    public var path: String
    /// What is wrong, without the file name: `misses hubId`.
    public var reason: String
    /// The line, when known.
    public var line: Int?

    /// Creates an error.
    public init(path: String, _ reason: String, line: Int? = nil) {
        self.path = path
        self.reason = reason
        self.line = line
    }

    /// The reason with its line: `misses tls.certificate (line 4)`.
    public var located: String { self.line.map { "\(self.reason) (line \($0))" } ?? self.reason }

    /// `PATH: REASON (line N)`.
    public var description: String { "\(self.path): \(self.located)" }

    /// A YAML syntax error, as a position and libyaml's short problem; Yams' own
    /// description quotes the file's text, which may hold secrets or be huge.
    init(path: String, yaml error: YamlError) {
        self.path = path
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            let while_ = context.map { " \($0.text)" } ?? ""
            self.reason = "is not valid YAML: \(problem)\(while_), column \(mark.column)"
            self.line = mark.line
        case .reader(let problem, let offset, _, _):
            self.reason = "is not valid YAML: \(problem)" + (offset.map { " at byte \($0)" } ?? "")
        case .duplicatedKeysInMapping(let duplicates, let context):
            let key = TerminalText.excerpt(duplicates.sorted().first ?? "")
            self.reason = "has the key \(key) twice in one mapping"
            self.line = context.mark.line
        case .memory:
            self.reason = "is not valid YAML: the parser ran out of memory"
        case .no, .writer, .emitter, .representer, .dataCouldNotBeDecoded:
            self.reason = "is not valid YAML"
        }
    }
}

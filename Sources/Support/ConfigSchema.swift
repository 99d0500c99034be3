import Yams

/// The shape of a configuration file: which keys each mapping may hold. One checker for
/// hub.yaml, agent.yaml and alerts.yaml, so a misspelt setting is refused the same way,
/// with the same message, in every file, instead of being silently ignored.
///
/// Only the keys and the kind of container are checked here; values are the loaders'.
public indirect enum ConfigSchema: Sendable {
    /// A value not looked into.
    case value
    /// A mapping of settings: only these keys.
    case settings([String: ConfigSchema])
    /// A mapping from names the file chooses (targets by name) to values of one shape.
    case named(ConfigSchema)
    /// A list of items of one shape.
    case list(ConfigSchema)
    /// A mapping whose `key` (such as `kind`) decides which settings it may hold; a mapping
    /// whose `key` is missing or unknown is left to the loader, which names what is wrong.
    case variant(key: String, [String: [String: ConfigSchema]])

    /// Settings with no deeper shape: `.settings` of `.value`s.
    public static func keys(_ names: String...) -> ConfigSchema {
        .settings(Dictionary(uniqueKeysWithValues: names.map { ($0, .value) }))
    }

    func check(_ node: Node, at place: String, path: String) throws {
        switch self {
        case .value:
            return
        case .settings(let known):
            let mapping = try Self.mapping(node, at: place, path: path)
            try Self.check(mapping, known: known, at: place, path: path)
        case .named(let item):
            let mapping = try Self.mapping(node, at: place, path: path)
            for (key, value) in mapping {
                try item.check(value, at: Self.join(place, TerminalText.escape(key.string ?? "?")), path: path)
            }
        case .list(let item):
            guard case .sequence(let sequence) = node else {
                throw ConfigFileError(path: path, "\(Self.display(place)) must be a list", line: node.mark?.line)
            }
            for (index, value) in sequence.enumerated() {
                try item.check(value, at: "\(place)[\(index + 1)]", path: path)
            }
        case .variant(let key, let variants):
            let mapping = try Self.mapping(node, at: place, path: path)
            guard let chosen = mapping[key]?.string, let known = variants[chosen] else { return }
            try Self.check(mapping, known: known, at: place, path: path)
        }
    }

    private static func check(_ mapping: Node.Mapping, known: [String: ConfigSchema], at place: String, path: String) throws {
        for (key, value) in mapping {
            guard let name = key.string, let schema = known[name] else {
                let shown = key.string.map { TerminalText.escape($0.prefix(40)) } ?? "(not text)"
                throw ConfigFileError(
                    path: path,
                    "has an unknown setting \"\(Self.join(place, shown))\"; known there: \(known.keys.sorted().joined(separator: ", "))",
                    line: key.mark?.line
                )
            }
            try schema.check(value, at: Self.join(place, name), path: path)
        }
    }

    private static func mapping(_ node: Node, at place: String, path: String) throws -> Node.Mapping {
        guard case .mapping(let mapping) = node else {
            throw ConfigFileError(path: path, "\(Self.display(place)) must be a mapping of settings", line: node.mark?.line)
        }
        return mapping
    }

    private static func join(_ place: String, _ key: String) -> String {
        place.isEmpty ? key : place + "." + key
    }

    private static func display(_ place: String) -> String {
        place.isEmpty ? "the file" : place
    }
}

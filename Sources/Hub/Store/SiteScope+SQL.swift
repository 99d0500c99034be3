import Wire

extension SiteScope {
    /// The scope as SQLite `GLOB` patterns, one per pattern: `*` stays the wildcard, and
    /// GLOB's other specials (`?`, `[`) are matched literally by wrapping them in a set.
    /// (`LIKE` would not do: SQLite's is case-insensitive for ASCII, ``allows(_:)`` is not.)
    var sqliteGlobs: [String] {
        self.patterns.map { pattern in
            // By Unicode scalar, not Character: `?` followed by a combining mark is one
            // Character but still GLOB's wildcard to SQLite.
            var glob = ""
            for scalar in pattern.unicodeScalars {
                switch scalar {
                case "?": glob += "[?]"
                case "[": glob += "[[]"
                default: glob.unicodeScalars.append(scalar)
                }
            }
            return glob
        }
    }

    /// A SQLite condition on `site` keeping to the scope, with its arguments; nil when the
    /// scope allows every site.
    var sqliteCondition: (sql: String, arguments: [String])? {
        guard !self.allowsAnySite else { return nil }
        let globs = self.sqliteGlobs
        return (globs.isEmpty ? "0" : "(" + globs.map { _ in "site GLOB ?" }.joined(separator: " OR ") + ")", globs)
    }

    /// The scope as PostgreSQL `LIKE` patterns with `\` as the escape: `*` becomes `%`, and
    /// `%`, `_` and `\` are matched literally.
    var postgresLikePatterns: [String] {
        self.patterns.map { pattern in
            var like = ""
            for scalar in pattern.unicodeScalars {
                switch scalar {
                case "*": like += "%"
                case "%", "_", "\\": like += "\\" + String(scalar)
                default: like.unicodeScalars.append(scalar)
                }
            }
            return like
        }
    }
}

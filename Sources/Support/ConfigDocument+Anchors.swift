extension ConfigDocument {
    /// The line of the first anchor (`&name`) or alias (`*name`) in YAML `text`, found
    /// without parsing it.
    ///
    /// This runs before the parser because Yams checks every mapping for duplicate keys by
    /// hashing them as it composes: an alias used as a key (`? *bomb`) makes that hash walk
    /// the whole expansion, exponential in the file's size, before the tree could be
    /// looked at. A node may start with `&` or `*` only where a node can start: after the
    /// indentation, after the `-`, `?` and `:` indicators, and after `[`, `{` and `,` in
    /// flow collections. Quoted scalars, comments and block scalars (`|`, `>`) are skipped.
    /// Where the scan cannot tell, it errs towards refusing: a `[` or `{` inside a plain
    /// scalar opens a flow collection for it, and a byte-order mark (which libyaml skips at
    /// the start of any line) counts as white space. A tree walk after parsing refuses any
    /// anchor this scan does not see.
    static func firstAnchorLine(in text: String) -> Int? {
        var inDouble = false
        var inSingle = false
        var flowDepth = 0
        // Lines indented more than this belong to a block scalar.
        var blockScalarParent: Int?
        // The column of the last node (key, value or `-` entry) begun, which owns a block scalar.
        var nodeColumn = 0
        for (index, line) in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            let bytes = Array(line)
            let indentation = bytes.prefix { $0 == UInt8(ascii: " ") }.count
            if let parent = blockScalarParent {
                if indentation > parent || bytes.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") || $0 == UInt8(ascii: "\r") }) {
                    continue
                }
                blockScalarParent = nil
            }
            var tokenStart = !inDouble && !inSingle
            var afterSpace = true
            var column = inDouble || inSingle ? 0 : indentation
            func followedBySpace(_ at: Int) -> Bool {
                at + 1 >= bytes.count || [UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r")].contains(bytes[at + 1])
                    || (flowDepth > 0 && [UInt8(ascii: ","), UInt8(ascii: "]"), UInt8(ascii: "}")].contains(bytes[at + 1]))
            }
            scanning: while column < bytes.count {
                let byte = bytes[column]
                defer { column += 1 }
                if inDouble {
                    if byte == UInt8(ascii: "\\") {
                        column += 1
                    } else if byte == UInt8(ascii: "\"") {
                        inDouble = false
                    }
                    continue
                }
                if inSingle {
                    if byte == UInt8(ascii: "'") {
                        if column + 1 < bytes.count, bytes[column + 1] == UInt8(ascii: "'") { column += 1 } else { inSingle = false }
                    }
                    continue
                }
                if byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\r") {
                    afterSpace = true
                    continue
                }
                if byte == 0xEF, column + 2 < bytes.count, bytes[column + 1] == 0xBB, bytes[column + 2] == 0xBF {
                    column += 2
                    afterSpace = true
                    continue
                }
                defer { afterSpace = false }
                if byte == UInt8(ascii: "#"), afterSpace { break scanning }
                if tokenStart {
                    switch byte {
                    case UInt8(ascii: "&"), UInt8(ascii: "*"):
                        return index + 1
                    case UInt8(ascii: "\""):
                        inDouble = true
                        tokenStart = false
                        nodeColumn = column
                    case UInt8(ascii: "'"):
                        inSingle = true
                        tokenStart = false
                        nodeColumn = column
                    case UInt8(ascii: "-"), UInt8(ascii: "?"), UInt8(ascii: ":"):
                        if followedBySpace(column) {
                            if byte != UInt8(ascii: ":") { nodeColumn = column }
                        } else {
                            tokenStart = false
                            nodeColumn = column
                        }
                    case UInt8(ascii: "["), UInt8(ascii: "{"):
                        flowDepth += 1
                    case UInt8(ascii: "]"), UInt8(ascii: "}"):
                        flowDepth = max(0, flowDepth - 1)
                        tokenStart = false
                    case UInt8(ascii: ","):
                        break
                    case UInt8(ascii: "!"):
                        // A tag: the node itself follows it.
                        while column + 1 < bytes.count, bytes[column + 1] != UInt8(ascii: " ") { column += 1 }
                    case UInt8(ascii: "|"), UInt8(ascii: ">"):
                        guard flowDepth == 0 else {
                            tokenStart = false
                            break
                        }
                        blockScalarParent = nodeColumn
                        break scanning
                    case UInt8(ascii: "%") where column == 0:
                        break scanning
                    default:
                        // A plain scalar begins; `&` and `*` inside it are text.
                        tokenStart = false
                        nodeColumn = column
                    }
                } else {
                    switch byte {
                    case UInt8(ascii: ":") where followedBySpace(column):
                        tokenStart = true
                    case UInt8(ascii: ",") where flowDepth > 0:
                        tokenStart = true
                    case UInt8(ascii: "["), UInt8(ascii: "{"):
                        flowDepth += 1
                        tokenStart = true
                    case UInt8(ascii: "]"), UInt8(ascii: "}"):
                        flowDepth = max(0, flowDepth - 1)
                    default:
                        break
                    }
                }
            }
        }
        return nil
    }
}

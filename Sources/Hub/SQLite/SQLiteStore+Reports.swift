import Foundation
import GRDB
import Wire

extension SQLiteStore: ReportStore {
    /// The text of `column`, whole: from its `COLUMN_bytes` copy (`CAST(column AS BLOB)`)
    /// when the query selected one. Text stored before PROTOCOL.md §2.4 refused control
    /// characters may hold a NUL, where reading it as a C string would cut it short.
    static func text(_ row: Row, _ column: String) -> String {
        if let bytes = row[column + "_bytes"] as Data? { return String(decoding: bytes, as: UTF8.self) }
        return row[column] ?? ""
    }
}

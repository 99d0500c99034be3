/// Lines of aligned columns for the terminal: each column as wide as its widest cell, two
/// spaces between columns, the last one not padded. Cells must already be terminal-safe
/// (`TerminalText.escape` for anything stored or received).
func textTable(_ rows: [[String]]) -> [String] {
    var widths: [Int] = []
    for row in rows {
        for (index, cell) in row.enumerated() {
            if index == widths.count { widths.append(0) }
            widths[index] = max(widths[index], cell.count)
        }
    }
    return rows.map { row in
        row.enumerated().map { index, cell in
            index == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[index] - cell.count)
        }.joined(separator: "  ")
    }
}

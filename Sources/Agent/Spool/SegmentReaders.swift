/// Open segment readers for the length of one operation, by segment.
struct SegmentReaders {
    let folder: String
    /// Keep only the last segment's reader: for an operation that goes through the spool in
    /// segment order (the quarantine rewrite), so its memory is one window, not one per segment.
    let keepingOne: Bool
    private var open: [UInt64: SegmentReader] = [:]

    init(folder: String, keepingOne: Bool = false) {
        self.folder = folder
        self.keepingOne = keepingOne
    }

    /// The reader of `segment`, opened on first use.
    ///
    /// - Throws: ``SpoolError`` `io` when the file cannot be opened.
    mutating func reader(_ segment: UInt64) throws -> SegmentReader {
        if let reader = self.open[segment] { return reader }
        let reader = try SegmentReader(path: SpoolFiles.path(segment: segment, in: self.folder))
        if self.keepingOne { self.open.removeAll() }
        self.open[segment] = reader
        return reader
    }
}

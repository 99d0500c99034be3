import Foundation
import Hub
import Testing

/// The store holds customer ids and comments: its file, -wal and -shm are owner-only.
@Suite struct StoreFileModeTests {
    private func mode(_ path: String) -> Int? {
        var stats = stat()
        guard lstat(path, &stats) == 0 else { return nil }
        return Int(stats.st_mode & 0o7777)
    }

    @Test func aNewStoreAndItsWalAreOwnerOnly() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("store-mode-\(UUID())").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/feedback.sqlite"
        let store = try SQLiteStore(path: path)
        #expect(try store.recordCount() == 0)
        #expect(self.mode(path) == 0o600)
        #expect(self.mode(path + "-wal") == 0o600)
        #expect(self.mode(path + "-shm") == 0o600)
    }

    @Test func anExistingStoreOpenToOthersIsRestrictedWhenOpened() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("store-mode-\(UUID())").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/feedback.sqlite"
        do {
            let store = try SQLiteStore(path: path)
            _ = try store.recordCount()
        }
        for suffix in ["", "-wal", "-shm"] where FileManager.default.fileExists(atPath: path + suffix) {
            chmod(path + suffix, 0o644)
        }
        let store = try SQLiteStore(path: path)
        #expect(try store.recordCount() == 0)
        for suffix in ["", "-wal", "-shm"] {
            #expect(self.mode(path + suffix) == 0o600, "feedback.sqlite\(suffix)")
        }
    }

    @Test func aStoreBehindALinkIsRestrictedAndAPlantedWalLinkIsRefused() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("store-link-\(UUID())").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let real = folder + "/real.sqlite"
        do { _ = try SQLiteStore(path: real) }
        chmod(real, 0o644)
        let linked = folder + "/feedback.sqlite"
        try FileManager.default.createSymbolicLink(atPath: linked, withDestinationPath: real)
        _ = try SQLiteStore(path: linked)
        #expect(self.mode(real) == 0o600, "the file behind the link is restricted")

        // Someone plants feedback.sqlite-wal as a link to a file they can read.
        let planted = folder + "/planted.sqlite"
        let store = folder + "/other.sqlite"
        try FileManager.default.createSymbolicLink(atPath: store + "-wal", withDestinationPath: planted)
        #expect(throws: StoreError.self) { try SQLiteStore(path: store) }
        #expect(!FileManager.default.fileExists(atPath: planted), "SQLite never wrote through the link")
    }
}


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
}

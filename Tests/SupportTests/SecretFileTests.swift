import Foundation
import Testing

@testable import Support

/// Secret files: owner-only from the first open, whole or absent, never a stray copy.
@Suite struct SecretFileTests {
    private func folder() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("secret-\(UUID())").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    private func mode(_ path: String) -> Int? {
        var stats = stat()
        guard lstat(path, &stats) == 0 else { return nil }
        return Int(stats.st_mode & 0o7777)
    }

    @Test func theFileIsOwnerOnlyBeforeItsFirstByteAndNoCopyIsLeft() throws {
        let folder = try self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/key.pem"
        var seen: [(name: String, mode: Int?, size: Int?, targetExists: Bool)] = []
        try SecretFile.write(Array("-----BEGIN PRIVATE KEY-----".utf8), to: path, replacing: false) { temporary in
            let size = (try? FileManager.default.attributesOfItem(atPath: temporary)[.size] as? Int) ?? nil
            seen.append((temporary, self.mode(temporary), size, FileManager.default.fileExists(atPath: path)))
        }
        let created = try #require(seen.first)
        #expect(created.name.hasPrefix(folder + "/"), "the temporary file is in the target's folder, so the rename is atomic")
        #expect(created.mode == 0o600, "owner-only when created, before the content")
        #expect(created.size == 0)
        #expect(!created.targetExists)
        #expect(self.mode(path) == 0o600)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "-----BEGIN PRIVATE KEY-----")
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder) == ["key.pem"])
    }

    @Test func anExistingFileIsKeptUnlessReplacingIsAsked() throws {
        let folder = try self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/agent.json"
        try SecretFile.write(Data("first".utf8), to: path, replacing: false)
        #expect {
            try SecretFile.write(Data("second".utf8), to: path, replacing: false)
        } throws: { ($0 as? SecretFileError)?.code == .exists }
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "first")
        // An existing file with a wide mode is replaced by an owner-only one.
        chmod(path, 0o644)
        try SecretFile.write(Data("third".utf8), to: path, replacing: true)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "third")
        #expect(self.mode(path) == 0o600)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder) == ["agent.json"])
    }

    @Test func aFailureNamesTheFileAndLeavesNothing() throws {
        let folder = try self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        #expect {
            try SecretFile.write(Data("x".utf8), to: folder + "/missing/key.pem", replacing: true)
        } throws: { "\($0)".contains(folder + "/missing/key.pem") && ($0 as? SecretFileError)?.code == .io }
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder).isEmpty)
    }

    @Test func foldersAreMadeOwnerOnlyAndWideFilesCanBeRestricted() throws {
        let folder = try self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try SecretFile.createDirectory(folder + "/a/b")
        #expect(self.mode(folder + "/a") == 0o700)
        #expect(self.mode(folder + "/a/b") == 0o700)
        let path = folder + "/a/b/store.sqlite"
        #expect(FileManager.default.createFile(atPath: path, contents: Data()))
        chmod(path, 0o664)
        #expect(try SecretFile.restrict(path))
        #expect(self.mode(path) == 0o600)
        #expect(try !SecretFile.restrict(path), "already owner-only")
        #expect(try !SecretFile.restrict(folder + "/absent"))
    }

    @Test func aFolderForSecretsMustBeOwnAndWritableByNoOneElse() throws {
        let path = try self.folder()
        defer { try? FileManager.default.removeItem(atPath: path) }
        chmod(path, 0o755)
        try SecretFile.checkOwnFolder(path)
        try SecretFile.checkOwnFolder(path + "/missing")
        chmod(path, 0o775)
        #expect(throws: SecretFileError.self) { try SecretFile.checkOwnFolder(path) }
        #expect(throws: SecretFileError.self) { try SecretFile.checkOwnFolder("/tmp") }
    }
}


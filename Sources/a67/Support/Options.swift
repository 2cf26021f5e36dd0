import ArgumentParser
import ChunkStore
import Foundation
import Replicator

/// Options every repository command takes.
struct HomeOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The repository folder.", discussion: "Default: $A67_HOME, else ~/.a67."))
    var home: String?

    var path: String {
        if let home, !home.isEmpty { return absolute(home) }
        if let env = ProcessInfo.processInfo.environment["A67_HOME"], !env.isEmpty { return absolute(env) }
        return FileManager.default.homeDirectoryForCurrentUser.path + "/.a67"
    }

    /// Opens the repository with its keys (asks for the passphrase once the repository is found).
    func unlock() throws -> Repository {
        try Repository.open(home: path, passphrase: { try Passphrase.fromEnvironment() })
    }

    /// Opens the catalog only (no passphrase).
    func catalogOnly() throws -> Repository { try Repository.openCatalog(home: path) }
}

func absolute(_ path: String) -> String {
    if path.hasPrefix("/") { return path }
    if path == "~" { return FileManager.default.homeDirectoryForCurrentUser.path }
    if path.hasPrefix("~/") { return FileManager.default.homeDirectoryForCurrentUser.path + String(path.dropFirst()) }
    let joined = FileManager.default.currentDirectoryPath + "/" + path
    return URL(fileURLWithPath: joined).standardizedFileURL.path
}

/// `BUCKET/KEY` or `BUCKET[/PREFIX]`.
struct ObjectPath {
    let bucket: String
    let key: String

    init(_ text: String, keyRequired: Bool) throws {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        bucket = String(parts[0])
        key = parts.count > 1 ? String(parts[1]) : ""
        if bucket.isEmpty {
            throw StoreError(.invalidArgument, "\"\(text)\" names no bucket: write BUCKET/KEY, like photos/2026/a.jpg")
        }
        if keyRequired && key.isEmpty {
            throw StoreError(.invalidArgument, "\"\(text)\" names no key: write BUCKET/KEY, like photos/2026/a.jpg")
        }
    }
}

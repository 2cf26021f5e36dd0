import ArgumentParser
import ChunkStore
import Foundation
import RemoteBackends
import Replicator
import Controller

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
        try Repository.open(home: path, backends: backendFactory, catalogModules: catalogModules,
                            passphrase: { try Passphrase.fromEnvironment() })
    }

    /// Opens the catalog only (no passphrase).
    func catalogOnly() throws -> Repository { try Repository.openCatalog(home: path, catalogModules: catalogModules) }
}

/// How a67 builds providers' backends: every kind. The one place the CLI, the composition root, chooses.
let backendFactory: any BackendFactory = RemoteBackendFactory()

/// The modules that keep tables in the catalog beside ChunkStore's, migrated by every command that
/// opens it (the controller's and the SQL router's schemas go here, so that every command agrees).
let catalogModules: [CatalogSchema] = [ControllerSchema.schema]

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

/// Ends a command that changed the repository: records what it saw of each provider's health, then
/// snapshots the catalog onto the providers. The command exits only once the snapshot is there, so a
/// machine lost right after it loses nothing (a67 recover).
func commit(_ repository: Repository) async throws {
    repository.saveHealth()
    let report = try await repository.snapshotCatalog()
    if !report.behind.isEmpty {
        note("warning: the catalog snapshot did not reach \(report.behind.joined(separator: ", ")) (they keep an older one; the next change retries)")
    }
}

/// "90s", "15m", "2h", "7d" or plain seconds.
func parseDuration(_ text: String, option: String) throws -> Double {
    let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
    var number = Substring(text)
    var scale = 1.0
    if text.hasSuffix("ms") {
        number = text.dropLast(2)
        scale = 0.001
    } else if let last = text.last, let unit = units[last] {
        number = text.dropLast()
        scale = unit
    }
    guard let value = Double(number), value >= 0, value.isFinite else {
        throw StoreError(.invalidArgument, "\(option) \(text) is not a duration: write seconds, or a number with ms, s, m, h or d (like 500ms, 90s, 2h, 7d)")
    }
    return value * scale
}

import ArgumentParser
import ChunkStore
import Replicator

struct Init: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a new repository in $A67_HOME.",
        discussion: """
            Makes a random master key, wraps it under your passphrase (scrypt) and writes the keyring \
            and an empty catalog. Asks for the passphrase twice on a terminal. Then add providers \
            (a67 provider add) and buckets (a67 bucket create). Forgetting the passphrase loses the data. \
            Refuses where a repository or any catalog is: a catalog is never replaced.
            """)

    @OptionGroup var home: HomeOptions

    @Option(help: "zstd compression level for new chunks, 1 (fastest) to 19 (smallest).")
    var zstdLevel: Int = Zstd.defaultLevel

    @Flag(help: "Print the result as JSON.")
    var json = false

    func validate() throws {
        guard Zstd.levels.contains(zstdLevel) else {
            throw ValidationError("--zstd-level \(zstdLevel) is out of range: use 1 to 19")
        }
    }

    func run() async throws {
        try await guarded {
            var settings = Repository.Settings()
            settings.zstdLevel = zstdLevel
            let repository = try Repository.initialize(home: home.path, backends: backendFactory, catalogModules: catalogModules, passphrase: try Passphrase.fromEnvironment(confirm: true),
                                                       settings: settings)
            if json {
                printJSON(["home": repository.home, "repositoryId": repository.repositoryID])
            } else {
                show("created repository \(repository.repositoryID) in \(repository.home)")
                show("next: a67 provider add NAME --dir PATH, then a67 bucket create NAME")
            }
        }
    }
}

import ArgumentParser
import ChunkStore
import Foundation
import Orchestrator
import Replicator

struct Up: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the embedded default: a ready repository with a demo.",
        discussion: """
            Creates (or opens) the repository in $A67_HOME with three local directory providers \
            ($A67_HOME/providers/local-1..3) and a bucket "demo" with 2 replicas; puts a 12 MiB demo \
            object, reads it back, checks it is identical and prints a67 stat. Safe to run again.
            """)

    @OptionGroup var home: HomeOptions

    @Flag(help: "Print the result as JSON.")
    var json = false

    func run() async throws {
        try await guarded {
            let path = home.path
            let isNew = !FileManager.default.fileExists(atPath: path + "/" + Repository.keyringFile)
            let passphrase = try Passphrase.fromEnvironment(confirm: isNew)
            let (repository, report) = try await EmbeddedDefault(home: path, backends: backendFactory, catalogModules: catalogModules).run(passphrase: passphrase)
            guard report.roundTripIdentical else {
                throw StoreError(.integrity, "the demo object did not read back identical")
            }
            let stat = try StatReport(repository)
            if json {
                printJSON(["home": path, "created": report.created, "providersAdded": report.providersAdded,
                           "demo": ["bucket": EmbeddedDefault.demoBucket, "key": EmbeddedDefault.demoKey,
                                    "bytes": report.demoBytes, "identical": true,
                                    "putSeconds": report.putSeconds, "getSeconds": report.getSeconds] as [String: Any],
                           "stat": stat.json])
                return
            }
            show(report.created ? "created repository in \(path)" : "opened repository in \(path)")
            for name in report.providersAdded { show("added provider \(name): directory \(path)/providers/\(name)") }
            show("put \(EmbeddedDefault.demoBucket)/\(EmbeddedDefault.demoKey) (\(ByteSize.format(report.demoBytes))) in "
                + String(format: "%.2f s, read it back in %.2f s: identical", report.putSeconds, report.getSeconds))
            show("")
            stat.printHuman()
        }
    }
}

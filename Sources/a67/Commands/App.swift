import ArgumentParser
import ChunkStore
import Compute
import Controller
import CurlTransport
import Foundation
import Orchestrator
import Replicator
import S3Protocol

struct AppCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "app",
        abstract: "Deploy and run your apps on your nodes.",
        discussion: """
            An app is a folder with an a67app.toml (its name, command, instances, health check, \
            resources, update policy). a67 app deploy ./myapp stores the folder as a bundle in the store \
            (chunked, encrypted, replicated, deduplicated: a new version uploads only what changed) and \
            the controller inside a67 serve places its instances on your nodes. Its traffic reaches it \
            through a67 serve: Host NAME.apps.local, or the path /apps/NAME/.
            """,
        subcommands: [Deploy.self, Ls.self, Status.self, Logs.self, Scale.self, Rollback.self, Stop.self, Start.self, Rm.self])

    struct Deploy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Store a folder as a new version of its app and deploy it.",
            discussion: """
                Reads FOLDER/a67app.toml, packs the folder (a deterministic tar; .a67ignore honoured) into \
                the store, records it as the app's next version and starts a rolling update to it. Waits \
                until the first instance of the new version is healthy and prints how long that took \
                (--detach returns at once). A version whose instances do not become healthy by the \
                update policy's healthy_deadline is rolled back on its own when auto_revert is set.
                With --controller URL it runs from any machine: the bundle (at most 256 MiB) is sent to \
                the controller, which stores it the same way.
                """)

        @OptionGroup var home: HomeOptions

        @Argument(help: "The app's folder (it holds a67app.toml).")
        var folder: String

        @Flag(help: "Return once the version is stored and the deployment started.")
        var detach = false

        @Option(help: "How long to wait for a healthy instance: seconds, or a number with s or m.")
        var wait: String = "120s"

        @OptionGroup var remote: RemoteOptions

        @Flag(help: "Print the result as JSON.")
        var json = false

        /// What a deploy stored: the version, and the bundle's size, chunks and new chunks.
        struct Stored {
            var version: Int
            var bytes: Int64
            var chunks: Int
            var newChunks: Int
        }

        func run() async throws {
            try await guarded {
                let waitSeconds = try parseDuration(wait, option: "--wait")
                let started = ContinuousClock.now
                let prepared = try AppBundles.prepare(folder: absolute(folder))
                let manifest = prepared.manifest
                let stored: Stored
                let status: () async throws -> AppStatus
                if let remote = try remote.remote(home: home) {
                    stored = try await send(prepared, to: remote)
                    status = { try await remote.get("apps/\(manifest.name)", as: AppStatus.self) }
                } else {
                    let repository = try home.unlock()
                    let put = try await AppBundles.store(prepared.stream(), manifest: manifest, sha256: prepared.sha256, repository: repository)
                    let store = ControllerStore(catalog: repository.catalog)
                    _ = try store.deploy(app: manifest.name, version: put.version, now: Catalog.now())
                    try await commit(repository)
                    stored = Stored(version: put.version, bytes: put.put.size, chunks: put.put.chunks, newChunks: put.put.newChunks)
                    status = { try store.status(app: manifest.name) }
                }
                let version = stored.version
                let storedAfter = ContinuousClock.now - started
                if !json {
                    show("\(manifest.name) v\(version): bundle of \(ByteSize.format(stored.bytes)) in \(stored.chunks) chunk(s), "
                        + "\(stored.newChunks) new; deploying")
                }
                var healthyAfter: Duration?
                var outcome = "started"
                if !detach {
                    (healthyAfter, outcome) = try await follow(status, app: manifest.name, version: version, seconds: waitSeconds, from: started)
                }
                if json {
                    var result: [String: Any] = ["app": manifest.name, "version": version, "bundleSHA256": Hex.encode(prepared.sha256),
                                                 "bytes": stored.bytes, "chunks": stored.chunks, "newChunks": stored.newChunks,
                                                 "storedSeconds": storedAfter.seconds, "deployment": outcome]
                    if let healthyAfter { result["healthySeconds"] = healthyAfter.seconds }
                    printJSON(result)
                }
                if outcome == "failed" || outcome == "reverted" {
                    throw ExitCode(ExitStatus.failure.rawValue)
                }
            }
        }

        /// Sends the bundle to the controller at `remote`, which stores it and deploys it. The archive
        /// goes whole (at most 256 MiB), with the pieces the store cuts it into.
        func send(_ prepared: AppBundles.Prepared, to remote: ControllerRemote) async throws -> Stored {
            let limit = 256 << 20
            let stream = prepared.stream()
            var bytes: [UInt8] = []
            var pieces: [Int] = []
            while let piece = try stream.nextPiece() {
                bytes += piece
                pieces.append(piece.count)
                guard bytes.count <= limit else {
                    throw StoreError(.invalidArgument, "\(folder) makes a bundle over the \(limit >> 20) MiB a deploy may send to a controller; "
                        + "deploy it on the controller's machine, or leave big files out with .a67ignore")
                }
            }
            let answer = try await remote.post("apps/\(prepared.manifest.name)/deploy", body: bytes, extra: [
                ("x-a67-manifest", Data(prepared.manifestText.utf8).base64EncodedString()),
                ("x-a67-pieces", pieces.map(String.init).joined(separator: ",")),
            ])
            guard let version = answer["version"] else { throw StoreError(.providerFailure, "the controller did not say which version it stored") }
            return Stored(version: version, bytes: Int64(answer["bytes"] ?? bytes.count), chunks: answer["chunks"] ?? pieces.count,
                          newChunks: answer["newChunks"] ?? 0)
        }

        /// Prints each instance's progress until the first instance of `version` is healthy and the
        /// deployment ends (or `seconds` pass): when the first was healthy, and how it ended.
        func follow(_ currentStatus: () async throws -> AppStatus, app: String, version: Int, seconds: Double,
                    from started: ContinuousClock.Instant) async throws -> (Duration?, String) {
            let deadline = started + .milliseconds(Int64(seconds * 1000))
            var said: [String: String] = [:]
            var firstHealthy: Duration?
            while ContinuousClock.now < deadline {
                let status = try await currentStatus()
                for instance in status.instances where instance.version == version {
                    let line = instance.healthy ? "healthy" : instance.state + (instance.message.map { ": \($0)" } ?? "")
                    if said[instance.id] != line, !json {
                        show("  \(instance.id) on \(instance.node): \(line)")
                    }
                    said[instance.id] = line
                }
                if firstHealthy == nil, status.instances.contains(where: { $0.version == version && $0.healthy }) {
                    firstHealthy = ContinuousClock.now - started
                    if !json { show("first healthy instance after \(String(format: "%.1f", firstHealthy!.seconds)) s") }
                }
                if let problem = status.placementProblem, said["placement"] != problem {
                    if !json { show("  not placed: \(problem)") }
                    said["placement"] = problem
                }
                if let deployment = status.deployment, deployment.version == version, deployment.state.rawValue != "running" {
                    let state = deployment.state.rawValue
                    if !json {
                        show("deployment \(state)" + (deployment.message.map { ": \($0)" } ?? ""))
                    }
                    return (firstHealthy, state)
                }
                try await Task.sleep(for: .milliseconds(200))
            }
            throw StoreError(.conflict, "\(app) v\(version) is stored and deploying, but did not finish within \(wait) "
                + "(is a67 serve running with its controller, and has a node joined? a67 app status \(app))")
        }
    }

    struct Ls: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the apps: version, deployment, healthy instances of desired.")

        @OptionGroup var home: HomeOptions
        @OptionGroup var remote: RemoteOptions

        @Flag(help: "Print the result as JSON.")
        var json = false

        func run() async throws {
            try await guarded {
                let apps = try await remote.remote(home: home)?.get("apps", as: [AppSummary].self)
                    ?? ControllerStore(catalog: try home.catalogOnly().catalog).appSummaries()
                if json { return printCodable(apps) }
                if apps.isEmpty { return show("no apps yet: a67 app deploy ./myapp (a folder with an a67app.toml)") }
                printTable(["NAME", "VERSION", "DEPLOYMENT", "HEALTHY"], apps.map { app in
                    [app.name, app.version.map { "v\($0)" } ?? "-", app.deployment ?? "-",
                     app.stopped ? "stopped" : "\(app.healthyInstances)/\(app.desiredInstances)"]
                })
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an app: its versions, deployment, instances, and why any could not be placed.")

        @OptionGroup var home: HomeOptions

        @OptionGroup var remote: RemoteOptions

        @Argument(help: "The app's name.")
        var name: String

        @Flag(help: "Print the result as JSON.")
        var json = false

        func run() async throws {
            try await guarded {
                let status = try await remote.remote(home: home)?.get("apps/\(name)", as: AppStatus.self)
                    ?? ControllerStore(catalog: try home.catalogOnly().catalog).status(app: name)
                if json { return printCodable(status) }
                show("\(status.name): " + (status.stopped ? "stopped" : "\(status.healthyInstances) of \(status.desiredInstances) healthy")
                    + (status.desiredVersion.map { ", version \($0)" } ?? ""))
                if let deployment = status.deployment {
                    show("deployment of v\(deployment.version): \(deployment.state.rawValue)" + (deployment.message.map { " (\($0))" } ?? ""))
                }
                if let problem = status.placementProblem { show("not placed: \(problem)") }
                if !status.instances.isEmpty {
                    printTable(["INSTANCE", "VERSION", "NODE", "STATE", "HEALTHY", "PORT", "RESTARTS", "MESSAGE"], status.instances.map { i in
                        [i.id, "v\(i.version)", i.node, i.state + (i.desired == "run" ? "" : " (\(i.desired))"), i.healthy ? "yes" : "no",
                         i.port.map(String.init) ?? "-", String(i.restarts), i.message ?? ""]
                    })
                }
                show("versions: " + status.versions.map { "v\($0.number) \($0.state)" }.joined(separator: ", "))
            }
        }
    }

    struct Scale: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run COUNT instances of an app.")

        @OptionGroup var home: HomeOptions
        @Argument(help: "The app's name.") var name: String
        @Argument(help: "How many instances, 0 to 100.") var count: Int
        @OptionGroup var remote: RemoteOptions

        func run() async throws {
            try await guarded {
                if let remote = try remote.remote(home: home) {
                    try await remote.post("apps/\(name)/scale", query: [("instances", String(count))])
                } else {
                    try ControllerStore(catalog: try home.catalogOnly().catalog).scale(app: name, instances: count, now: Catalog.now())
                }
                show("\(name): scaling to \(count) instance(s)")
            }
        }
    }

    struct Rollback: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Deploy an earlier version again (default: the last one that ran healthy).")

        @OptionGroup var home: HomeOptions
        @Argument(help: "The app's name.") var name: String
        @Option(help: "The version to go back to.") var to: Int?
        @OptionGroup var remote: RemoteOptions

        func run() async throws {
            try await guarded {
                let version: Int
                if let remote = try remote.remote(home: home) {
                    version = try await remote.post("apps/\(name)/rollback", query: to.map { [("to", String($0))] } ?? [])["version"] ?? to ?? 0
                } else {
                    version = try ControllerStore(catalog: try home.catalogOnly().catalog).rollback(app: name, to: to, now: Catalog.now()).version
                }
                show("\(name): rolling back to v\(version)")
            }
        }
    }

    struct Stop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop every instance of an app (its versions stay; a67 app start runs it again).")

        @OptionGroup var home: HomeOptions
        @Argument(help: "The app's name.") var name: String

        @OptionGroup var remote: RemoteOptions

        func run() async throws {
            try await guarded {
                if let remote = try remote.remote(home: home) {
                    try await remote.post("apps/\(name)/stop")
                } else {
                    try ControllerStore(catalog: try home.catalogOnly().catalog).stop(app: name, now: Catalog.now())
                }
                show("\(name): stopping")
            }
        }
    }

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Start a stopped app again.")

        @OptionGroup var home: HomeOptions
        @Argument(help: "The app's name.") var name: String

        @OptionGroup var remote: RemoteOptions

        func run() async throws {
            try await guarded {
                if let remote = try remote.remote(home: home) {
                    try await remote.post("apps/\(name)/start")
                } else {
                    try ControllerStore(catalog: try home.catalogOnly().catalog).start(app: name, now: Catalog.now())
                }
                show("\(name): starting")
            }
        }
    }

    struct Rm: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop an app and remove it with all its versions and bundles.")

        @OptionGroup var home: HomeOptions
        @Argument(help: "The app's name.") var name: String

        @OptionGroup var remote: RemoteOptions

        func run() async throws {
            try await guarded {
                let bundles: Int, removed: Bool
                if let remote = try remote.remote(home: home) {
                    let answer = try await remote.post("apps/\(name)", verb: "DELETE")
                    (bundles, removed) = (answer["bundles"] ?? 0, answer["removed"] == 1)
                } else {
                    let repository = try home.unlock()
                    (bundles, removed) = try await AppBundles.remove(app: name, repository: repository)
                    try await commit(repository)
                }
                show(removed ? "removed \(name) and \(bundles) bundle(s)"
                     : "removing \(name): its instances are stopping, and the controller removes it once they have; \(bundles) bundle(s) removed")
            }
        }
    }

    struct Logs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print an app's log, fetched from the node that runs it.",
            discussion: """
                Asks the controller (a67 serve on this machine at 127.0.0.1:7067, or --controller) for \
                the last --tail lines of an instance's log (default: the app's first instance); -f keeps \
                printing new lines. Signed with an admin's access key: A67_ACCESS_KEY_ID and \
                A67_SECRET_ACCESS_KEY, or one from this machine's repository.
                """)

        @OptionGroup var home: HomeOptions
        @Argument(help: "The app's name.") var name: String
        @Option(help: "The instance (its ID, as a67 app status lists them).") var instance: String?
        @Option(help: "How many lines.") var tail: Int = 100
        @Flag(name: .shortAndLong, help: "Keep printing new lines until interrupted.") var follow = false
        @OptionGroup var remote: RemoteOptions

        func run() async throws {
            try await guarded {
                let controller: ControllerRemote
                let status: AppStatus
                if let remote = try remote.remote(home: home) {
                    controller = remote
                    status = try await remote.get("apps/\(name)", as: AppStatus.self)
                } else {
                    let repository = try home.unlock()
                    controller = try ControllerRemote("http://127.0.0.1:7067", signer: try ControllerRemote.signer(repository))
                    status = try ControllerStore(catalog: repository.catalog).status(app: name)
                }
                guard let target = instance ?? status.instances.first(where: { $0.desired == "run" })?.id ?? status.instances.first?.id else {
                    throw StoreError(.notFound, "\(name) has no instances to read a log from")
                }
                var printed: [String] = []
                repeat {
                    let text = String(decoding: try await controller.call("GET", "apps/\(name)/logs",
                                                                         query: [("instance", target), ("tail", String(tail))]), as: UTF8.self)
                    let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
                    // Print what follows the last line already printed (follow mode asks again each second).
                    var start = 0
                    if let last = printed.last, let index = lines.lastIndex(of: last) { start = index + 1 }
                    for line in lines[start...] where !(line.isEmpty && line == lines.last) { print(terminalSafe(line)) }
                    printed = lines.filter { !$0.isEmpty }
                    if follow { try await Task.sleep(for: .seconds(1)) }
                } while follow
            }
        }
    }
}

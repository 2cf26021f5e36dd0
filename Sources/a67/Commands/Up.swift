import ArgumentParser
import ChunkStore
import Foundation
import Controller
import Orchestrator
import Replicator
import ServiceLifecycle

struct Up: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the embedded default: a ready repository with a demo.",
        discussion: """
            Creates (or opens) the repository in $A67_HOME with three local directory providers \
            ($A67_HOME/providers/local-1..3) and a bucket "demo" with 2 replicas; puts a 12 MiB demo \
            object, reads it back, checks it is identical and prints a67 stat. Safe to run again.
            With --serve it then keeps running as a live system on this machine: a67 serve (the S3 API, \
            the controller and the app proxy) on --listen, this machine as the first node (an agent in the \
            same process, data in $A67_HOME/node), and a demo app "hello" (a small Python page, its folder \
            in $A67_HOME/demo-app) deployed from a bundle in the store and reached through the proxy at \
            /apps/hello/. Ctrl-C stops it all: the server, the agent and the app's instances.
            """)

    @OptionGroup var home: HomeOptions

    @Flag(help: "Then keep running: a67 serve with its controller, this machine as a node, and a demo app.")
    var serve = false

    @Option(help: "With --serve: HOST:PORT to listen on.")
    var listen = "127.0.0.1:7067"

    @Flag(help: "Print the result as JSON (with --serve, one more line once it listens).")
    var json = false

    func run() async throws {
        var opened: Repository?
        try await guarded {
            let path = home.path
            let isNew = !FileManager.default.fileExists(atPath: path + "/" + Repository.keyringFile)
            let passphrase = try Passphrase.fromEnvironment(confirm: isNew)
            let (repository, report) = try await EmbeddedDefault(home: path, backends: backendFactory, catalogModules: catalogModules).run(passphrase: passphrase)
            guard report.roundTripIdentical else {
                throw StoreError(.integrity, "the demo object did not read back identical")
            }
            opened = repository
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
            if !serve {
                show("")
                show("next: a67 up --serve keeps it running as a live system: the S3 API, the controller, this machine as a node, a demo app")
            }
        }
        if serve, let opened { try await guarded { try await runLive(opened) } }
    }

    /// --serve: the server with its controller, the local node and the demo app, until Ctrl-C.
    func runLive(_ repository: Repository) async throws {
        let path = home.path
        let server = try Serve.parse(["--listen", listen, "--home", path])
        var demo = false
        if !DemoApp.runtimeInstalled() {
            note("python3 is not installed, so no demo app (apt-get install python3, then run a67 up --serve again)")
        } else {
            demo = true
            if let version = try await DemoApp.deployIfNew(home: path, repository: repository), !json {
                show("stored the demo app \(DemoApp.name) (\(DemoApp.folder(home: path))) as v\(version) and deployed it")
            }
        }
        let (nodeAddress, announcerAddress) = (LocalNode.Address(), LocalNode.Address())
        let node = LocalNode(home: path, catalog: repository.catalog, address: nodeAddress)
        let announcer = DemoAnnouncer(catalog: repository.catalog, address: announcerAddress, demo: demo, json: json)
        try await server.serve(repository, clients: [announcer, node]) { bound, scheme in
            let url = "\(scheme)://\(LocalNode.reachable(bound))"
            nodeAddress.set(url)
            announcerAddress.set(url)
        }
        note("a67 up --serve: stopped")
    }
}

/// Says where everything is once the server listens, and when the demo app is first healthy.
struct DemoAnnouncer: Service {
    let catalog: Catalog
    let address: LocalNode.Address
    let demo: Bool
    let json: Bool

    func run() async throws {
        guard let base = await address.get() else { return }
        let app = base + "/apps/\(DemoApp.name)/"
        if json {
            var ready: [String: Any] = ["listening": base, "node": LocalNode.name]
            if demo { ready["app"] = app }
            printJSON(ready)
        } else {
            show("")
            show("a67 up --serve: running on this machine (Ctrl-C stops it all)")
            show("  S3 API, control API  \(base)   (a key: a67 user add NAME, a67 key create NAME)")
            show("  controller           a67 node ls, a67 app ls, a67 app status \(DemoApp.name)")
            if demo { show("  demo app             \(app)   (or Host: \(DemoApp.name).apps.local)") }
            show("  add a VM             a67 node token create, then a67 agent join on the VM (README, Run your apps)")
        }
        flushOutput()
        if demo, !json {
            let started = ContinuousClock.now
            let store = ControllerStore(catalog: catalog)
            try? await cancelWhenGracefulShutdown {
                while ContinuousClock.now - started < .seconds(60) {
                    if let status = try? store.status(app: DemoApp.name), status.instances.contains(where: \.healthy) {
                        show("  \(DemoApp.name) is up (healthy after \(String(format: "%.1f", (ContinuousClock.now - started).seconds)) s): curl \(app)")
                        flushOutput()
                        return
                    }
                    try await Task.sleep(for: .milliseconds(250))
                }
                note("the demo app is not healthy after 60 s: a67 app status \(DemoApp.name) says why")
            }
        }
        try? await gracefulShutdown()
    }
}

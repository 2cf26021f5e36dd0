import ArgumentParser
import ChunkStore
import Foundation
import Replicator
import Server
import ServiceLifecycle

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the repository over HTTP(S): an S3-compatible API, a JSON control API, metrics, the controller and app proxy.",
        discussion: """
            S3 clients (aws, boto3, rclone, s3cmd) use the address as their endpoint, with path-style \
            addressing and an access key from a67 key create. Buckets and objects are the same ones a67 ls \
            and a67 get see. Also served, under /_a67/ (a prefix no bucket name can take): \
            /_a67/api/v1/health (no signature), /_a67/api/v1/buckets, usage, users and providers (signed like \
            S3 requests), and /_a67/metrics (Prometheus).
            In the background it repairs (every 10 minutes), collects garbage (daily) and, when asked, \
            scrubs; each pass is logged and counted in the metrics (a67_maintenance_passes_total).
            It is also the controller of your nodes (a67 node, a67 agent, a67 app) and forwards app traffic: \
            Host NAME.apps.local (--apps-domain) or /apps/NAME/ reach app NAME's healthy instances. \
            --tls-cert and --tls-key make it HTTPS only.
            SIGTERM or Ctrl-C stops it: requests in flight finish, a maintenance pass running stops where \
            it is (each is safe to stop anywhere), then the catalog is snapshotted.
            Example:
              a67 user add alice && a67 key create alice
              a67 serve --listen 127.0.0.1:7067
              aws --endpoint-url http://127.0.0.1:7067 s3 mb s3://photos
            """)

    @OptionGroup var home: HomeOptions

    @Option(help: "HOST:PORT to listen on.")
    var listen = "127.0.0.1:7067"

    @Option(help: "Requests per second each access key may make (0: no limit); more get 503 SlowDown.")
    var rateLimit: Double = 500

    @Option(help: "Requests a key may make at once above its rate (default: twice --rate-limit).")
    var burst: Double?

    @Option(help: "Seconds between catalog snapshots while objects change.")
    var snapshotInterval: Double = 60

    @Option(help: "Connections held at once; more are closed as they are accepted.")
    var maxConnections = 1024

    @Option(help: "Connections held at once from one client address; more from it are closed as they are accepted.")
    var maxConnectionsPerClient = 128

    @Option(help: "Seconds a connection may stay idle (no request, or a request body that stopped) before it is closed.")
    var idleTimeout: Double = 30

    @Option(help: "Seconds from a request's first byte until its request line and headers must be whole; slower ones are closed.")
    var requestHeadTimeout: Double = 10

    @Option(help: ArgumentHelp("Run a repair pass this often (like 10m, 1h; off: never).", valueName: "duration"))
    var repairEvery = "10m"

    @Option(help: ArgumentHelp("Run a scrub pass this often (like 7d; off: never). Scrub reads every replica, which a metered provider counts as egress.",
                               valueName: "duration"))
    var scrubEvery = "off"

    @Option(help: ArgumentHelp("Scrub reads at most this many MB per second.", valueName: "MB/s"))
    var scrubRate: Double?

    @Option(help: ArgumentHelp("Run garbage collection this often (like 1d; off: never).", valueName: "duration"))
    var gcEvery = "1d"

    @Option(help: ArgumentHelp("gc keeps unreferenced chunks younger than this (like 1h; see a67 gc --help).", valueName: "duration"))
    var gcGrace = "1h"

    @Option(help: ArgumentHelp("Serve HTTPS with this certificate (PEM; a chain: the server's first). Needs --tls-key.", valueName: "file"))
    var tlsCert: String?

    @Option(help: ArgumentHelp("The private key of --tls-cert (PEM).", valueName: "file"))
    var tlsKey: String?

    @Flag(help: "Run without the controller: no nodes, no apps, no app proxy.")
    var noController = false

    @Option(help: ArgumentHelp("How often node agents report; a node silent for three of these is marked down.", valueName: "duration"))
    var nodeHeartbeat = "5s"

    @Option(help: ArgumentHelp("Apps are reached here as NAME.DOMAIN (the Host header), besides the path /apps/NAME/.", valueName: "domain"))
    var appsDomain = "apps.local"

    /// The node heartbeat the options ask for.
    func heartbeat() throws -> Duration {
        let seconds = try parseDuration(nodeHeartbeat, option: "--node-heartbeat")
        guard seconds >= 0.1 else { throw StoreError(.invalidArgument, "--node-heartbeat \(nodeHeartbeat) is too often: use 100ms or more") }
        return .milliseconds(Int64(seconds * 1000))
    }

    /// The maintenance the options ask for.
    func maintenance() throws -> MaintenanceSchedule {
        func every(_ text: String, _ option: String) throws -> Duration? {
            if text == "off" { return nil }
            let seconds = try parseDuration(text, option: option)
            guard seconds >= 1 else { throw StoreError(.invalidArgument, "\(option) \(text) is too often: use 1s or more, or off") }
            return .seconds(seconds)
        }
        var schedule = MaintenanceSchedule()
        schedule.repair = try every(repairEvery, "--repair-every")
        schedule.scrub = try every(scrubEvery, "--scrub-every")
        schedule.gc = try every(gcEvery, "--gc-every")
        schedule.gcGrace = try parseDuration(gcGrace, option: "--gc-grace")
        if let scrubRate {
            guard scrubRate > 0 else { throw StoreError(.invalidArgument, "--scrub-rate must be more than 0 MB/s") }
            schedule.scrubRate = scrubRate * 1e6
        }
        return schedule
    }

    func validate() throws {
        guard parseListen() != nil else { throw ValidationError("--listen \(listen) is not HOST:PORT (like 127.0.0.1:7067)") }
        guard rateLimit >= 0 else { throw ValidationError("--rate-limit must be 0 or more") }
        guard snapshotInterval >= 1 else { throw ValidationError("--snapshot-interval must be at least 1 second") }
        guard maxConnections >= 1 else { throw ValidationError("--max-connections must be at least 1") }
        guard maxConnectionsPerClient >= 1 else { throw ValidationError("--max-connections-per-client must be at least 1") }
        guard idleTimeout > 0, requestHeadTimeout > 0 else {
            throw ValidationError("--idle-timeout and --request-head-timeout must be more than 0 seconds")
        }
        guard (tlsCert == nil) == (tlsKey == nil) else {
            throw ValidationError("--tls-cert and --tls-key go together: give both (HTTPS) or neither (HTTP)")
        }
        do {
            _ = try maintenance()
            _ = try heartbeat()
        } catch let error as StoreError { throw ValidationError(error.message) }
    }

    func parseListen() -> (String, Int)? {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (0...65535).contains(port)
        else { return nil }
        let host = String(listen[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        return host.isEmpty ? nil : (host, port)
    }

    func run() async throws {
        try await guarded {
            let repository = try home.unlock()
            try await serve(repository) { address, scheme in
                note("a67 serve: listening on \(scheme)://\(address) (S3 at /, control API at /_a67/api/v1, metrics at /_a67/metrics)")
            }
            note("a67 serve: stopped")
        }
    }

    /// Serves `repository` as the options say until SIGTERM or SIGINT (a67 serve, and a67 up --serve
    /// with its local node in `clients`: stopped before the server). `ready` is told the address bound
    /// and the scheme (http or https).
    func serve(_ repository: Repository, clients: [any Service] = [],
               ready: @escaping @Sendable (_ address: String, _ scheme: String) -> Void) async throws {
        _ = try repository.pool()
        var settings = BlobServer.Settings()
        (settings.host, settings.port) = parseListen()!
        settings.rateLimit = rateLimit
        settings.burst = burst ?? max(1, rateLimit * 2)
        settings.snapshotInterval = snapshotInterval
        settings.connections.maxConnections = maxConnections
        settings.connections.maxPerClient = maxConnectionsPerClient
        settings.connections.idleTimeout = .seconds(idleTimeout)
        settings.connections.requestHeadTimeout = .seconds(requestHeadTimeout)
        if let tlsCert, let tlsKey { settings.tls = TLSFiles(certificate: absolute(tlsCert), key: absolute(tlsKey)) }
        try ControllerPin.record(certificate: settings.tls?.certificate, home: home.path)
        let server = BlobServer(repository: repository, settings: settings)
        if try repository.catalog.accounts.users().isEmpty {
            note("warning: no users yet: S3 clients need a key (a67 user add NAME, then a67 key create NAME)")
        }
        // The composition root: the modules that add routes under /_a67, and the background services.
        var modules: [any HTTPModule] = [ControlAPI(server: server), MetricsPage(server: server)]
        var services = server.maintenanceServices(try maintenance())
        var fronts: [any HTTPFront] = []
        if !noController {
            let compute = ComputeServices(server: server, repository: repository, heartbeat: try heartbeat(), appsDomain: appsDomain,
                                          tls: settings.tls != nil)
            modules += compute.modules
            fronts += compute.fronts
            services += compute.services
        }
        let scheme = settings.tls == nil ? "http" : "https"
        try await server.run(modules: modules, fronts: fronts, services: services, clients: clients) { address in ready(address, scheme) }
    }
}

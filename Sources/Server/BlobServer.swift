import ChunkStore
import Foundation
import Hummingbird
import HummingbirdTLS
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes
import Replicator
import ServiceLifecycle
import Synchronization

/// `a67 serve`: one process holding the repository open, serving the S3 API at the root and the
/// `HTTPModule`s it is given (the JSON control API under /_a67/api/v1, Prometheus metrics at
/// /_a67/metrics) under /_a67 (see `router(modules:)`). Changes are
/// snapshotted (see FORMAT.md, "Catalog snapshots") at most every `snapshotInterval` seconds and once more at shutdown.
public final class BlobServer: Sendable {
    public struct Settings: Sendable {
        public var host = "127.0.0.1"
        public var port = 7067
        /// Requests per second each access key may make, and the burst it may save up.
        public var rateLimit: Double = 500
        public var burst: Double = 1000
        /// Seconds between catalog snapshots while objects change.
        public var snapshotInterval: Double = 60
        /// The region the server answers as (any region in a signature is accepted).
        public var region = "us-east-1"
        /// Chunks in flight per upload (5 MiB each).
        public var window = 4
        /// How many connections are held, and for how long.
        public var connections = ConnectionLimits()
        /// HTTPS with this certificate and key; nil: plain HTTP.
        public var tls: TLSFiles?
        public init() {}
    }

    public let repository: Repository
    let settings: Settings
    let verifier: SigV4Verifier
    let limiter: RateLimiter
    let metrics = ServerMetrics()
    let startedAt = Date()
    private let dirty = Atomic<Bool>(false)
    var region: String { settings.region }
    var window: Int { settings.window }

    public init(repository: Repository, settings: Settings) {
        self.repository = repository
        self.settings = settings
        verifier = SigV4Verifier(repository: repository)
        limiter = RateLimiter(rate: settings.rateLimit, burst: settings.burst)
    }

    /// Who signed the request (SigV4, S3's way, for the S3 and the control API alike) and how to check
    /// its body; 503 SlowDown once the key has used up its rate.
    func authenticate(_ request: Request, path: S3Path) throws -> (Principal, PayloadCheck) {
        let signed = SignedRequest(method: request.method.rawValue, rawPath: path.raw, query: path.query, headers: request.headers,
                                   host: request.head.authority ?? "")
        let (principal, payload) = try verifier.authenticate(signed)
        guard limiter.allow(principal.keyID) else {
            throw S3Error(.serviceUnavailable, "SlowDown",
                          "Please reduce your request rate: this key may make \(Int(limiter.rate)) requests per second")
        }
        return (principal, payload)
    }

    /// Notes that the catalog changed: the next snapshot round stores it (and the last one, when serve
    /// stops). Modules and services that change the catalog themselves (the controller's joins and
    /// placements) call it, so that `a67 recover` finds what they recorded.
    public func changed() { dirty.store(true, ordering: .relaxed) }

    /// Where the server's own pages live: a prefix no bucket can take (bucket names have no '_',
    /// `Names.validateBucket`), so every path a bucket can take reaches S3.
    public static let pagesPrefix = "/_a67"

    /// The server's log ("a67 serve: ..." on the terminal, as the CLI's log handler writes it).
    static let logger = Logger(label: "a67.serve")

    /// The answer for a path under `/_a67` that no module takes.
    static let nothingServed = S3Error(.notFound, "NotFound", "Nothing is served here: \(pagesPrefix) has metrics and api/v1")

    /// The routes: `modules` under `/_a67` (`HTTPModule`), 404 for the rest of `/_a67`, and S3 at
    /// every other path; every route behind the request accounting. `fronts` (`HTTPFront`) see each
    /// request first and answer those they take (a front's middleware wraps every route and the
    /// not-found answer, so it is added before them).
    func router(modules: [any HTTPModule], fronts: [any HTTPFront] = []) -> Router<ServerRequestContext> {
        let router = Router(context: ServerRequestContext.self)
        if !fronts.isEmpty { router.add(middleware: FrontRouting(fronts: fronts)) }
        router.add(middleware: RequestAccounting(metrics: metrics))
        let pages = router.group(RouterPath(Self.pagesPrefix))
        for module in modules { module.register(on: pages) }
        pages.any("", "**") { _, _ in throw Self.nothingServed }
        S3API(server: self).register(on: router)
        return router
    }

    /// Serves until SIGTERM or SIGINT, then lets requests in flight finish, snapshots and returns.
    /// One `ServiceGroup` runs the HTTP server, the catalog snapshots, the provider watcher and
    /// `services` (background loops of the composition root's choosing); on a signal the HTTP server
    /// stops first (it stops accepting and lets requests in flight finish), then the services in
    /// reverse order. `modules` add routes under `/_a67` (`HTTPModule`); `fronts` answer the requests
    /// they take before any route (`HTTPFront`: the app proxy). `clients` are services that use the
    /// server (a67 up --serve's local node): they stop first, while it still answers them. `ready` is
    /// called with the address once the port is bound.
    public func run(modules: [any HTTPModule], fronts: [any HTTPFront] = [], services: [any Service] = [],
                    clients: [any Service] = [], ready: @escaping @Sendable (String) -> Void) async throws {
        let logger = Self.logger
        let configuration = ApplicationConfiguration(address: .hostname(settings.host, port: settings.port), serverName: "Automator67")
        let limits = descriptorBoundLimits(logger: logger)
        let idle = limits.idleTimeout.components
        let http1 = HTTP1Channel.Configuration(
            additionalChannelHandlers: [ContinueHandler(), RequestHeadWatcher()],
            idleTimeout: .nanoseconds(idle.seconds * 1_000_000_000 + idle.attoseconds / 1_000_000_000),
            httpDecoderConfiguration: .init(maxHeaderFieldSize: 16 * 1024, maxHeaderListSize: 64 * 1024, maxHeaderFieldCount: 200))
        let counter = ConnectionCounter(limits)
        let tls = try settings.tls?.configuration()
        let app = Application(
            router: router(modules: modules, fronts: fronts),
            server: HTTPServerBuilder { responder in
                let plain = LimitedHTTP1Channel(http: HTTP1Channel(responder: responder, configuration: http1), counter: counter)
                guard let tls else { return plain }
                // TLS first in the pipeline: the connection limits and the request-head deadline see
                // the decrypted bytes, as on plain HTTP.
                return try TLSChannel(plain, tlsConfiguration: tls)
            },
            configuration: configuration,
            onServerRunning: { channel in ready(channel.localAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "?") },
            logger: logger)
        let background: [any Service] = [SnapshotService(server: self, logger: logger),
                                          ProviderWatcher(repository: repository, logger: logger)] + services
        let group = ServiceGroup(configuration: .init(services: background + [app] + clients, gracefulShutdownSignals: [.sigterm, .sigint],
                                                      logger: logger))
        do {
            try await group.run()
        } catch let error as IOError where error.errnoCode == EADDRINUSE || error.errnoCode == EACCES
            || error.errnoCode == EADDRNOTAVAIL {
            let why = error.errnoCode == EADDRINUSE ? "the address is in use (another a67 serve?)"
                : error.errnoCode == EACCES ? "permission denied (ports below 1024 need root)" : "no interface has that address"
            throw StoreError(.conflict, "cannot listen on \(settings.host):\(settings.port): \(why); choose another with --listen HOST:PORT")
        }
        try await snapshot(logger: logger)
    }

    /// The connection limits, with the descriptor limit raised to its hard limit first and the
    /// connection cap lowered (saying so) when even that leaves too few descriptors for it: every
    /// connection holds one, and the repository needs some of its own (catalog, providers, files).
    func descriptorBoundLimits(logger: Logger) -> ConnectionLimits {
        var limits = settings.connections
        let reserve = 256
        guard let descriptors = try? raiseOpenFileLimit() else { return limits }
        let usable = max(1, Int(clamping: descriptors) - reserve)
        if limits.maxConnections > usable {
            logger.warning("only \(descriptors) file descriptors are allowed (ulimit -n); serving at most \(usable) connections instead of \(limits.maxConnections)")
            limits.maxConnections = usable
        }
        return limits
    }

    /// Snapshots the catalog if it changed since the last one.
    func snapshot(logger: Logger) async throws {
        guard dirty.exchange(false, ordering: .relaxed) else { return }
        repository.saveHealth()
        do {
            let report = try await repository.snapshotCatalog()
            if !report.behind.isEmpty {
                logger.warning("the catalog snapshot did not reach \(report.behind.joined(separator: ", ")); the next round retries")
                dirty.store(true, ordering: .relaxed)
            }
        } catch {
            dirty.store(true, ordering: .relaxed)
            logger.error("catalog snapshot failed: \(error)")
        }
    }
}

/// Snapshots the catalog every interval while it changes; stops at once on graceful shutdown (the
/// server takes the last snapshot after the requests in flight are done).
struct SnapshotService: Service {
    let server: BlobServer
    let logger: Logger

    func run() async throws {
        let interval = server.settings.snapshotInterval
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: .seconds(interval))
                try await server.snapshot(logger: logger)
            }
        }
    }
}


/// Answers `Expect: 100-continue` at once, so that clients (botocore, the aws CLI) send their body
/// without waiting a second for a reply first.
final class ContinueHandler: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundOut = HTTPResponsePart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(var head) = unwrapInboundIn(data), let expect = head.headerFields[.expect] {
            if expect.lowercased() == "100-continue" {
                head.headerFields[.expect] = nil
                context.writeAndFlush(wrapOutboundOut(.head(HTTPResponse(status: .continue))), promise: nil)
                context.fireChannelRead(wrapInboundOut(.head(head)))
                return
            }
        }
        context.fireChannelRead(data)
    }
}

/// A token bucket per access key.
final class RateLimiter: Sendable {
    let rate: Double
    let burst: Double
    private let buckets = Mutex<[String: (tokens: Double, at: ContinuousClock.Instant)]>([:])

    init(rate: Double, burst: Double) {
        self.rate = rate
        self.burst = max(1, burst)
    }

    /// Takes a token for `key`; false when it has none left.
    func allow(_ key: String) -> Bool {
        guard rate > 0 else { return true }
        let now = ContinuousClock.now
        return buckets.withLock { all in
            var entry = all[key] ?? (burst, now)
            let elapsed = now - entry.at
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            entry.tokens = min(burst, entry.tokens + seconds * rate)
            entry.at = now
            let allowed = entry.tokens >= 1
            if allowed { entry.tokens -= 1 }
            all[key] = entry
            return allowed
        }
    }
}

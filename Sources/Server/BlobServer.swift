import ChunkStore
import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes
import Replicator
import Synchronization

/// `a67 serve`: one process holding the repository open, serving the S3 API at the root, the JSON
/// control API under /_a67/api/v1 and Prometheus metrics at /_a67/metrics (see `Route`). Changes are
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

    /// Notes that the catalog changed: the next snapshot round stores it.
    func changed() { dirty.store(true, ordering: .relaxed) }

    /// Serves until SIGTERM or SIGINT, then lets requests in flight finish, snapshots and returns.
    /// `ready` is called with the address once the port is bound.
    public func run(ready: @escaping @Sendable (String) -> Void) async throws {
        var logger = Logger(label: "a67.serve")
        logger.logLevel = .warning
        let responder = Responder(server: self)
        let configuration = ApplicationConfiguration(address: .hostname(settings.host, port: settings.port), serverName: "Automator67")
        let limits = descriptorBoundLimits()
        let idle = limits.idleTimeout.components
        let http1 = HTTP1Channel.Configuration(
            additionalChannelHandlers: [ContinueHandler(), RequestHeadWatcher()],
            idleTimeout: .nanoseconds(idle.seconds * 1_000_000_000 + idle.attoseconds / 1_000_000_000),
            httpDecoderConfiguration: .init(maxHeaderFieldSize: 16 * 1024, maxHeaderListSize: 64 * 1024, maxHeaderFieldCount: 200))
        let counter = ConnectionCounter(limits)
        let snapshots = SnapshotService(server: self)
        let app = Application(
            responder: responder,
            server: HTTPServerBuilder { responder in
                LimitedHTTP1Channel(http: HTTP1Channel(responder: responder, configuration: http1), counter: counter)
            },
            configuration: configuration,
            services: [snapshots],
            onServerRunning: { channel in ready(channel.localAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "?") },
            logger: logger)
        do {
            try await app.runService()
        } catch let error as IOError where error.errnoCode == EADDRINUSE || error.errnoCode == EACCES
            || error.errnoCode == EADDRNOTAVAIL {
            let why = error.errnoCode == EADDRINUSE ? "the address is in use (another a67 serve?)"
                : error.errnoCode == EACCES ? "permission denied (ports below 1024 need root)" : "no interface has that address"
            throw StoreError(.conflict, "cannot listen on \(settings.host):\(settings.port): \(why); choose another with --listen HOST:PORT")
        }
        try await snapshot()
    }

    /// The connection limits, with the descriptor limit raised to its hard limit first and the
    /// connection cap lowered (saying so) when even that leaves too few descriptors for it: every
    /// connection holds one, and the repository needs some of its own (catalog, providers, files).
    func descriptorBoundLimits() -> ConnectionLimits {
        var limits = settings.connections
        let reserve = 256
        guard let descriptors = try? raiseOpenFileLimit() else { return limits }
        let usable = max(1, Int(clamping: descriptors) - reserve)
        if limits.maxConnections > usable {
            writeStandardError("a67 serve: only \(descriptors) file descriptors are allowed (ulimit -n); serving at most \(usable) connections instead of \(limits.maxConnections)\n")
            limits.maxConnections = usable
        }
        return limits
    }

    /// Snapshots the catalog if it changed since the last one.
    func snapshot() async throws {
        guard dirty.exchange(false, ordering: .relaxed) else { return }
        repository.saveHealth()
        do {
            let report = try await repository.snapshotCatalog()
            if !report.behind.isEmpty {
                writeStandardError("a67 serve: the catalog snapshot did not reach \(report.behind.joined(separator: ", ")); the next round retries\n")
                dirty.store(true, ordering: .relaxed)
            }
        } catch {
            dirty.store(true, ordering: .relaxed)
            writeStandardError("a67 serve: catalog snapshot failed: \(error)\n")
        }
    }
}

/// Snapshots the catalog every interval while it changes, and every few seconds picks up providers that
/// other commands added or changed and checks each provider's keyring (`Repository.watchProviders`,
/// first at start); stops at once on graceful shutdown (the server takes the last snapshot after the
/// requests in flight are done).
struct SnapshotService: Service {
    let server: BlobServer

    func run() async throws {
        let interval = server.settings.snapshotInterval
        try? await cancelWhenGracefulShutdown {
            var last = ContinuousClock.now
            while !Task.isCancelled {
                for line in await server.repository.watchProviders() { writeStandardError("a67 serve: \(line)\n") }
                try await Task.sleep(for: .seconds(min(Repository.providerWatchSeconds, interval)))
                if ContinuousClock.now - last >= .seconds(interval) {
                    last = ContinuousClock.now
                    try await server.snapshot()
                }
            }
        }
    }
}

import ServiceLifecycle

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

import AsyncHTTPClient
import Compute
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Server
import ServiceLifecycle
import Synchronization

/// Request forwarding to app instances inside `a67 serve` (the specification's load balancer).
/// A request for `Host: NAME.apps.DOMAIN` or under `/apps/NAME/` (`AppAddressing`) goes to a
/// healthy instance of app NAME from the `AppRouteTable` the controller keeps current:
///
/// - Balancing: power of two choices over least outstanding requests (`Balancer`).
/// - Bodies stream both ways: the request body is read from the client as the instance takes it,
///   the answer's body is written to the client as it arrives; neither is held whole. (The
///   answer's head goes with the body's first piece; an answer whose whole body came in that
///   piece goes out in one write.)
/// - Retries: a GET, HEAD, PUT, DELETE or OPTIONS whose connection to an instance could not be
///   made (refused, unreachable, timed out) goes to another instance, up to `maxAttempts`; a POST
///   (or PATCH, or any other method) never is, nor any request once a byte of it went out.
/// - Drain: an instance the controller leaves out of the table gets no new request; those in
///   flight finish (`AppRouteTable.replace`).
/// - Passive outlier detection: an instance whose connections fail `OutlierPolicy.consecutiveFailures`
///   times in a row is left out for a while, then tried again (`OutlierState`).
/// - Headers: hop-by-hop ones dropped, Host kept, X-Forwarded-For/-Proto/-Host/-Prefix added (`ForwardedHeaders`).
///
/// What the proxy answers itself, in plain text: 404 for an app no one deployed (a wrong name,
/// which retrying will not fix), 503 for a deployed app with no healthy instance ("no healthy
/// instance of web": it may have one soon), 502 when no instance could be reached or one broke
/// off, 504 when one stayed silent longer than `idleTimeout`, 308 from
/// `/apps/NAME` to `/apps/NAME/`. Requests through the proxy need no S3 signature: they are the
/// app's own traffic, and the app does its own authentication.
///
/// One pooled HTTP/1.1 client is shared by all requests and keeps connections to instances alive.
/// Run the proxy as a service of the server (`BlobServer.run(fronts: [proxy], services: [proxy])`):
/// it closes its connections when the server stops.
public struct AppProxy: HTTPFront, Service {
    /// How the proxy connects and retries.
    public struct Settings: Sendable {
        /// "http" or "https": what the server's clients use, sent as X-Forwarded-Proto.
        public var forwardedProto = "http"
        /// How long a connection to an instance may take before it counts as failed (and is retried elsewhere).
        public var connectTimeout: Duration = .seconds(2)
        /// How long an instance may stay silent once it has the whole request: before its answer
        /// begins (then 504) and between pieces of the answer (then the answer is cut), as nginx's
        /// proxy_read_timeout. Nothing bounds the whole request: a long upload or download is fine.
        public var idleTimeout: Duration = .seconds(60)
        /// Connections per instance at most, kept alive between requests (closed after a minute
        /// idle). A request that finds them all busy waits for one up to `connectTimeout`, then is
        /// tried on another instance (or answered 502).
        public var connectionsPerInstance = 128
        /// Instances tried per request at most (idempotent requests whose connections fail).
        public var maxAttempts = 3
        public var outliers = OutlierPolicy()
        /// Seeds the balancer's random draws; nil for a random seed. Fixed in tests that check picks.
        public var seed: UInt64?
        public init() {}
    }

    public let routes: AppRouteTable
    let addressing: AppAddressing
    let settings: Settings
    private let core: Core

    /// What the copies of the proxy share: the client and the balancer's draw counter.
    final class Core: Sendable {
        let client: HTTPClient
        let draws: Atomic<UInt64>
        init(client: HTTPClient, seed: UInt64) {
            self.client = client
            draws = Atomic(seed)
        }
    }

    static let logger = Logger(label: "a67.proxy")

    /// A proxy for the apps in `routes` under `domain` (`--apps-domain`; NAME.DOMAIN is app NAME).
    public init(routes: AppRouteTable, domain: String = "apps.local", settings: Settings = Settings(),
                eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.routes = routes
        self.settings = settings
        addressing = AppAddressing(domain: domain)
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.httpVersion = .http1Only
        configuration.decompression = .disabled
        // No request spans: the proxy does not trace, and a span (even the default no-op tracer's)
        // costs every request its attributes.
        configuration.tracing.tracer = nil
        configuration.timeout = .init(connect: Self.timeAmount(settings.connectTimeout), read: Self.timeAmount(settings.idleTimeout))
        configuration.connectionPool = .init(idleTimeout: .seconds(60),
                                             concurrentHTTP1ConnectionsPerHostSoftLimit: max(1, settings.connectionsPerInstance))
        // A failed connection fails its requests at once, so that they are retried on another
        // instance instead of waiting out the connect timeout on this one.
        configuration.connectionPool.retryConnectionEstablishment = false
        core = Core(client: HTTPClient(eventLoopGroup: eventLoopGroup, configuration: configuration),
                    seed: settings.seed ?? UInt64.random(in: 0...UInt64.max))
    }

    /// Runs until the server shuts down, then closes the connections to instances.
    public func run() async throws {
        try? await gracefulShutdown()
        try await shutdown()
    }

    /// Closes the connections to instances; requests still in flight fail. Call once.
    public func shutdown() async throws {
        try await core.client.shutdown()
    }

    public func takes(_ head: HTTPRequest) -> Bool { addressing.takes(head) }

    public func respond(to request: Request, context: ServerRequestContext) async throws -> Response {
        switch addressing.target(request.head) {
        case .redirect(let location):
            return Response(status: .permanentRedirect, headers: [.location: location, .contentLength: "0"])
        case .app(let app, let path, let prefix):
            return await forward(request, app: app, path: path, prefix: prefix, client: context.remoteAddress?.ipAddress)
        case nil:
            return Self.plain(.notFound, "not an app's address\n")
        }
    }

    /// The methods whose requests may be sent again when nothing of them reached an instance.
    static let retried: Set<HTTPRequest.Method> = [.get, .head, .put, .delete, .options]

    func forward(_ request: Request, app: String, path: String, prefix: String?, client: String?) async -> Response {
        guard let pool = routes.pool(app) else { return Self.plain(.notFound, "no app named \(app) is deployed\n") }
        pool.counters.requests.add(1, ordering: .relaxed)
        guard !pool.instances.isEmpty else {
            pool.counters.errors.add(1, ordering: .relaxed)
            return Self.plain(.serviceUnavailable, "no healthy instance of \(app)\n")
        }
        let headers = ForwardedHeaders.request(request.headers, host: request.head.authority, client: client,
                                               proto: settings.forwardedProto, prefix: prefix)
        let sent = BodyStarted()
        let body = Self.body(of: request, sent: sent)
        let method = HTTPMethod(rawValue: request.method.rawValue)
        let mayRetry = Self.retried.contains(request.method)
        var rng = SplitMix64(seed: core.draws.wrappingAdd(0x9E37_79B9_7F4A_7C15, ordering: .relaxed).newValue)
        var tried: [Int] = []
        var failure = "", note = ""
        var status = HTTPResponse.Status.badGateway
        while tried.count < max(1, settings.maxAttempts) {
            guard let index = pick(pool, excluding: tried, at: .now, using: &rng) else { break }
            tried.append(index)
            let instance = pool.instances[index]
            let lease = InstanceLease(instance)
            var outgoing = HTTPClientRequest(url: instance.base + path)
            outgoing.method = method
            outgoing.headers = headers
            outgoing.body = body
            do {
                let response = try await core.client.execute(outgoing, deadline: .distantFuture)
                instance.outlier.withLock { if $0 != .fresh { $0.succeeded() } }
                return try await Self.relay(response, lease: lease)
            } catch {
                lease.release()
                if let error = error as? HTTPClientError, error == .readTimeout { status = .gatewayTimeout }
                let failed = ConnectFailure(error)
                failure = "\(instance.endpoint.host):\(instance.endpoint.port): \(failed?.description ?? "\(error)")"
                if let failed, failed.countsAgainstInstance { noteFailure(of: instance, app: app) }
                guard failed != nil, mayRetry, !sent.value else {
                    if failed != nil, !mayRetry { note = "; \(request.method) is not sent again" }
                    break
                }
            }
        }
        pool.counters.errors.add(1, ordering: .relaxed)
        // Where the instances are and why they failed goes to the server's log, not to the client;
        // the query stays out of the log (it may hold the app's tokens).
        Self.logger.warning("app \(app): \(request.method) \(path.prefix { $0 != "?" }) answered \(status.code) after \(tried.count) instance(s); last: \(failure)")
        return Self.plain(status, "no instance of \(app) answered (\(tried.count) tried\(note))\n")
    }

    /// The instance for the next attempt: the balancer's pick among those not tried and not ejected;
    /// when every untried one is ejected, among those (an outage of all is better met by trying one
    /// than by refusing: ejection is a guess from past connections).
    func pick(_ pool: AppPool, excluding tried: [Int], at now: ContinuousClock.Instant, using rng: inout SplitMix64) -> Int? {
        let instances = pool.instances
        let load = { (index: Int) in instances[index].outstanding.load(ordering: .relaxed) }
        if let index = Balancer.pick(count: instances.count, usable: { !tried.contains($0) && !instances[$0].isEjected(at: now) },
                                     load: load, using: &rng) {
            return index
        }
        return Balancer.pick(count: instances.count, usable: { !tried.contains($0) }, load: load, using: &rng)
    }

    func noteFailure(of instance: InstanceState, app: String) {
        let policy = settings.outliers
        let state = instance.outlier.withLock { state in
            state.failed(at: .now, policy: policy) ? state : nil
        }
        if case .ejected(_, let times) = state {
            let endpoint = instance.endpoint
            Self.logger.warning("app \(app): instance \(endpoint.allocationID) at \(endpoint.host):\(endpoint.port) left out for \(policy.ejection(times)) after failed connections")
        }
    }

    /// The request body to send: none when the client sent none, else the client's stream as the
    /// instance takes it, with its length when known.
    static func body(of request: Request, sent: BodyStarted) -> HTTPClientRequest.Body? {
        if let length = request.headers[.contentLength].flatMap({ Int($0) }) {
            return length == 0 ? .bytes(ByteBuffer()) : .stream(ForwardedBody(body: request.body, sent: sent), length: .known(Int64(length)))
        }
        guard request.headers[.transferEncoding] != nil else { return nil }
        return .stream(ForwardedBody(body: request.body, sent: sent), length: .unknown)
    }

    /// The instance's answer for the client: its status and end-to-end headers, its body as it
    /// comes. The lease (the instance's outstanding count) is held until the body's end.
    ///
    /// The head waits for the body's first piece. When that piece is the whole body (the length
    /// the instance announced, as for most small answers), the answer goes to the client whole, in
    /// one write instead of one each for the head, the body and its end; otherwise the head and
    /// that piece go out and the rest streams as it comes.
    static func relay(_ response: HTTPClientResponse, lease: InstanceLease) async throws -> Response {
        let status = HTTPResponse.Status(code: Int(response.status.code), reasonPhrase: response.status.reasonPhrase)
        let headers = ForwardedHeaders.response(response.headers)
        let upstream = UpstreamBody(response.body)
        var read: [ByteBuffer] = []
        if let length = response.headers.first(name: "content-length").flatMap({ Int($0) }) {
            switch try await upstream.next() {
            case nil:  // no body: a HEAD's answer, or an empty one
                lease.release()
                return Response(status: status, headers: headers, body: ResponseBody())
            case let first? where first.readableBytes == length:
                guard let more = try await upstream.next() else {  // the end, already read with the body
                    lease.release()
                    return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: first))
                }
                read = [first, more]
            case let first?:
                read = [first]
            }
        }
        return Response(status: status, headers: headers, body: ResponseBody { [read] writer in
            defer { lease.release() }
            if !read.isEmpty { try await writer.write(contentsOf: read) }
            while let chunk = try await upstream.next() { try await writer.write(chunk) }
            lease.release()  // before the client sees the end: done, for `inFlight`
            try await writer.finish(nil)
        })
    }

    static func plain(_ status: HTTPResponse.Status, _ text: String) -> Response {
        Response(status: status, headers: [.contentType: "text/plain; charset=utf-8"], body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    static func timeAmount(_ duration: Duration) -> TimeAmount {
        let (seconds, attoseconds) = duration.components
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}

/// A failure that happened before any byte of the request reached the instance, so that sending
/// the request elsewhere cannot do it twice.
struct ConnectFailure: CustomStringConvertible {
    /// False for a wait for a free pooled connection that ran out: the instance is busy, not broken.
    let countsAgainstInstance: Bool
    let description: String

    init?(_ error: any Error) {
        switch error {
        case let error as HTTPClientError where error == .connectTimeout:
            (countsAgainstInstance, description) = (true, "connection timed out")
        case let error as HTTPClientError where error == .getConnectionFromPoolTimeout:
            (countsAgainstInstance, description) = (false, "no free connection in time")
        case let error as NIOConnectionError:
            let why = error.connectionErrors.first.map { "\($0.error)" } ?? "\(error)"
            (countsAgainstInstance, description) = (true, "cannot connect: \(why)")
        case let error as IOError where [ECONNREFUSED, ENETUNREACH, EHOSTUNREACH].contains(error.errnoCode):
            (countsAgainstInstance, description) = (true, "cannot connect: \(error)")
        case ChannelError.connectTimeout:
            (countsAgainstInstance, description) = (true, "connection timed out")
        default:
            return nil
        }
    }
}

/// The instance's answer body, read by one task at a time: by `relay` for its first pieces, then
/// by the response body's writer. (The client's iterator is not Sendable; nothing reads it at once
/// from two tasks.)
final class UpstreamBody: @unchecked Sendable {
    private var iterator: HTTPClientResponse.Body.AsyncIterator

    init(_ body: HTTPClientResponse.Body) { iterator = body.makeAsyncIterator() }

    func next() async throws -> ByteBuffer? { try await iterator.next() }
}

/// Whether the request body began to be sent (after which the request is never sent again).
final class BodyStarted: Sendable {
    private let started = Atomic<Bool>(false)
    var value: Bool { started.load(ordering: .relaxed) }
    func mark() { started.store(true, ordering: .relaxed) }
}

/// The client's request body as the instance's request body; notes when sending it begins.
struct ForwardedBody: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let body: RequestBody
    let sent: BodyStarted

    func makeAsyncIterator() -> RequestBody.AsyncIterator {
        sent.mark()
        return body.makeAsyncIterator()
    }
}

import ChunkStore
import Foundation
import HTTPTypes
import Hummingbird
import Prometheus
import Replicator

/// Where a request goes. The server's own pages live under `/_a67/`, which no bucket can be named
/// (bucket names have no '_', Names.validateBucket): every path a bucket can take reaches S3.
enum Route: Equatable {
    /// `/_a67/metrics`: Prometheus's text format.
    case metrics
    /// `/_a67/api/v1` and below; the part after `/_a67/api/v1`.
    case controlAPI(Substring)
    /// Anything else under `/_a67/`.
    case unknownPage
    /// Everything else: path-style S3.
    case s3

    static let prefix = "/_a67"
    static let metricsPath = prefix + "/metrics"
    static let controlAPIPath = prefix + "/api/v1"

    init(_ path: String) {
        if path == Self.metricsPath {
            self = .metrics
        } else if path == Self.controlAPIPath || path.hasPrefix(Self.controlAPIPath + "/") {
            self = .controlAPI(path.dropFirst(Self.controlAPIPath.count))
        } else if path == Self.prefix || path.hasPrefix(Self.prefix + "/") {
            self = .unknownPage
        } else {
            self = .s3
        }
    }
}

/// Every request enters here and goes where its `Route` says. Counts each one for the metrics.
struct Responder: HTTPResponder {
    typealias Context = BasicRequestContext
    let server: BlobServer

    func respond(to request: Request, context: Context) async throws -> Response {
        let started = ContinuousClock.now
        let requestID = Hex.encode(Crypto.randomBytes(8)).uppercased()
        let target = request.head.path ?? "/"
        server.metrics.inFlight(+1)
        defer { server.metrics.inFlight(-1) }
        var operation = "Unknown"
        var response: Response
        do {
            let path = try S3Path(target)
            switch Route(path.raw) {
            case .metrics:
                operation = "Metrics"
                guard request.method == .get || request.method == .head else {
                    throw S3Error(.methodNotAllowed, "MethodNotAllowed", "The metrics page is read-only: use GET")
                }
                response = try server.metrics.response(server: server)
            case .controlAPI(let route):
                operation = "ControlAPI"
                response = await ControlAPI(server: server).respond(request, path: path, route: route, requestID: requestID)
            case .unknownPage:
                throw S3Error(.notFound, "NotFound", "Nothing is served here: \(Route.prefix) has metrics and api/v1")
            case .s3:
                (response, operation) = try await s3(request, path: path, requestID: requestID)
            }
        } catch {
            let resource = String(target.prefix { $0 != "?" })
            response = S3Error.reported(error, requestID: requestID, operation: operation, path: resource, notFound: .internalError)
                .response(resource: resource, requestID: requestID, head: request.method == .head)
        }
        response.headers[HTTPField.Name("x-amz-request-id")!] = requestID
        response.headers[.server] = "Automator67"
        server.metrics.observe(operation: operation, status: response.status.code, seconds: started.duration(to: .now))
        return response
    }

    private func s3(_ request: Request, path: S3Path, requestID: String) async throws -> (Response, String) {
        let handler = S3Handler(server: server)
        let (principal, payload) = try server.authenticate(request, path: path)
        let s3 = S3Request(request: request, principal: principal, payload: payload, bucket: path.bucket, key: path.key,
                           query: Dictionary(path.query, uniquingKeysWith: { first, _ in first }), requestID: requestID)
        let operation = handler.operation(s3)
        do {
            return (try await handler.handle(s3, operation), operation.rawValue)
        } catch {
            throw S3Error.reported(error, requestID: requestID, operation: operation.rawValue, path: path.raw, notFound: missing(s3))
        }
    }

    /// What a not-found the handler did not name is, as S3 names it: the request's bucket when that
    /// is gone, else its upload or key.
    private func missing(_ r: S3Request) -> S3Error {
        if let bucket = r.bucket, (try? server.repository.catalog.namespace.bucket(bucket)) == nil { return .noSuchBucket(bucket) }
        if let upload = r.query["uploadId"] { return .noSuchUpload(upload) }
        if let key = r.key { return .noSuchKey(key) }
        return .noSuchBucket(r.bucket ?? "")
    }
}

/// The server's metrics in Prometheus's text format: requests by operation and status, their
/// durations, bytes in and out, requests in flight, and the repository's size and providers read
/// from the catalog at each scrape.
final class ServerMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let bytesIn: Counter
    private let bytesOut: Counter
    private let active: Gauge
    static let durationBuckets: [Duration] = [.milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
                                              .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
                                              .seconds(2.5), .seconds(5), .seconds(10)]

    /// `a67_NAME[_UNIT]`.
    static func name(_ name: String, unit: String = "", _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "a67", metricName: name, unitName: unit, helpText: help)
    }

    init() {
        bytesIn = registry.makeCounter(descriptor: Self.name("s3_received_bytes", unit: "total", "Object bytes received by uploads"))
        bytesOut = registry.makeCounter(descriptor: Self.name("s3_sent_bytes", unit: "total", "Object bytes sent by downloads"))
        active = registry.makeGauge(descriptor: Self.name("http_requests_in_flight", "Requests being served"))
    }

    func received(_ bytes: Int64) { bytesIn.increment(by: bytes) }
    func sent(_ bytes: Int64) { bytesOut.increment(by: bytes) }
    func inFlight(_ delta: Int) { active.increment(by: Double(delta)) }

    func observe(operation: String, status: Int, seconds: Duration) {
        registry.makeCounter(descriptor: Self.name("s3_requests", unit: "total", "Requests served, by operation and HTTP status"),
                             labels: [("operation", operation), ("status", String(status))]).increment()
        registry.makeDurationHistogram(descriptor: Self.name("s3_request_duration", unit: "seconds",
                                                             "Time to the response head, by operation"),
                                       labels: [("operation", operation)], buckets: Self.durationBuckets).record(seconds)
    }

    func response(server: BlobServer) throws -> Response {
        let statistics = try server.repository.catalog.statistics()
        func gauge(_ name: String, _ help: String, _ value: Double, _ labels: [(String, String)] = []) {
            registry.makeGauge(descriptor: Self.name(name, help), labels: labels).set(to: value)
        }
        gauge("objects", "Objects in every bucket", Double(statistics.objects))
        gauge("logical_bytes", "Sum of object sizes", Double(statistics.logicalBytes))
        gauge("replica_bytes", "Sealed bytes over every replica", Double(statistics.replicaBytes))
        for provider in try server.repository.catalog.providers.all() {
            gauge("provider_used_bytes", "Sealed bytes the catalog places on each provider", Double(provider.usedBytes),
                  [("provider", provider.name)])
            gauge("provider_breaker_open", "1 while the provider's circuit breaker is open", provider.health?.breaker == .open ? 1 : 0,
                  [("provider", provider.name)])
        }
        gauge("uptime_seconds", "Seconds since a67 serve started", Date().timeIntervalSince(server.startedAt))
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
    }
}

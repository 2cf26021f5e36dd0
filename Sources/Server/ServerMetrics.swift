import ChunkStore
import Foundation
import HTTPTypes
import Hummingbird
import Prometheus
import Replicator

/// `/_a67/metrics`: the server's metrics in Prometheus's text format (GET or HEAD).
public struct MetricsPage: HTTPModule {
    let server: BlobServer

    public init(server: BlobServer) { self.server = server }

    public func register(on group: RouterGroup<ServerRequestContext>) {
        group.any("metrics") { request, context in
            context.operation.name = "Metrics"
            guard request.method == .get || request.method == .head else {
                throw S3Error(.methodNotAllowed, "MethodNotAllowed", "The metrics page is read-only: use GET")
            }
            // The gauges are read from the catalog (statistics scans it) on the BlockingIOPool.
            let body = try await offPool { try server.metrics.render(server: server) }
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
        }
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

    /// One maintenance pass of `job` ended (see `BlobServer.maintenanceServices`).
    func maintenancePass(job: String, failed: Bool, problems: Int) {
        registry.makeCounter(descriptor: Self.name("maintenance_passes", unit: "total", "Background maintenance passes, by job and result"),
                             labels: [("job", job), ("result", failed ? "failed" : "ok")]).increment()
        registry.makeGauge(descriptor: Self.name("maintenance_last_pass_timestamp", unit: "seconds",
                                                 "When the job's last pass ended (Unix time)"),
                           labels: [("job", job)]).set(to: Date().timeIntervalSince1970)
        if !failed {
            registry.makeGauge(descriptor: Self.name("maintenance_last_pass_problems",
                                                     "Problems the job's last finished pass reported (lost or damaged copies, providers not answering...)"),
                               labels: [("job", job)]).set(to: Double(problems))
        }
    }

    func observe(operation: String, status: Int, seconds: Duration) {
        registry.makeCounter(descriptor: Self.name("s3_requests", unit: "total", "Requests served, by operation and HTTP status"),
                             labels: [("operation", operation), ("status", String(status))]).increment()
        registry.makeDurationHistogram(descriptor: Self.name("s3_request_duration", unit: "seconds",
                                                             "Time to the response head, by operation"),
                                       labels: [("operation", operation)], buckets: Self.durationBuckets).record(seconds)
    }

    /// The page: the catalog's gauges updated, then every metric in the text format.
    func render(server: BlobServer) throws -> [UInt8] {
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
        return registry.emitToBuffer()
    }
}

import Compute
import Synchronization

/// The instances each app's traffic may go to, as the controller last published them: every
/// deployed app by name, with its healthy, non-draining instances (an empty list while none is
/// healthy). The proxy reads it for every request; the controller replaces it whenever the set
/// changes.
///
/// Draining falls out of `replace`: an instance left out of the new table gets no new request,
/// while the requests already sent to it finish (they hold their instance's state, not the table).
/// The controller stops a drained instance once `inFlight` says its requests are done (or after
/// its drain timeout, 30 s). An instance kept across a replace keeps its requests in flight and its outlier
/// state.
public final class AppRouteTable: Sendable {
    private let apps = Mutex<[String: AppPool]>([:])
    /// Instances left out of the table with requests still in flight, by allocation ID.
    private let draining = Mutex<[String: [InstanceState]]>([:])

    public init() {}

    /// Publishes a new table: app name -> the instances to use. An app with an empty list is known
    /// but has nothing healthy (503); an app missing from the table is unknown (404).
    public func replace(_ routes: [String: [AppEndpoint]]) {
        apps.withLock { apps in
            var next: [String: AppPool] = [:]
            next.reserveCapacity(routes.count)
            for (app, endpoints) in routes {
                let old = apps[app]
                var kept: [EndpointKey: InstanceState] = [:]
                for state in old?.instances ?? [] { kept[EndpointKey(state.endpoint)] = state }
                let instances = endpoints.map { kept[EndpointKey($0)] ?? InstanceState($0) }
                next[app] = AppPool(app: app, instances: instances, counters: old?.counters ?? AppCounters())
            }
            let left = apps.values.flatMap { pool in
                pool.instances.filter { state in next[pool.app]?.instances.contains { $0 === state } != true }
            }
            apps = next
            draining.withLock { draining in
                for state in left { draining[state.endpoint.allocationID, default: []].append(state) }
            }
        }
    }

    /// The requests in flight to an instance, whether it is in the table or was left out of it
    /// (draining): the controller stops a drained instance when this reaches 0.
    public func inFlight(_ allocationID: String) -> Int {
        let listed = apps.withLock { apps in
            apps.values.reduce(0) { sum, pool in
                pool.instances.reduce(sum) { $1.endpoint.allocationID == allocationID ? $0 + $1.outstanding.load(ordering: .relaxed) : $0 }
            }
        }
        let drained = draining.withLock { draining in
            for (id, states) in draining {  // forget the drained instances that are done
                let busy = states.filter { $0.outstanding.load(ordering: .relaxed) > 0 }
                draining[id] = busy.isEmpty ? nil : busy
            }
            return draining[allocationID]?.reduce(0) { $0 + $1.outstanding.load(ordering: .relaxed) } ?? 0
        }
        return listed + drained
    }

    /// The app's instances, nil when no app has that name.
    func pool(_ app: String) -> AppPool? { apps.withLock { $0[app] } }

    /// Requests and errors (answers the proxy made itself: 502, 503) per app since the server started,
    /// for the apps in the table.
    public func counts() -> [String: (requests: Int, errors: Int)] {
        apps.withLock { apps in
            apps.mapValues { ($0.counters.requests.load(ordering: .relaxed), $0.counters.errors.load(ordering: .relaxed)) }
        }
    }

    /// The requests in flight to each instance of `app` (by allocation ID); for tests and status.
    public func outstanding(_ app: String) -> [String: Int] {
        guard let pool = pool(app) else { return [:] }
        var result: [String: Int] = [:]
        for state in pool.instances { result[state.endpoint.allocationID] = state.outstanding.load(ordering: .relaxed) }
        return result
    }
}

/// What identifies an instance across table replacements: its allocation and where it listens.
struct EndpointKey: Hashable {
    let allocationID: String
    let host: String
    let port: Int
    init(_ endpoint: AppEndpoint) { (allocationID, host, port) = (endpoint.allocationID, endpoint.host, endpoint.port) }
}

/// One app's instances in one published table (immutable; a replace makes a new one).
final class AppPool: Sendable {
    let app: String
    let instances: [InstanceState]
    let counters: AppCounters

    init(app: String, instances: [InstanceState], counters: AppCounters) {
        self.app = app
        self.instances = instances
        self.counters = counters
    }
}

/// An app's request counts, kept across table replacements.
final class AppCounters: Sendable {
    let requests = Atomic<Int>(0)
    let errors = Atomic<Int>(0)
}

/// One instance as the proxy sees it: where it is, the requests in flight to it, its outlier state.
final class InstanceState: Sendable {
    let endpoint: AppEndpoint
    /// "http://HOST:PORT", the URL every forwarded path is appended to.
    let base: String
    let outstanding = Atomic<Int>(0)
    let outlier = Mutex(OutlierState.fresh)

    init(_ endpoint: AppEndpoint) {
        self.endpoint = endpoint
        let host = endpoint.host.contains(":") ? "[\(endpoint.host)]" : endpoint.host
        base = "http://\(host):\(endpoint.port)"
    }

    func isEjected(at now: ContinuousClock.Instant) -> Bool { outlier.withLock { $0.isEjected(at: now) } }
}

/// One request's hold on an instance: counted in its outstanding requests from the pick until the
/// answer's last byte is written or the request is given up, whichever way that happens (the
/// count drops when the lease is released, at the latest when it is freed).
final class InstanceLease: Sendable {
    let instance: InstanceState
    private let held = Atomic<Bool>(true)

    init(_ instance: InstanceState) {
        self.instance = instance
        instance.outstanding.add(1, ordering: .relaxed)
    }

    func release() {
        if held.exchange(false, ordering: .relaxed) { instance.outstanding.subtract(1, ordering: .relaxed) }
    }

    deinit { release() }
}

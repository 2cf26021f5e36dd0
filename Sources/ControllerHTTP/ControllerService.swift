import ChunkStore
import Compute
import Controller
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// The controller's loop inside `a67 serve` (a `Service` of serve's `ServiceGroup`): it notices every
/// change of the controller's state, by this process or another (the CLI writes intents straight into
/// the catalog), reconciles (`Reconciler`), and pushes each node its desired state.
///
/// Every `pollInterval` (200 ms) it reads the newest event's ID, one indexed row: a change since the
/// last pass, or `reconcileInterval` (1 s) without one, runs a pass: nodes silent for three heartbeat
/// intervals are marked down, the reconciler's actions are applied, and each node's desired state is
/// rebuilt. A node whose desired state changed gets a new generation (kept in the catalog, so it keeps
/// increasing across restarts) and its long polls (`desired(node:after:)`) return at once. The proxy's
/// routes (healthy instances the controller still wants run) go to `onRoutes` whenever they change.
///
/// Time comes from `clock` (sleeps, timeouts) and `now` (the wall clock the catalog records), both
/// injectable.
public final class ControllerService: Service, Sendable {
    public struct Settings: Sendable {
        /// How often agents send heartbeats (`JoinResponse.heartbeatSeconds`); a node silent for three
        /// of them is marked down.
        public var heartbeatInterval: Duration = .seconds(5)
        /// How often the newest event's ID is read.
        public var pollInterval: Duration = .milliseconds(200)
        /// How often a pass runs when nothing changed (deadlines, drain delays, missed heartbeats).
        public var reconcileInterval: Duration = .seconds(1)
        /// How long a drained instance stays at least out of the routes before it may be told to stop
        /// (once the proxy has no request in flight to it: `inFlight`).
        public var drainDelay: Duration = .nanoseconds(Reconciler.defaultDrainDelay)
        /// How long a drained instance with requests still in flight keeps running at most.
        public var drainTimeout: Duration = .nanoseconds(Reconciler.defaultDrainTimeout)
        /// How long a long poll is held when nothing changes.
        public var longPoll: Duration = AgentProtocol.longPoll
        /// How long `logs` waits for the agent to send a log.
        public var logTimeout: Duration = .seconds(10)

        public init() {}
    }

    /// What an agent is granted to fetch a version's bundle: its chunks with their keys.
    public typealias BundleGrants = @Sendable (AppVersion) async throws -> BundleGrant

    let store: ControllerStore
    let settings: Settings
    let clock: any Clock<Duration>
    let now: @Sendable () -> Int64
    let grants: BundleGrants
    let onRoutes: @Sendable ([String: [AppEndpoint]]) -> Void
    let onCatalogChange: @Sendable () -> Void
    let inFlight: @Sendable (String) -> Int
    let logger: Logger
    let state = Mutex(State())

    struct State {
        /// Each node's desired state as last published.
        var desired: [String: DesiredState] = [:]
        /// Per node, the chunks its desired state grants, with their lengths.
        var granted: [String: [ChunkID: Int]] = [:]
        /// Per node, the SHA-256s (hex) of the bundles its agent last said it caches.
        var cachedBundles: [String: Set<String>] = [:]
        /// Grants by bundle ("BUCKET/KEY" and SHA-256): a version's bundle never changes.
        var grantCache: [String: BundleGrant] = [:]
        /// Long polls waiting, by node and waiter.
        var waiters: [String: [UInt64: CheckedContinuation<Void, Never>]] = [:]
        /// Log requests waiting for their agent, by node; and their callers, by request ID.
        var logRequests: [String: [LogRequest]] = [:]
        var logWaiters: [String: CheckedContinuation<[UInt8]?, Never>] = [:]
        /// Waits whose time ran out before they were registered (see `waitOrTimeout`).
        var expired: Set<String> = []
        var nextWaiter: UInt64 = 0
        var routes: [String: [AppEndpoint]]?
        var lastEvent: Int64 = -1
        var lastPass: Int64 = .min
        var changedHere = false
        var stopped = false
        /// When the first pass ran: a node's silence counts from then at the earliest, so a restart of
        /// serve does not mark every node down before its agents' next heartbeats.
        var startedAt: Int64?
    }

    /// `grants` builds a bundle's grant (`AgentAPI.grants(repository:)` in serve); `onRoutes` gets
    /// the proxy's routes whenever they change; `onCatalogChange` is called after a pass changed what
    /// the catalog records (placements, deployments, node states; not heartbeats), so that serve
    /// snapshots it; `inFlight` says how many requests the proxy has in flight to an allocation
    /// (`AppRouteTable.inFlight`), so that a drained instance is stopped once they are answered.
    public init(store: ControllerStore, settings: Settings = Settings(), clock: any Clock<Duration> = ContinuousClock(),
                now: @escaping @Sendable () -> Int64 = Catalog.now, grants: @escaping BundleGrants,
                onRoutes: @escaping @Sendable ([String: [AppEndpoint]]) -> Void,
                onCatalogChange: @escaping @Sendable () -> Void = {}, inFlight: @escaping @Sendable (String) -> Int = { _ in 0 },
                logger: Logger = Logger(label: "a67.controller")) {
        self.onCatalogChange = onCatalogChange
        self.inFlight = inFlight
        self.store = store
        self.settings = settings
        self.clock = clock
        self.now = now
        self.grants = grants
        self.onRoutes = onRoutes
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await self.pass()
                } catch is CancellationError {
                    break  // shutting down: the pass stopped where it was, and nothing is wrong
                } catch {
                    self.logger.error("controller pass failed (retried in \(self.settings.pollInterval)): \(error)")
                }
                try? await self.clock.sleep(for: self.settings.pollInterval)
            }
        }
        // Long polls and log requests end now rather than at their timeouts.
        let (waiters, logs) = state.withLock { state in
            state.stopped = true
            defer { state.waiters = [:]; state.logWaiters = [:] }
            return (state.waiters.values.flatMap(\.values), Array(state.logWaiters.values))
        }
        for waiter in waiters { waiter.resume() }
        for log in logs { log.resume(returning: nil) }
    }

    /// One turn of the loop: a pass when something changed or `reconcileInterval` went by.
    func pass() async throws {
        let store = self.store
        let now = self.now()
        let last = try await offPool { try store.lastEventID() }
        let interval = Self.nanoseconds(settings.reconcileInterval)
        let (due, startedAt) = state.withLock { state in
            if state.startedAt == nil { state.startedAt = now }
            let due = last != state.lastEvent || state.changedHere || now - state.lastPass >= interval
            if due {
                state.lastEvent = last
                state.lastPass = now
                state.changedHere = false
            }
            return (due, state.startedAt ?? now)
        }
        guard due else { return }
        let silence = 3 * Self.nanoseconds(settings.heartbeatInterval)
        let (drainDelay, drainTimeout) = (Self.nanoseconds(settings.drainDelay), Self.nanoseconds(settings.drainTimeout))
        let logger = self.logger
        var (input, markedDown) = try await offPool { () throws -> (Reconciler.Input, Bool) in
            let input = try store.reconcileInput(now: now)
            let silent = input.nodes.filter { $0.state == .ready && max($0.lastHeartbeat ?? $0.createdAt, startedAt) + silence <= now }
            for node in silent {
                try store.setState(node: node.id, .down, reason: "no heartbeat for \(silence / 1_000_000_000) s", now: now)
                logger.warning("node \(node.name) is down: no heartbeat for \(silence / 1_000_000_000) s")
            }
            return (silent.isEmpty ? input : try store.reconcileInput(now: now), !silent.isEmpty)
        }
        try await addLocality(to: &input)
        input.busy = Set(input.allocations.filter { $0.desired == .drain }.map(\.allocation.id).filter { inFlight($0) > 0 })
        let planned = input
        input = try await offPool { () throws -> Reconciler.Input in
            let actions = Reconciler.plan(planned, drainDelay: drainDelay, drainTimeout: drainTimeout)
            guard !actions.isEmpty else { return planned }
            try store.apply(actions, now: now)
            return try store.reconcileInput(now: now)
        }
        if markedDown || input.allocations != planned.allocations || input.apps != planned.apps {
            onCatalogChange()
        }
        try await publish(input)
    }

    /// Fills in the chunks of each app's desired version (from its grant) and of the bundles each
    /// node's agent caches (from its heartbeats), for the scheduler's locality. A grant that cannot
    /// be built leaves that version without (no preference); `publish` reports the problem.
    func addLocality(to input: inout Reconciler.Input) async throws {
        let store = self.store
        var chunksBySHA: [String: Set<ChunkID>] = [:]
        for index in input.apps.indices {
            let app = input.apps[index]
            guard let number = app.desiredVersion, let position = app.versions.firstIndex(where: { $0.number == number }),
                  let version = try? await offPool({ try store.version(app: app.name, number: number) }),
                  let grant = try? await grant(for: version) else { continue }
            let chunks = Set(grant.chunks.compactMap { ChunkID(hex: $0.id) })
            input.apps[index].versions[position].chunks = chunks
            chunksBySHA[grant.sha256] = chunks
        }
        let cached = state.withLock { $0.cachedBundles }
        for (node, bundles) in cached {
            input.cachedChunks[node] = bundles.reduce(into: Set<ChunkID>()) { $0.formUnion(chunksBySHA[$1] ?? []) }
        }
    }

    // MARK: - Desired states and routes

    /// Rebuilds each node's desired state from `input`; a node's that changed gets a new generation
    /// and wakes its long polls. Then the routes.
    func publish(_ input: Reconciler.Input) async throws {
        let store = self.store
        var versions: [String: AppVersion] = [:]
        for (app, numbers) in Dictionary(grouping: input.allocations.map(\.allocation), by: \.app).mapValues({ Set($0.map(\.version)) }) {
            for version in try await offPool({ try store.versions(app: app) }) where numbers.contains(version.number) {
                versions["\(app)/\(version.number)"] = version
            }
        }
        let byNode = Dictionary(grouping: input.allocations, by: \.allocation.nodeID)
        for node in input.nodes {
            var instances: [DesiredInstance] = []
            var granted: [ChunkID: Int] = [:]
            do {
                for record in byNode[node.id] ?? [] {
                    let a = record.allocation
                    guard let version = versions["\(a.app)/\(a.version)"] else { continue }
                    let grant = try await grant(for: version)
                    for chunk in grant.chunks {
                        if let id = ChunkID(hex: chunk.id) { granted[id] = chunk.length }
                    }
                    instances.append(DesiredInstance(allocationID: a.id, app: a.app, version: a.version, run: record.desired != .stop,
                                                     manifest: version.manifest, bundle: grant))
                }
            } catch {
                // The node keeps what it was told: a bundle that cannot be granted now must not stop its instances.
                logger.error("cannot build node \(node.name)'s desired state, kept as it was: \(error)")
                continue
            }
            let change = state.withLock { state -> Bool in
                let previous = state.desired[node.id]
                let requests = state.logRequests[node.id] ?? []
                return previous == nil || previous?.instances != instances || previous?.logRequests != requests
            }
            guard change else { continue }
            let generation = try await offPool { try store.bumpGeneration(node: node.id) }
            let waiters = state.withLock { state in
                state.desired[node.id] = DesiredState(generation: generation, instances: instances, logRequests: state.logRequests[node.id] ?? [])
                state.granted[node.id] = granted
                return state.waiters.removeValue(forKey: node.id).map { Array($0.values) } ?? []
            }
            for waiter in waiters { waiter.resume() }
        }
        let live = Set(input.nodes.map(\.id))
        state.withLock { state in
            for gone in state.desired.keys where !live.contains(gone) {
                state.desired[gone] = nil
                state.granted[gone] = nil
                state.cachedBundles[gone] = nil
            }
        }
        publishRoutes(input)
    }

    /// The grant of `version`'s bundle, built once.
    func grant(for version: AppVersion) async throws -> BundleGrant {
        let key = version.bundle + "#" + Hex.encode(version.bundleSHA256)
        if let cached = state.withLock({ $0.grantCache[key] }) { return cached }
        let grant = try await grants(version)
        state.withLock { $0.grantCache[key] = grant }
        return grant
    }

    /// The instances the proxy may send traffic to: running, healthy, still wanted run, on a node that
    /// is ready or draining, with a port. Every app that is deployed and not being removed is listed,
    /// with no instance when none qualifies, so that the proxy tells "no healthy instance" (503) from
    /// "no such app" (404).
    public static func routes(_ input: Reconciler.Input) -> [String: [AppEndpoint]] {
        let nodes = Dictionary(uniqueKeysWithValues: input.nodes.map { ($0.id, $0) })
        var routes: [String: [AppEndpoint]] = [:]
        for app in input.apps where app.desiredVersion != nil && !app.removing { routes[app.name] = [] }
        for record in input.allocations where record.desired == .run && record.healthy && record.allocation.state == .running {
            guard let port = record.port, let node = nodes[record.allocation.nodeID], node.state == .ready || node.state == .draining else { continue }
            routes[record.allocation.app, default: []].append(AppEndpoint(allocationID: record.allocation.id, app: record.allocation.app,
                                                                           host: node.address, port: port))
        }
        return routes.mapValues { $0.sorted { $0.allocationID < $1.allocationID } }
    }

    func publishRoutes(_ input: Reconciler.Input) {
        let routes = Self.routes(input)
        let changed = state.withLock { state in
            guard state.routes != routes else { return false }
            state.routes = routes
            return true
        }
        if changed { onRoutes(routes) }
    }

    // MARK: - What the agent API calls

    /// Node `node`'s desired state with a generation other than `after`: at once when there is one,
    /// else when it changes or after `longPoll`, whichever first (then with the same generation: the
    /// agent asks again). A generation above the controller's (an agent that outlived a restored
    /// catalog) is answered at once with the controller's. Nil while the controller has not built the
    /// node's desired state yet (just started, or the node is not in the cluster): never an empty one
    /// in its place, which would tell the agent to stop everything.
    public func desired(node: String, after: Int64) async -> DesiredState? {
        let key = state.withLock { state -> UInt64 in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        let name = "poll-\(key)"
        await waitOrTimeout(settings.longPoll, register: { (waiter: CheckedContinuation<Void, Never>) in
            let now = self.state.withLock { state -> Bool in
                if state.stopped || state.expired.remove(name) != nil { return true }
                if let generation = state.desired[node]?.generation, generation != after { return true }
                state.waiters[node, default: [:]][key] = waiter
                return false
            }
            if now { waiter.resume() }
        }, expire: {
            let waiter = self.state.withLock { state in
                guard let waiter = state.waiters[node]?.removeValue(forKey: key) else {
                    state.expired.insert(name)
                    return nil as CheckedContinuation<Void, Never>?
                }
                return waiter
            }
            waiter?.resume()
        })
        return state.withLock { $0.desired[node] }
    }

    /// Waits for `register`'s continuation to be resumed or for `timeout`, whichever first. `expire`
    /// runs when the time is out: it resumes the continuation if it is registered, and otherwise
    /// leaves word for `register` to resume it at once. A graceful shutdown of the service the caller
    /// runs in (the HTTP server, for a request) ends the wait too, so that serve does not wait out
    /// long polls held open before it stops.
    func waitOrTimeout<T: Sendable>(_ timeout: Duration, register: @escaping @Sendable (CheckedContinuation<T, Never>) -> Void,
                                    expire: @escaping @Sendable () -> Void) async -> T {
        await withGracefulShutdownHandler {
            await wait(timeout, register: register, expire: expire)
        } onGracefulShutdown: {
            expire()
        }
    }

    private func wait<T: Sendable>(_ timeout: Duration, register: @escaping @Sendable (CheckedContinuation<T, Never>) -> Void,
                                   expire: @escaping @Sendable () -> Void) async -> T {
        await withTaskGroup(of: T?.self) { group in
            group.addTask { await withCheckedContinuation { register($0) } }
            group.addTask {
                try? await self.clock.sleep(for: timeout)
                if !Task.isCancelled { expire() }
                return nil
            }
            var result: T?
            while let next = await group.next() {
                if let next {
                    result = next
                    break
                }
            }
            group.cancelAll()
            return result!
        }
    }

    /// The chunks node `node` may fetch, with their lengths: those of the bundles its desired state grants.
    public func grantedLength(node: String, chunk: ChunkID) -> Int? {
        state.withLock { $0.granted[node]?[chunk] }
    }

    /// The node's generation now (for a heartbeat's reply).
    public func generation(node: String) -> Int64 {
        state.withLock { $0.desired[node]?.generation ?? 0 }
    }

    /// Records a heartbeat: the node's use and what it says of its instances (those of other nodes
    /// are ignored, as if unknown).
    public func heartbeat(node: Node, _ heartbeat: Heartbeat) async throws -> HeartbeatReply {
        let store = self.store
        let now = self.now()
        try await offPool {
            try store.heartbeat(node: node.id, usage: heartbeat.used, capacity: heartbeat.capacity, now: now)
            for report in heartbeat.instances {
                do {
                    _ = try store.update(allocation: report.allocationID, node: node.id, Self.change(report), now: now)
                } catch let error as StoreError where error.code == .notFound || error.code == .conflict {
                    continue
                }
            }
        }
        state.withLock { $0.cachedBundles[node.id] = Set(heartbeat.cachedBundles.map { $0.lowercased() }) }
        changed()
        return HeartbeatReply(generation: generation(node: node.id))
    }

    /// Records what node `node` reports about one of its allocations; not found when it is not one of
    /// that node's (another node's, or none).
    public func report(node: Node, _ report: InstanceReport) async throws {
        let store = self.store
        let now = self.now()
        _ = try await offPool { try store.update(allocation: report.allocationID, node: node.id, Self.change(report), now: now) }
        changed()
    }

    static func change(_ report: InstanceReport) -> AllocationChange {
        AllocationChange(state: report.state, port: report.port, restarts: report.restarts, exitCode: report.exitCode,
                         healthy: report.healthy, message: report.message ?? "")
    }

    /// Something changed here (a join, a report): the next turn runs a pass without waiting.
    public func changed() {
        state.withLock { $0.changedHere = true }
    }

    // MARK: - Logs

    /// The last `tail` lines of allocation `allocationID`'s log, asked of its node's agent through its
    /// desired state. Not found for an unknown allocation; a timeout error when the agent does not send
    /// it within `logTimeout`.
    public func logs(allocationID: String, tail: Int) async throws -> [UInt8] {
        let store = self.store
        let record = try await offPool { try store.allocation(id: allocationID) }
        let node = record.allocation.nodeID
        let request = LogRequest(id: "l" + Hex.encode(Crypto.randomBytes(8)), allocationID: allocationID, tail: max(1, tail))
        state.withLock { state in
            state.logRequests[node, default: []].append(request)
            state.changedHere = true
        }
        defer {
            state.withLock { state in
                state.logRequests[node]?.removeAll { $0.id == request.id }
                state.changedHere = true
            }
        }
        let name = "log-" + request.id
        let bytes = await waitOrTimeout(settings.logTimeout, register: { (waiter: CheckedContinuation<[UInt8]?, Never>) in
            let now = self.state.withLock { state -> Bool in
                if state.stopped || state.expired.remove(name) != nil { return true }
                state.logWaiters[request.id] = waiter
                return false
            }
            if now { waiter.resume(returning: nil) }
        }, expire: {
            let waiter = self.state.withLock { state in
                guard let waiter = state.logWaiters.removeValue(forKey: request.id) else {
                    state.expired.insert(name)
                    return nil as CheckedContinuation<[UInt8]?, Never>?
                }
                return waiter
            }
            waiter?.resume(returning: nil)
        })
        guard let bytes else {
            let nodeName = (try? await offPool { try store.node(id: node).name }) ?? node
            throw StoreError(.io, "node \(nodeName) did not send the log of instance \(allocationID) within "
                + "\(settings.logTimeout): is its agent running and connected? (a67 node ls shows when it was last seen)")
        }
        return bytes
    }

    /// The log an agent sends for request `requestID`; false when that node has no such request
    /// waiting (another node's, or it timed out).
    public func deliverLog(node: String, requestID: String, _ bytes: [UInt8]) -> Bool {
        let waiter = state.withLock { state -> CheckedContinuation<[UInt8]?, Never>? in
            guard state.logRequests[node]?.contains(where: { $0.id == requestID }) == true else { return nil }
            return state.logWaiters.removeValue(forKey: requestID)
        }
        waiter?.resume(returning: bytes)
        return waiter != nil
    }

    static func nanoseconds(_ duration: Duration) -> Int64 { ControllerStore.nanoseconds(duration) }
}

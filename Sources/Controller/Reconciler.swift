import ChunkStore
import Compute
import Foundation

/// What the controller must do to make the cluster match the operator's intents: a pure function of
/// the apps' intents, their versions and deployments, the allocations (with their health) and the
/// nodes, at a moment `now` (nanoseconds since 1970) passed in. `ControllerService` runs it after
/// every change and every second, and applies its actions through `ControllerStore.apply`.
///
/// Per app, with desired version V and N desired instances (0 when stopped); an allocation is live
/// when its state is pending, starting or running and the controller still wants it run; one is
/// "proven" when it has been healthy for the update policy's `min_healthy_time`:
/// 1. A deployment of V whose new instances are not all proven by `healthy_deadline` after they were
///    placed fails: V's state becomes failed; with `auto_revert` and an earlier version that deployed
///    healthy, the app goes back to it (the deployment is 'reverted'), else the deployment is 'failed'
///    and the rollout stops where it is (nothing more is placed or drained for it).
/// 2. Live instances of other versions that are not healthy are drained at once: they serve nothing,
///    so taking them out never lowers the healthy count.
/// 3. Live instances of V beyond N are drained (`Scheduler.scaleDown` picks which).
/// 4. Missing instances of V are placed (`Scheduler.place`): all at once when no other version is
///    live (a first deploy, a scale up), else at most `max_parallel` not yet proven at a time; after
///    instances of the app failed, only `replacementDelay` after the latest failure.
/// 5. Instances of other versions are drained one for each proven instance of V beyond N, so the
///    healthy instances never fall below N during a rolling update (zero downtime).
/// 6. A drained instance is told to stop once it is out of the proxy's routes (`drainDelay` after it
///    was drained) and no request the proxy sent it is still in flight (`Input.busy`), or at the
///    latest `drainTimeout` after it was drained, whatever it still serves.
/// 7. A running deployment of V succeeds once N proven instances of V run and no other version is
///    live: V is deployed, the version it replaced superseded.
/// An app being removed (`ControllerStore.removeApp` while instances ran) is stopped, and forgotten
/// once none of its instances holds a node's resources.
/// Nothing here reads a clock or the catalog, so the tests table it.
public enum Reconciler {
    /// The facts the reconciler decides on.
    public struct Input: Sendable {
        public var apps: [AppIntent]
        public var allocations: [AllocationRecord]
        public var nodes: [Node]
        public var now: Int64
        /// Per node ID, the chunks its agent caches (of the bundles its heartbeats list): the
        /// scheduler prefers nodes that need not fetch a bundle. Not in the catalog; empty: no preference.
        public var cachedChunks: [String: Set<ChunkID>]
        /// The drained allocations (IDs) that the proxy still has requests in flight to: they keep
        /// running until those are answered (or `drainTimeout`). Not in the catalog.
        public var busy: Set<String>

        public init(apps: [AppIntent], allocations: [AllocationRecord], nodes: [Node], now: Int64, cachedChunks: [String: Set<ChunkID>] = [:],
                    busy: Set<String> = []) {
            self.apps = apps
            self.allocations = allocations
            self.nodes = nodes
            self.now = now
            self.cachedChunks = cachedChunks
            self.busy = busy
        }
    }

    /// How long a drained instance stays at least out of the proxy's routes before it may be told to
    /// stop: the pass that drained it has published the routes without it by then, and a request that
    /// picked it just before holds its lease, so `busy` counts it.
    public static let defaultDrainDelay: Int64 = 500_000_000

    /// How long a drained instance keeps running at most while requests to it are still in flight
    /// (a long download, a stuck client): then it is told to stop anyway.
    public static let defaultDrainTimeout: Int64 = 30_000_000_000

    /// How far back an app's failed instances count for the replacement backoff.
    public static let failureWindow: Int64 = 600_000_000_000

    /// How long after the latest of `failures` failed instances (in the failure window) a replacement
    /// waits: 1 s for the first, doubling with each, at most 60 s. An instance that cannot start (its
    /// command does not exist, its node refuses it) is so replaced at a bounded pace, never in a loop.
    public static func replacementDelay(failures: Int) -> Int64 {
        guard failures > 0 else { return 0 }
        return min(Int64(1) << Int64(min(failures - 1, 6)), 60) * 1_000_000_000
    }

    /// The actions that bring the allocations to the intents, in the order to apply them.
    public static func plan(_ input: Input, drainDelay: Int64 = defaultDrainDelay, drainTimeout: Int64 = defaultDrainTimeout) -> [ReconcileAction] {
        var actions: [ReconcileAction] = []
        var allocations = input.allocations.map(\.allocation)
        let schedulerNodes = input.nodes.map { node in
            var scheduled = node.schedulerNode
            scheduled.cachedChunks = input.cachedChunks[node.id] ?? []
            return scheduled
        }
        for app in input.apps.sorted(by: { $0.name < $1.name }) {
            let records = input.allocations.filter { $0.allocation.app == app.name }
            let appActions = plan(app, records: records, nodes: schedulerNodes, allocations: allocations, now: input.now,
                                  draining: (drainDelay, drainTimeout, input.busy))
            for case .place(let decision, let version) in appActions {
                let resources = app.versions.first { $0.number == version }?.manifest.resources ?? .zero
                allocations += decision.placements.map {
                    Allocation(id: "placing-\(app.name)-\($0.instance)", app: app.name, version: version, nodeID: $0.nodeID,
                               resources: resources, state: .pending, createdAt: Date(timeIntervalSince1970: Double(input.now) / 1e9))
                }
            }
            actions += appActions
        }
        return actions
    }

    static func plan(_ app: AppIntent, records: [AllocationRecord], nodes: [SchedulerNode], allocations: [Allocation], now: Int64,
                     draining: (delay: Int64, timeout: Int64, busy: Set<String>)) -> [ReconcileAction] {
        var actions: [ReconcileAction] = []
        // An app being removed goes once none of its instances holds a node's resources.
        if app.removing && records.isEmpty { return [.forget(app: app.name)] }
        // 6: drained, out of the routes and answered every request: stop (or after the timeout anyway).
        for record in records where record.desired == .drain && record.allocation.state.holdsResources {
            guard let drainAt = record.drainAt else { continue }
            let id = record.allocation.id
            if drainAt + draining.delay <= now, !draining.busy.contains(id) {
                actions.append(.stop(allocationID: id, reason: "drained: no request in flight"))
            } else if drainAt + draining.timeout <= now {
                actions.append(.stop(allocationID: id, reason: "drained \(draining.timeout / 1_000_000_000) s ago, requests still in flight"))
            }
        }
        guard var version = app.desiredVersion, let manifest = app.versions.first(where: { $0.number == app.desiredVersion })?.manifest else {
            return actions
        }
        var policy = manifest.update
        var deployment = app.deployment.flatMap { $0.version == version && $0.state == .running ? $0 : nil }
        let live = records.filter { $0.desired == .run && $0.allocation.state.isLive }
        func proven(_ record: AllocationRecord) -> Bool {
            guard record.healthy, let since = record.healthySince else { return false }
            return since + nanoseconds(policy.minHealthyTime) <= now
        }

        // 1: the deadline, counted from the deployment's start or its last progress (an instance of V proven).
        var halted = app.deployment.map { $0.version == version && $0.state == .failed } ?? false
        if let running = deployment, !app.stopped {
            let provenNew = live.filter { $0.allocation.version == version && proven($0) }
            let progress = provenNew.compactMap { $0.healthySince.map { $0 + nanoseconds(policy.minHealthyTime) } }.max() ?? running.createdAt
            if provenNew.count < app.wantedInstances, max(progress, running.createdAt) + nanoseconds(policy.healthyDeadline) <= now {
                let missing = app.wantedInstances - provenNew.count
                let why = "\(missing) of \(app.wantedInstances) instance\(app.wantedInstances == 1 ? " was" : "s were") not healthy for "
                    + "\(seconds(policy.minHealthyTime)) within \(seconds(policy.healthyDeadline))"
                actions.append(.setVersionState(app: app.name, version: version, state: .failed))
                let previous = app.lastHealthyVersion(other: version)
                if policy.autoRevert, let previous, let previousManifest = app.versions.first(where: { $0.number == previous })?.manifest {
                    actions.append(.finishDeployment(id: running.id, app: app.name, state: .reverted,
                                                     message: "version \(version) failed: \(why); reverted to version \(previous)"))
                    actions.append(.revert(app: app.name, to: previous))
                    version = previous
                    policy = previousManifest.update
                } else {
                    let reason = policy.autoRevert ? "; no earlier version deployed healthy to revert to" : ""
                    actions.append(.finishDeployment(id: running.id, app: app.name, state: .failed,
                                                     message: "version \(version) failed: \(why)\(reason)"))
                    halted = true
                }
                deployment = nil
            }
        }
        let wanted = app.stopped ? 0 : (app.versions.first { $0.number == version }.map { app.desiredInstances ?? $0.manifest.instances } ?? 0)
        let current = live.filter { $0.allocation.version == version }
        var others = live.filter { $0.allocation.version != version }
        var drained: Set<String> = []
        func drain(_ record: AllocationRecord, _ reason: String) {
            guard drained.insert(record.allocation.id).inserted else { return }
            actions.append(.drain(allocationID: record.allocation.id, reason: reason))
        }

        // 2: other versions' unhealthy instances serve nothing.
        for record in others where !record.healthy || app.stopped {
            drain(record, app.stopped ? "\(app.name) is stopped" : "version \(record.allocation.version) is replaced and not healthy")
        }
        others.removeAll { drained.contains($0.allocation.id) }

        // 3: too many of V.
        let excess = Scheduler.scaleDown(app: app.name, keep: wanted, nodes: nodes, allocations: current.map(\.allocation))
        for allocation in excess {
            if let record = current.first(where: { $0.allocation.id == allocation.id }) {
                drain(record, app.stopped ? "\(app.name) is stopped" : "scaled down to \(wanted)")
            }
        }
        let kept = current.filter { !drained.contains($0.allocation.id) }

        // 4: place what is missing.
        var problem: String?
        let backingOff = app.recentFailures.max().map { now < $0 + replacementDelay(failures: app.recentFailures.count) } ?? false
        if !halted, !backingOff, kept.count < wanted, let versionRecord = app.versions.first(where: { $0.number == version }) {
            let inFlight = kept.count(where: { !proven($0) })
            let count = others.isEmpty ? wanted - kept.count : min(wanted - kept.count, max(0, max(1, policy.maxParallel) - inFlight))
            if count > 0 {
                let m = versionRecord.manifest
                let request = PlacementRequest(app: app.name, instances: count, resources: m.resources, constraints: m.constraints,
                                               distinctNodes: m.distinctNodes, bundleChunks: versionRecord.chunks)
                let decision = Scheduler.place(request, nodes: nodes, allocations: allocations)
                if !decision.placements.isEmpty { actions.append(.place(decision, version: version)) }
                if decision.explanation != nil { problem = decision.description }
            }
        }
        if problem != app.placementProblem { actions.append(.placementProblem(app: app.name, message: problem)) }

        // 5: other versions give way to proven instances of V.
        if !halted {
            let surplus = others.count + kept.count(where: proven) - wanted
            if surplus > 0 {
                let order = Scheduler.scaleDown(app: app.name, keep: others.count - surplus, nodes: nodes, allocations: others.map(\.allocation))
                for allocation in order {
                    if let record = others.first(where: { $0.allocation.id == allocation.id }) {
                        drain(record, "replaced by version \(version)")
                    }
                }
            }
        }

        // 7: done.
        if let running = deployment, !app.stopped, others.allSatisfy({ drained.contains($0.allocation.id) }),
           kept.count(where: proven) >= wanted {
            actions.append(.finishDeployment(id: running.id, app: app.name, state: .succeeded,
                                             message: "version \(version) runs \(wanted) healthy instance\(wanted == 1 ? "" : "s")"))
            actions.append(.setVersionState(app: app.name, version: version, state: .deployed))
            for other in app.versions where other.number != version && other.state == .deployed {
                actions.append(.setVersionState(app: app.name, version: other.number, state: .superseded))
            }
        }
        return actions
    }

    static func nanoseconds(_ duration: Duration) -> Int64 { ControllerStore.nanoseconds(duration) }

    static func nanoseconds(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1e9).rounded()) }

    /// "10 s", "1.5 s", "5 min".
    static func seconds(_ duration: Duration) -> String {
        let ms = nanoseconds(duration) / 1_000_000
        if ms % 60_000 == 0 && ms >= 60_000 { return "\(ms / 60_000) min" }
        return ms % 1000 == 0 ? "\(ms / 1000) s" : "\(Double(ms) / 1000) s"
    }
}

/// One app as the reconciler sees it: the operator's intents, its versions and its latest deployment.
public struct AppIntent: Sendable, Equatable {
    public var name: String
    /// The version it should run; nil before its first deploy.
    public var desiredVersion: Int?
    /// Instances asked for by `a67 app scale`; nil means the desired version's manifest's.
    public var desiredInstances: Int?
    public var stopped: Bool
    public var versions: [VersionSummary]
    /// Its latest deployment.
    public var deployment: Deployment?
    /// The explanation recorded when the last placement left instances unplaced.
    public var placementProblem: String?
    /// `a67 app rm` was asked while instances ran: it is stopped, and forgotten once none holds resources.
    public var removing: Bool
    /// When its instances failed (nanoseconds since 1970) within the last `Reconciler.failureWindow`:
    /// replacements back off by how many there were.
    public var recentFailures: [Int64]

    public init(name: String, desiredVersion: Int?, desiredInstances: Int? = nil, stopped: Bool = false, versions: [VersionSummary],
                deployment: Deployment? = nil, placementProblem: String? = nil, removing: Bool = false, recentFailures: [Int64] = []) {
        self.recentFailures = recentFailures
        self.name = name
        self.desiredVersion = desiredVersion
        self.desiredInstances = desiredInstances
        self.stopped = stopped
        self.versions = versions
        self.deployment = deployment
        self.placementProblem = placementProblem
        self.removing = removing
    }

    /// The instances it should run now: 0 when stopped or never deployed.
    public var wantedInstances: Int {
        guard !stopped, let version = versions.first(where: { $0.number == desiredVersion }) else { return 0 }
        return desiredInstances ?? version.manifest.instances
    }

    /// The newest version other than `version` that deployed healthy (deployed or superseded); nil
    /// when there is none: where a failed deployment of `version` reverts to.
    public func lastHealthyVersion(other version: Int) -> Int? {
        versions.filter { $0.number != version && ($0.state == .deployed || $0.state == .superseded) }.map(\.number).max()
    }
}

/// A version as the reconciler needs it: its number, manifest and state.
public struct VersionSummary: Sendable, Equatable {
    public var number: Int
    public var manifest: AppManifest
    public var state: AppVersion.State
    /// The chunks of its bundle, when known (the controller fills them in from its grants): the
    /// scheduler's locality. Empty: no preference.
    public var chunks: Set<ChunkID>

    public init(number: Int, manifest: AppManifest, state: AppVersion.State, chunks: Set<ChunkID> = []) {
        self.number = number
        self.manifest = manifest
        self.state = state
        self.chunks = chunks
    }
}

/// One thing the reconciler decided; `ControllerStore.apply` carries it out and records its event.
public enum ReconcileAction: Sendable, Hashable {
    /// New pending allocations of `version` where the scheduler placed them.
    case place(PlacementDecision, version: Int)
    /// The scheduler's explanation for instances left unplaced (nil: everything fit).
    case placementProblem(app: String, message: String?)
    /// Out of the proxy's routes now; stopped after the drain delay.
    case drain(allocationID: String, reason: String)
    /// Its agent stops it.
    case stop(allocationID: String, reason: String)
    case finishDeployment(id: Int64, app: String, state: Deployment.State, message: String)
    case setVersionState(app: String, version: Int, state: AppVersion.State)
    /// The app runs `to` again (auto-revert).
    case revert(app: String, to: Int)
    /// An app being removed, none of whose instances holds resources any more: its rows go.
    case forget(app: String)
}

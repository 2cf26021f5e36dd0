import ChunkStore
import Compute
import CurlTransport
import Foundation
import Logging
import ServiceLifecycle

/// The agent's main loop: keeps this node's instances equal to the desired state the controller
/// publishes, and tells the controller what runs.
///
/// Three loops run side by side: the desired state, long-polled (a change reaches the agent as soon as
/// the controller makes it, not at the next heartbeat); the heartbeat every `heartbeatSeconds` with
/// the node's usage and every instance's state; and the reports, which send an instance's change the
/// moment the supervisor sees it. The last desired state is saved (`desired.json`), so an agent that
/// restarts while the controller is unreachable adopts or restarts its instances from its own release
/// cache, and instances keep running whatever happens to the controller.
public actor AgentNode {
    public let data: String
    public let identity: AgentIdentity
    let client: ControllerClient
    let supervisor: Supervisor
    let releases: ReleaseStore
    let logger: Logger

    var generation: Int64 = 0
    /// Instances the agent could not start before the supervisor (their bundle failed): their reports.
    var preparationFailures: [String: InstanceReport] = [:]
    var sent: [String: InstanceReport] = [:]
    var servedLogRequests: Set<String> = []
    /// The desired state the supervisor was last given.
    var current: DesiredState?
    var controllerReachable = true

    public init(data: String, identity: AgentIdentity, credential: String, supervisor: Supervisor, logger: Logger) throws {
        self.data = data
        self.identity = identity
        self.client = ControllerClient(base: identity.controller, credential: credential,
                                       trust: PeerTrust(caFile: identity.caFile, pinnedPublicKey: identity.pinnedKey))
        self.supervisor = supervisor
        self.releases = try ReleaseStore(root: data)
        self.logger = logger
    }

    /// Joins the controller at `controller` with the one-use `token`, and saves the identity and
    /// credential in `data`. Refused (a clear error, nothing saved) when the token is used, expired or
    /// wrong, or the name is taken.
    public static func join(controller: String, token: String, name: String, advertise: String?, labels: [String: String],
                            data: String, caFile: String?, pinnedKey: String?) async throws -> AgentIdentity {
        if FileManager.default.fileExists(atPath: AgentIdentity.identityPath(data)) {
            throw StoreError(.alreadyExists, "\(data) already holds a joined agent; start it with a67 agent run --data \(data), "
                + "or remove the folder to join again")
        }
        // The folders above keep the usual modes (instances, under another user, pass through them
        // to their releases); the data folder itself is the agent's (`ReleaseStore` opens it to 0711).
        try FileManager.default.createDirectory(atPath: (data as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let client = ControllerClient(base: controller, credential: nil, trust: PeerTrust(caFile: caFile, pinnedPublicKey: pinnedKey))
        let request = JoinRequest(name: name, advertise: advertise, labels: labels, capacity: HostResources.capacity(data: data),
                                  agentVersion: A67Version.current)
        let answer = try await client.join(token: token, request)
        let identity = AgentIdentity(controller: client.base, nodeID: answer.nodeID, name: name, address: answer.address,
                                     caFile: caFile, pinnedKey: pinnedKey, heartbeatSeconds: answer.heartbeatSeconds)
        try identity.save(data: data, credential: answer.credential)
        return identity
    }

    /// Runs until cancelled or shut down (`Service`). Adopts what the last run left, then follows the
    /// controller.
    public func run() async throws {
        try await cancelWhenGracefulShutdown { try await self.follow() }
    }

    func follow() async throws {
        await supervisor.adopt()
        if let saved = loadDesired() {
            await reconcile(saved, fetching: false)
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await self.followDesired() }
            group.addTask { await self.heartbeats() }
            group.addTask { await self.reports() }
            try await group.next()
            group.cancelAll()
        }
    }

    // MARK: - Loops

    func followDesired() async {
        var pause = Duration.milliseconds(500)
        while !Task.isCancelled {
            do {
                if let state = try await client.desired(after: generation) {
                    reachable()
                    // Any other generation is news: a lower one too (the controller's catalog was
                    // recovered from an older snapshot, and counts from there).
                    if state.generation != generation {
                        generation = state.generation
                        await reconcile(state, fetching: true)
                        saveDesired(state)
                    }
                }
                pause = .milliseconds(500)
            } catch {
                unreachable(error)
                try? await Task.sleep(for: pause)
                pause = min(pause * 2, .seconds(10))
            }
        }
    }

    func heartbeats() async {
        let interval = Duration.milliseconds(Int64(identity.heartbeatSeconds * 1000))
        while !Task.isCancelled {
            do {
                let reply = try await client.heartbeat(Heartbeat(used: HostResources.used(data: data), capacity: HostResources.capacity(data: data),
                                                                 instances: await currentReports(), cachedBundles: releases.held()))
                reachable()
                _ = reply
            } catch {
                unreachable(error)
            }
            try? await Task.sleep(for: interval)
        }
    }

    func reports() async {
        while !Task.isCancelled {
            for report in await currentReports() where sent[report.allocationID] != report {
                do {
                    try await client.report(report)
                    sent[report.allocationID] = report
                } catch let refusal as ControllerRefusal where refusal.status == 404 || refusal.status == 403 {
                    sent[report.allocationID] = report  // no longer this node's: nothing more to say about it
                } catch {
                    break
                }
            }
            try? await Task.sleep(for: .milliseconds(250))
        }
    }

    // MARK: - Reconciling

    /// Makes the supervisor run exactly the instances `state` wants running, fetching their bundles
    /// first (unless `fetching` is false: after a restart without the controller, only what is held).
    func reconcile(_ state: DesiredState, fetching: Bool) async {
        var specs: [InstanceSpec] = []
        var failures: [String: InstanceReport] = [:]
        for instance in state.instances where instance.run {
            do {
                let directory: String
                if fetching {
                    let client = self.client
                    directory = try await releases.release(instance.bundle, app: instance.app, fetch: { try await client.chunk($0) })
                } else {
                    directory = releases.path(of: instance.bundle)
                    guard FileManager.default.fileExists(atPath: directory) else { continue }
                }
                specs.append(InstanceSpec(allocationID: instance.allocationID, app: instance.app, version: instance.version,
                                          manifest: instance.manifest, directory: directory))
            } catch {
                logger.error("cannot prepare \(instance.app) v\(instance.version) (\(instance.allocationID)): \(error)")
                failures[instance.allocationID] = InstanceReport(allocationID: instance.allocationID, state: .failed, healthy: false,
                                                                 port: nil, restarts: 0, exitCode: nil,
                                                                 message: "bundle not ready: \(error)")
            }
        }
        preparationFailures = failures
        current = state
        await supervisor.apply(specs)
        releases.prune(keeping: Set(state.instances.map(\.bundle.sha256)))
        for request in state.logRequests where !servedLogRequests.contains(request.id) {
            servedLogRequests.insert(request.id)
            let bytes = await supervisor.log(allocationID: request.allocationID, tail: request.tail) ?? []
            let client = self.client
            Task { try? await client.postLog(request: request.id, bytes) }
        }
    }

    /// Every instance's report: the supervisor's, the ones whose bundle could not be prepared, and
    /// for each instance the controller wants stopped that the supervisor has finished with (and so
    /// forgotten), "stopped", so that the controller frees its room even when the supervisor's own
    /// "stopped" was never sent (a new desired state came between the stop and the next report).
    func currentReports() async -> [InstanceReport] {
        var reports = await supervisor.reports()
        var known = Set(reports.map(\.allocationID))
        for failure in preparationFailures.values where !known.contains(failure.allocationID) {
            reports.append(failure)
            known.insert(failure.allocationID)
        }
        for instance in current?.instances ?? [] where !instance.run && !known.contains(instance.allocationID) {
            let last = sent[instance.allocationID]
            reports.append(InstanceReport(allocationID: instance.allocationID, state: .stopped, healthy: false, port: last?.port,
                                          restarts: last?.restarts ?? 0, exitCode: last?.exitCode, message: nil))
        }
        return reports.sorted { $0.allocationID < $1.allocationID }
    }

    // MARK: - State

    var desiredPath: String { data + "/desired.json" }

    func loadDesired() -> DesiredState? {
        guard let bytes = try? LocalFile.read(desiredPath, atMost: 16 << 20) else { return nil }
        return try? JSONDecoder().decode(DesiredState.self, from: Data(bytes))
    }

    func saveDesired(_ state: DesiredState) {
        // Grants carry chunk keys: the file is the agent's alone (0600), like the credential.
        guard let bytes = try? JSONEncoder().encode(state) else { return }
        do { try LocalFile.write(Array(bytes), to: desiredPath, mode: 0o600) } catch {
            logger.warning("cannot save the desired state: \(error)")
        }
    }

    func reachable() {
        if !controllerReachable { logger.notice("the controller at \(identity.controller) answers again") }
        controllerReachable = true
    }

    func unreachable(_ error: Error) {
        // The agent stopping (its requests cancelled) is not the controller failing.
        if error is CancellationError || Task.isCancelled { return }
        if controllerReachable {
            logger.warning("the controller does not answer (\(error)); the apps on this node keep running")
        }
        controllerReachable = false
    }
}

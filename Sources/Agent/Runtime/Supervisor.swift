import ChunkStore
import Compute
import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Runs this node's app instances and keeps them running, with no network: the agent tells it what
/// should run (`apply`), asks what runs (`reports`, `log`), and after its own restart has it take
/// back what still runs (`adopt`).
///
/// Each instance is a process group in its own session, started by `ChildProcesses.spawn` with
/// `PORT` (and `PORT_NAME` for the manifest's extra ports) set to free ports from `Options.portRange`,
/// the manifest's environment, its argv, its bundle's folder as working directory, no core files, an
/// open-file limit, its cgroup (memory and CPU, where the agent may write them) joined before exec, and
/// an unprivileged uid when the agent is root. Its stdout and stderr go to a bounded log under
/// dataDirectory/logs. When it exits it is started again after a `RestartBackoff` wait; when it is no
/// longer desired its group gets the manifest's stop signal, then SIGKILL after the grace.
///
/// One task drives everything (no thread per instance): every `Options.pollInterval` it reaps exited
/// children (`waitpid` without blocking), polls adopted processes (not children: their liveness is read
/// from /proc), starts instances whose backoff is over, kills groups whose grace is over, launches due
/// health checks and rotates logs. Health checks run beside it, their results fed back to the actor.
///
/// State files under dataDirectory/instances (`InstanceRecord`) name each process by pid and start
/// time, so that `adopt` after a kill -9 of the agent re-attaches to live groups and restarts the rest.
public actor Supervisor {
    /// How the supervisor runs instances; the defaults suit a node, tests shorten the times.
    public struct Options: Sendable {
        /// Where instance ports come from.
        public var portRange: ClosedRange<Int>
        /// The waits between restarts.
        public var backoff: RestartBackoff
        /// How often the supervisor looks at its instances: how late it may notice an exit.
        public var pollInterval: Duration
        /// A log file's size before it is rotated (one older file is kept).
        public var logLimitBytes: Int
        /// Which user instances run as.
        public var runAs: RunAs
        /// Whether to put instances in cgroups with their memory and CPU limits (when the machine has
        /// cgroups the agent may write); `.none` runs them without.
        public var cgroups: CgroupHierarchy?
        /// RLIMIT_NOFILE of each instance.
        public var openFileLimit: UInt64
        /// PATH of each instance (unless its manifest sets one), and where a bare program is looked up.
        public var searchPath: String

        /// `cgroups: nil` means the machine's own (`CgroupHierarchy.detectHere()`).
        public init(portRange: ClosedRange<Int> = 20000...29999, backoff: RestartBackoff = RestartBackoff(),
                    pollInterval: Duration = .milliseconds(250), logLimitBytes: Int = 512 << 10, runAs: RunAs = .automatic,
                    cgroups: CgroupHierarchy? = nil, openFileLimit: UInt64 = 4096,
                    searchPath: String = "/usr/local/bin:/usr/bin:/bin") {
            self.portRange = portRange
            self.backoff = backoff
            self.pollInterval = pollInterval
            self.logLimitBytes = logLimitBytes
            self.runAs = runAs
            self.cgroups = cgroups
            self.openFileLimit = openFileLimit
            self.searchPath = searchPath
        }
    }

    /// A process of an instance: one this supervisor started (a child, reaped with `waitpid`), or one
    /// it adopted (not a child: its liveness is polled).
    struct Running {
        var identity: ProcessIdentity
        var isChild: Bool
        var startedAt: Duration
    }

    /// Everything the supervisor knows of one instance. A class, so that the step loop can change
    /// an instance in place; only the actor touches it.
    final class Managed {
        var spec: InstanceSpec
        var desired = true
        var state: Allocation.State = .pending
        var process: Running?
        /// The process group of the last process (its leader's pid), which may outlive the leader.
        var group: Int32?
        var ports: [Int] = []
        var restarts = 0
        var hasRun = false
        var exitCode: Int32?
        /// Why it is not running or not healthy.
        var message: String?
        /// What holds while it runs (limits not enforced), said in the report when nothing else is.
        var note: String?
        var backoff: RestartBackoff
        var health: HealthTracker
        var healthySince: Duration?
        var startAt: Duration?
        var nextCheckAt: Duration?
        var checking = false
        var stopDeadline: Duration?
        var killed = false
        /// Counts starts, so that a check result of an earlier run is ignored.
        var run = 0
        /// The backoff waits chosen, oldest first (the last 16): the crash loop's record.
        var waits: [Duration] = []
        var cgroup: CgroupPlan?
        let log: InstanceLog

        init(spec: InstanceSpec, backoff: RestartBackoff, log: InstanceLog) {
            self.spec = spec
            self.backoff = backoff
            self.health = HealthTracker(check: spec.manifest.health)
            self.log = log
        }
    }

    public let dataDirectory: String
    let logger: Logger
    let clock: RuntimeClock
    let options: Options
    let hierarchy: CgroupHierarchy
    let user: (uid: UInt32, gid: UInt32)?
    var picker: PortPicker
    var instances: [String: Managed] = [:]
    var loop: Task<Void, Never>?
    var nextLogCheck: Duration = .zero
    /// Blocking socket probes (health checks) run here, off the cooperative threads: two threads for
    /// the whole process, started at the first probe (a pool's threads live as long as the process).
    static let probePool = BlockingIOPool(threads: 2, queueLimit: 64)
    var instancesFolder: String { dataDirectory + "/instances" }
    var logsFolder: String { dataDirectory + "/logs" }

    /// A supervisor keeping its state files under `dataDirectory/instances` and logs under
    /// `dataDirectory/logs` (both created). It does nothing until `apply` or `adopt`.
    public init(dataDirectory: String, logger: Logger = Logger(label: "a67.agent"), clock: RuntimeClock = RuntimeClock(ContinuousClock()),
                options: Options = Options()) {
        self.dataDirectory = dataDirectory
        self.logger = logger
        self.clock = clock
        self.options = options
        hierarchy = options.cgroups ?? CgroupHierarchy.detectHere()
        let passwd = (try? String(contentsOfFile: "/etc/passwd", encoding: .utf8)) ?? ""
        user = options.runAs.ids(agentUID: getuid(), passwd: passwd)
        picker = PortPicker(range: options.portRange)
        // Only the agent reads them: a manifest's environment may hold an app's secrets, a log its output.
        for folder in [dataDirectory + "/instances", dataDirectory + "/logs"] {
            try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            try? FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: folder)
        }
    }

    // MARK: - What the agent calls

    /// Makes the running instances match `desired`: starts those not running yet, stops (the stop
    /// signal to the group, the grace, then SIGKILL of the group) those not in it. An instance stopped
    /// earlier and absent again is forgotten. Returns once every start was attempted; stops finish in
    /// the background (`reports` shows them `stopping`, then `stopped`).
    public func apply(_ desired: [InstanceSpec]) {
        let wanted = Dictionary(desired.map { ($0.allocationID, $0) }, uniquingKeysWith: { first, _ in first })
        for (id, managed) in instances where wanted[id] == nil {
            if managed.state == .stopped || (managed.state == .failed && managed.process == nil) {
                forget(managed)
            } else if managed.desired {
                managed.desired = false
                beginStop(managed)
            }
        }
        for spec in desired {
            if let managed = instances[spec.allocationID] {
                // The same allocation with a changed spec takes effect at its next start (at once for
                // one that had failed: the change may be its fix).
                let changed = managed.spec != spec
                managed.spec = spec
                if !managed.desired {
                    // Wanted again: started once its stop has finished (`finishStop`).
                    managed.desired = true
                    if managed.state == .stopped { start(managed) }
                } else if changed && managed.state == .failed && managed.process == nil {
                    start(managed)
                }
                continue
            }
            let managed = Managed(spec: spec, backoff: options.backoff,
                                  log: InstanceLog(path: logsFolder + "/" + spec.allocationID, limit: options.logLimitBytes))
            instances[spec.allocationID] = managed
            start(managed)
        }
        ensureLoop()
    }

    /// What every known instance is doing: desired ones, and stopped ones until the next `apply`
    /// that leaves them out. Sorted by allocation ID.
    public func reports() -> [InstanceReport] {
        instances.values.sorted { $0.spec.allocationID < $1.spec.allocationID }.map(report)
    }

    /// The last `tail` lines of the instance's log (its output and the agent's lines about it), or
    /// nil when the supervisor knows no such instance and there is no log of it.
    public func log(allocationID: String, tail: Int) -> [UInt8]? {
        let log = instances[allocationID]?.log ?? InstanceLog(path: logsFolder + "/" + allocationID, limit: options.logLimitBytes)
        guard instances[allocationID] != nil || FileManager.default.fileExists(atPath: log.path) else { return nil }
        return log.tail(tail)
    }

    /// After the agent's own restart: takes back every instance its state files name. A process that
    /// still runs (same pid, same start time) is adopted and supervised by polling, since it is not
    /// this process's child; the others are started again (counted as restarts). Instances already
    /// known are left alone.
    public func adopt() {
        let (records, unreadable) = InstanceRecord.readAll(in: instancesFolder)
        for problem in unreadable { logger.warning("skipping an unreadable instance state file: \(problem)") }
        let now = clock.now()
        for record in records where instances[record.spec.allocationID] == nil {
            let spec = record.spec
            let managed = Managed(spec: spec, backoff: options.backoff,
                                  log: InstanceLog(path: logsFolder + "/" + spec.allocationID, limit: options.logLimitBytes))
            managed.ports = record.ports
            managed.restarts = record.restarts
            managed.hasRun = true
            managed.cgroup = CgroupPlan.make(hierarchy, allocationID: spec.allocationID, memoryBytes: spec.manifest.resources.memoryBytes,
                                             cpuMillis: spec.manifest.resources.cpuMillis)
            instances[spec.allocationID] = managed
            if let pid = record.pid, let ticks = record.startTicks, ProcessIdentity(pid: pid, startTicks: ticks).isAlive {
                managed.process = Running(identity: ProcessIdentity(pid: pid, startTicks: ticks), isChild: false, startedAt: now)
                managed.group = pid
                managed.state = managed.health.healthy ? .running : .starting
                managed.healthySince = managed.health.healthy ? now : nil
                managed.nextCheckAt = now
                managed.log.note("adopted pid \(pid) after the agent restarted")
                logger.info("agent: adopted a running instance", metadata: ["allocation": "\(spec.allocationID)", "pid": "\(pid)"])
            } else {
                managed.log.note("not running after the agent restarted; starting it again")
                start(managed)
            }
        }
        ensureLoop()
    }

    /// The agent is exiting. By default its instances keep running (each in its own session, so the
    /// agent's end does not reach them) and the next agent adopts them; with `stopInstances` each
    /// is stopped (signal, grace, SIGKILL) and this returns once all are. When the calling task is
    /// cancelled meanwhile, the grace ends at once: every group still there gets SIGKILL.
    public func shutdown(stopInstances: Bool = false) async {
        loop?.cancel()
        loop = nil
        guard stopInstances else { return }
        for managed in instances.values where managed.desired {
            managed.desired = false
            beginStop(managed)
        }
        while instances.values.contains(where: { $0.state == .stopping }) {
            step()
            do {
                try await clock.sleep(options.pollInterval)
            } catch {
                for managed in instances.values where managed.state == .stopping {
                    managed.stopDeadline = clock.now()
                }
                await Task.yield()
            }
        }
    }

    // MARK: - The loop

    private func ensureLoop() {
        guard loop == nil else { return }
        let interval = options.pollInterval
        let clock = clock
        loop = Task { [weak self] in
            while !Task.isCancelled {
                guard let self else { return }
                await self.step()
                try? await clock.sleep(interval)
            }
        }
    }

    /// One look at every instance: reap, restart, kill, check, rotate.
    func step() {
        let now = clock.now()
        let rotate = now >= nextLogCheck
        if rotate { nextLogCheck = now + .seconds(1) }
        for managed in instances.values {
            if let running = managed.process, let exit = ended(running) {
                exited(managed, exit, at: now)
            }
            if managed.state == .stopping { continueStop(managed, at: now) }
            if managed.desired, managed.process == nil, let at = managed.startAt, now >= at { start(managed) }
            if managed.process != nil, managed.state != .stopping, !managed.checking, let at = managed.nextCheckAt, now >= at {
                launchCheck(managed)
            }
            if rotate { managed.log.rotateIfNeeded() }
        }
    }

    /// How a process ended, if it has: `.some(nil)` when it is gone but not our child (no status).
    private func ended(_ running: Running) -> ChildExit?? {
        if running.isChild { return ChildProcesses.reap(running.identity.pid).map { .some($0) } }
        return running.identity.isAlive ? nil : .some(nil)
    }

    private func exited(_ managed: Managed, _ exit: ChildExit?, at now: Duration) {
        let running = managed.process!
        managed.process = nil
        managed.exitCode = exit?.code
        let what = exit?.description ?? "exited (its status is unknown: it was adopted, not started by this agent)"
        managed.log.note("pid \(running.identity.pid) \(what)")
        guard managed.desired, managed.state != .stopping else { return }
        // What the leader started goes with it: the next run gets a clean group and free ports.
        ChildProcesses.signalGroup(running.identity.pid, SIGKILL)
        let healthyFor = managed.healthySince.map { now - $0 } ?? .zero
        let wait = managed.backoff.delay(afterHealthyFor: healthyFor)
        managed.waits = Array((managed.waits + [wait]).suffix(16))
        managed.startAt = now + wait
        managed.state = .pending
        managed.healthySince = nil
        managed.health = HealthTracker(check: managed.spec.manifest.health)
        managed.message = "\(what); restarting in \(Self.words(wait))"
        logger.notice("instance \(managed.spec.allocationID) of \(managed.spec.app) \(what); restarting in \(Self.words(wait))")
    }

    // MARK: - Starting

    private func start(_ managed: Managed) {
        let spec = managed.spec
        let now = clock.now()
        managed.startAt = nil
        guard Self.isSafeName(spec.allocationID) else {
            return fail(managed, "the allocation ID \(spec.allocationID) cannot name a file (it must not hold '/' or start with '.')")
        }
        guard let ports = ports(for: managed) else {
            return retry(managed, "no free port in \(options.portRange.lowerBound)-\(options.portRange.upperBound)", at: now)
        }
        managed.ports = ports
        let environment = Self.environment(of: spec.manifest, ports: ports, searchPath: options.searchPath, home: spec.directory)
        let searchPath = spec.manifest.environment["PATH"] ?? options.searchPath
        let name = spec.manifest.command.first ?? ""
        guard let program = ChildProcesses.resolve(name, in: spec.directory, searchPath: searchPath) else {
            let looked = name.contains("/") ? "in \(spec.directory)" : "on PATH \(searchPath)"
            return fail(managed, "command not found: \(name) (no executable file \(looked)); fix `command` in \(AppManifest.fileName)")
        }
        if managed.cgroup == nil || !managed.hasRun {
            managed.cgroup = CgroupPlan.make(hierarchy, allocationID: spec.allocationID, memoryBytes: spec.manifest.resources.memoryBytes,
                                             cpuMillis: spec.manifest.resources.cpuMillis)
        }
        var procFiles: [String] = []
        if let plan = managed.cgroup {
            do {
                try plan.apply()
                procFiles = plan.procFiles
                managed.note = nil
            } catch {
                if managed.note == nil {
                    logger.warning("running instance \(spec.allocationID) of \(spec.app) without its limits: \(error)")
                }
                managed.note = error.description
                managed.cgroup = nil
            }
        }
        let request = SpawnRequest(
            executable: program, arguments: spec.manifest.command, environment: environment.map { $0.key + "=" + $0.value }.sorted(),
            directory: spec.directory, outputPath: managed.log.path, newSession: true, cgroupProcFiles: procFiles, user: user,
            openFileLimit: options.openFileLimit, noCoreFiles: true)
        let pid: Int32
        do {
            pid = try ChildProcesses.spawn(request)
        } catch {
            if error.isPermanent { return fail(managed, error.description) }
            return retry(managed, error.description, at: now)
        }
        if managed.hasRun { managed.restarts += 1 }
        managed.hasRun = true
        managed.run += 1
        let identity = ProcessIdentity.of(pid) ?? ProcessIdentity(pid: pid, startTicks: 0)
        managed.process = Running(identity: identity, isChild: true, startedAt: now)
        managed.group = pid
        managed.health = HealthTracker(check: spec.manifest.health)
        managed.healthySince = managed.health.healthy ? now : nil
        managed.state = managed.health.healthy ? .running : .starting
        managed.message = nil
        managed.checking = false
        managed.nextCheckAt = spec.manifest.health.probe == .running ? nil : now
        managed.log.note("started pid \(pid) on port \(ports[0]): \(spec.manifest.command.joined(separator: " "))")
        saveRecord(managed)
    }

    /// The instance's ports: the ones it had while they are still free, else new ones.
    private func ports(for managed: Managed) -> [Int]? {
        let count = 1 + managed.spec.manifest.ports.count
        let taken = Set(instances.values.filter { $0 !== managed && $0.state.holdsResources }.flatMap(\.ports))
        if managed.ports.count == count, managed.ports.allSatisfy({ !taken.contains($0) && LocalSockets.isPortFree($0) }) {
            return managed.ports
        }
        return picker.pick(count, taken: taken, isFree: LocalSockets.isPortFree)
    }

    /// A start that cannot succeed as things are (a missing program): the instance is failed, not
    /// retried; the controller sees why.
    private func fail(_ managed: Managed, _ why: String) {
        managed.state = .failed
        managed.message = why
        managed.process = nil
        // Nothing runs in its cgroup (the child failed before exec): removed, not left behind.
        managed.cgroup?.remove()
        managed.cgroup = nil
        managed.log.note(why)
        logger.error("instance \(managed.spec.allocationID) of \(managed.spec.app) failed: \(why)")
    }

    /// A start that may succeed later: tried again after the backoff.
    private func retry(_ managed: Managed, _ why: String, at now: Duration) {
        let wait = managed.backoff.delay(afterHealthyFor: .zero)
        managed.waits = Array((managed.waits + [wait]).suffix(16))
        managed.startAt = now + wait
        managed.state = .pending
        managed.message = "\(why); trying again in \(Self.words(wait))"
        managed.log.note(managed.message!)
    }

    // MARK: - Stopping

    private func beginStop(_ managed: Managed) {
        managed.startAt = nil
        guard let running = managed.process else {
            finishStop(managed)
            return
        }
        managed.state = .stopping
        managed.message = nil
        managed.killed = false
        managed.stopDeadline = clock.now() + managed.spec.manifest.stopGrace
        managed.log.note("stopping pid \(running.identity.pid) (signal \(managed.spec.manifest.stopSignal))")
        ChildProcesses.signalGroup(running.identity.pid, managed.spec.manifest.stopSignal)
    }

    /// Stopped once the leader is gone and either its whole group is, or the group got SIGKILL (which
    /// no process ignores; a killed orphan may linger as a zombie until init reaps it).
    private func continueStop(_ managed: Managed, at now: Duration) {
        let group = managed.group
        let groupLeft = group.map(ChildProcesses.groupExists) ?? false
        if managed.process == nil && (!groupLeft || managed.killed) {
            finishStop(managed)
            return
        }
        if let deadline = managed.stopDeadline, now >= deadline, !managed.killed, let group {
            managed.killed = true
            managed.log.note("still running \(Self.words(managed.spec.manifest.stopGrace)) after the stop signal: SIGKILL to its group")
            ChildProcesses.signalGroup(group, SIGKILL)
        }
    }

    private func finishStop(_ managed: Managed) {
        managed.state = .stopped
        managed.process = nil
        managed.checking = false
        managed.healthySince = nil
        managed.health = HealthTracker(check: managed.spec.manifest.health)
        managed.cgroup?.remove()
        try? FileManager.default.removeItem(atPath: InstanceRecord.path(in: instancesFolder, allocationID: managed.spec.allocationID))
        managed.log.note("stopped")
        if managed.desired { start(managed) }
    }

    private func forget(_ managed: Managed) {
        if managed.process == nil { managed.cgroup?.remove() }
        instances[managed.spec.allocationID] = nil
    }

    // MARK: - Health checks

    private func launchCheck(_ managed: Managed) {
        guard managed.process != nil else { return }
        managed.checking = true
        let id = managed.spec.allocationID
        let run = managed.run
        let check = managed.spec.manifest.health
        let port = managed.ports.first
        let context = HealthProbe.ExecContext(
            directory: managed.spec.directory,
            environment: Self.environment(of: managed.spec.manifest, ports: managed.ports, searchPath: options.searchPath,
                                          home: managed.spec.directory).map { $0.key + "=" + $0.value }.sorted(),
            searchPath: managed.spec.manifest.environment["PATH"] ?? options.searchPath, user: user)
        let pool = Self.probePool
        let clock = clock
        Task { [weak self] in
            let outcome = await HealthProbe.run(check.probe, port: port, timeout: min(check.timeout, check.interval), exec: context,
                                                pool: pool, clock: clock)
            await self?.checked(id, run: run, outcome)
        }
    }

    private func checked(_ id: String, run: Int, _ outcome: HealthProbe.Outcome) {
        guard let managed = instances[id], managed.run == run else { return }
        managed.checking = false
        guard let running = managed.process, managed.state != .stopping else { return }
        let now = clock.now()
        let check = managed.spec.manifest.health
        managed.health.record(passed: outcome.passed, sinceStart: now - running.startedAt)
        if managed.health.healthy {
            if managed.healthySince == nil { managed.healthySince = now }
            managed.state = .running
            managed.message = nil
        } else {
            if managed.healthySince != nil { managed.log.note("unhealthy: \(outcome.detail ?? "")") }
            managed.healthySince = nil
            if let detail = outcome.detail { managed.message = "health check failing: \(detail)" }
        }
        // Until it is first healthy, check at least every second: a deploy waits on it.
        let interval = managed.health.healthy || managed.state == .running ? check.interval : min(check.interval, .seconds(1))
        managed.nextCheckAt = now + interval
    }

    // MARK: - Values

    private func report(_ managed: Managed) -> InstanceReport {
        InstanceReport(allocationID: managed.spec.allocationID, state: managed.state,
                       healthy: managed.process != nil && managed.state != .stopping && managed.health.healthy,
                       port: managed.ports.first, restarts: managed.restarts, exitCode: managed.exitCode,
                       message: managed.message ?? (managed.process != nil ? managed.note : nil))
    }

    private func saveRecord(_ managed: Managed) {
        let record = InstanceRecord(spec: managed.spec, pid: managed.process?.identity.pid, startTicks: managed.process?.identity.startTicks,
                                    ports: managed.ports, restarts: managed.restarts)
        do {
            try record.write(in: instancesFolder)
        } catch {
            logger.error("could not write the state file of instance \(managed.spec.allocationID) (\(error)); it will not be adopted after a restart")
        }
    }

    /// The backoff waits chosen for an instance so far (oldest first, at most 16): for tests and status.
    func waits(_ allocationID: String) -> [Duration] { instances[allocationID]?.waits ?? [] }

    /// The pid of an instance's process, while it has one.
    func pid(_ allocationID: String) -> Int32? { instances[allocationID]?.process?.identity.pid }

    /// The environment of an instance: a clean one (nothing of the agent's, which may hold its
    /// credential), PATH, HOME (its folder), LANG, the manifest's variables, then `PORT` and
    /// `PORT_NAME` for each extra port, which the manifest may not set.
    static func environment(of manifest: AppManifest, ports: [Int], searchPath: String, home: String) -> [String: String] {
        var environment = ["PATH": searchPath, "HOME": home, "LANG": "C.UTF-8"]
        environment.merge(manifest.environment) { _, new in new }
        if let main = ports.first { environment[AgentProtocol.portVariable] = String(main) }
        for (name, port) in zip(manifest.ports, ports.dropFirst()) {
            environment[AgentProtocol.portVariable + "_" + name.uppercased().replacingOccurrences(of: "-", with: "_")] = String(port)
        }
        return environment
    }

    static func isSafeName(_ id: String) -> Bool {
        !id.isEmpty && !id.hasPrefix(".") && !id.contains("/") && !id.contains("\0")
    }

    /// "4 s", "250 ms".
    static func words(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        if attoseconds == 0 { return "\(seconds) s" }
        return "\(seconds * 1000 + attoseconds / 1_000_000_000_000_000) ms"
    }
}

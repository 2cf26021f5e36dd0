/// What an app asks for, read from the `a67app.toml` at the top of its folder: what to run, how to
/// tell it is healthy, how many instances on which nodes with what resources, how to roll out a new
/// version and how to stop it. `AppManifest(toml:file:)` reads it (AppManifest+Decoding.swift); the
/// controller keeps it with each version as JSON (`Codable`; durations as milliseconds).
///
/// ```toml
/// name = "web"                            # required: web.apps.DOMAIN
/// command = ["python3", "server.py"]      # required: argv; or a string with shell = true
/// instances = 2
/// env = { GREETING = "hi" }
/// ports = ["metrics"]                     # extra ports: PORT_METRICS
/// stop_signal = "SIGTERM"
/// stop_grace = "10s"
/// [health]
/// http = "/health"                        # or tcp = true, or exec = ["./check"]
/// interval = "2s"
/// [resources]
/// memory = "128M"
/// cpu = 0.5
/// [constraints]
/// labels = { region = "eu" }              # or ["region=eu", "disk!=hdd"]
/// distinct_nodes = true
/// [update]
/// max_parallel = 1
/// auto_revert = true
/// ```
/// Every key but `name` and `command` has a default, given with its property below.
public struct AppManifest: Sendable, Equatable, Codable {
    /// The manifest's file name in an app's folder.
    public static let fileName = "a67app.toml"

    /// The app's name, a DNS label (lowercase letters, digits and `-`, 1 to 63, no `-` at either end),
    /// because requests reach it as `NAME.apps.DOMAIN`; also its folder on nodes and its path prefix
    /// `/apps/NAME/`. Required.
    public var name: String

    /// The argv the agent executes in the unpacked bundle's folder (a relative program like
    /// `./server` is found there, a bare one on PATH). Never a shell string, so arguments need no
    /// quoting: with `shell = true` the manifest's string becomes `["/bin/sh", "-c", STRING]`.
    /// Required.
    public var command: [String]

    /// Environment variables the instance gets, besides `PORT` and `PORT_NAME` (which the agent
    /// sets, so the manifest may not). Default: none.
    public var environment: [String: String]

    /// Names of extra ports each instance listens on, beside the main one: the agent assigns each a
    /// free port and passes it as `PORT_NAME` (`metrics` -> `PORT_METRICS`). The main port is always
    /// assigned and passed as `PORT`; requests and http/tcp health checks go to it. Default: none.
    public var ports: [String]

    /// How the agent tells an instance is healthy. Default: `HealthCheck()` (healthy while running).
    public var health: HealthCheck

    /// How many instances to run. Default: 1.
    public var instances: Int

    /// What each instance may use; the scheduler places by it and the agent enforces memory and CPU
    /// (cgroups, where it may). `diskBytes` is space beyond the bundle. Default:
    /// `AppManifest.defaultResources` (128 MiB, a quarter of a core, no extra disk).
    public var resources: Resources

    /// Conditions on node labels every instance's node must meet. Default: none.
    public var constraints: [Constraint]

    /// Whether no two instances may share a node (a deploy waits for enough nodes rather than stack
    /// them). The scheduler spreads instances anyway when it can; this makes it a rule. Default: false.
    public var distinctNodes: Bool

    /// How a new version replaces the running one. Default: `UpdatePolicy()`.
    public var update: UpdatePolicy

    /// The signal (its Linux number) that asks an instance to stop; its process group gets SIGKILL
    /// when it has not exited `stopGrace` later. Written by name (`"SIGTERM"` or `"TERM"`).
    /// Default: SIGTERM (15).
    public var stopSignal: Int32

    /// How long an instance has to exit after the stop signal. Default: 10 s.
    @MillisecondsCoded public var stopGrace: Duration

    /// 128 MiB of memory and a quarter of a core: enough for a small web app in Python or Node,
    /// little enough that a 1 GiB free VM takes several.
    public static let defaultResources = Resources(memoryBytes: 128 << 20, cpuMillis: 250)

    public init(
        name: String, command: [String], environment: [String: String] = [:], ports: [String] = [],
        health: HealthCheck = HealthCheck(), instances: Int = 1, resources: Resources = AppManifest.defaultResources,
        constraints: [Constraint] = [], distinctNodes: Bool = false, update: UpdatePolicy = UpdatePolicy(),
        stopSignal: Int32 = StopSignal.term.number, stopGrace: Duration = .seconds(10)
    ) {
        self.name = name
        self.command = command
        self.environment = environment
        self.ports = ports
        self.health = health
        self.instances = instances
        self.resources = resources
        self.constraints = constraints
        self.distinctNodes = distinctNodes
        self.update = update
        self.stopSignal = stopSignal
        self.stopGrace = stopGrace
    }
}

/// The `[health]` table: which check, and how often and how patiently it runs. An instance is healthy
/// after `healthyThreshold` passing checks in a row, unhealthy after `unhealthyThreshold` failing
/// ones; failures within `grace` of its start do not count (a slow start is not a failure).
public struct HealthCheck: Sendable, Equatable, Codable {
    public enum Probe: Sendable, Equatable, Codable {
        /// No check (no `[health]` table): healthy while its process runs.
        case running
        /// `http = "/health"`: a GET of the path on the instance's `PORT` answers `status`, or any
        /// 2xx when `status` is nil (`status = 204` in the table).
        case http(path: String, status: Int?)
        /// `tcp = true`: a connection to the instance's `PORT` is accepted.
        case tcp
        /// `exec = ["./check", "--quick"]`: the program, run in the bundle's folder with the
        /// instance's environment, exits 0.
        case exec(argv: [String])
    }

    /// Default: `.running`.
    public var probe: Probe
    /// Time between the starts of two checks. Default: 5 s.
    @MillisecondsCoded public var interval: Duration
    /// How long one check may take before it counts as failed; at most `interval`. Default: 2 s.
    @MillisecondsCoded public var timeout: Duration
    /// Passing checks in a row that make an instance healthy. Default: 1.
    public var healthyThreshold: Int
    /// Failing checks in a row that make it unhealthy. Default: 3.
    public var unhealthyThreshold: Int
    /// Time after the instance starts during which failing checks do not count. Default: 10 s.
    @MillisecondsCoded public var grace: Duration

    public init(
        probe: Probe = .running, interval: Duration = .seconds(5), timeout: Duration = .seconds(2),
        healthyThreshold: Int = 1, unhealthyThreshold: Int = 3, grace: Duration = .seconds(10)
    ) {
        self.probe = probe
        self.interval = interval
        self.timeout = timeout
        self.healthyThreshold = healthyThreshold
        self.unhealthyThreshold = unhealthyThreshold
        self.grace = grace
    }
}

/// The `[update]` table: how a deploy replaces running instances with a new version's.
public struct UpdatePolicy: Sendable, Equatable, Codable {
    /// Instances replaced at once. Default: 1.
    public var maxParallel: Int
    /// How long a new instance must stay healthy before it counts and the next ones are replaced.
    /// Default: 10 s.
    @MillisecondsCoded public var minHealthyTime: Duration
    /// How long a new instance has, from its start, to become healthy for `minHealthyTime`; past it,
    /// the deploy has failed. More than `minHealthyTime`. Default: 5 min.
    @MillisecondsCoded public var healthyDeadline: Duration
    /// Whether a failed deploy goes back to the last version that was healthy by itself. Default: true
    /// (what `a67 app deploy` promises: a bad version does not stay).
    public var autoRevert: Bool

    public init(maxParallel: Int = 1, minHealthyTime: Duration = .seconds(10), healthyDeadline: Duration = .seconds(300), autoRevert: Bool = true) {
        self.maxParallel = maxParallel
        self.minHealthyTime = minHealthyTime
        self.healthyDeadline = healthyDeadline
        self.autoRevert = autoRevert
    }
}

/// Codes a `Duration` as whole milliseconds (`"interval": 2000`), so a stored manifest reads plainly
/// as JSON and does not depend on `Duration`'s own two-integer coding. A manifest's durations are whole
/// milliseconds (`AppManifest(toml:)` refuses finer ones).
@propertyWrapper
public struct MillisecondsCoded: Sendable, Hashable, Codable {
    public var wrappedValue: Duration

    public init(wrappedValue: Duration) {
        self.wrappedValue = wrappedValue
    }

    public init(from decoder: any Decoder) throws {
        wrappedValue = .milliseconds(try decoder.singleValueContainer().decode(Int64.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        let (seconds, attoseconds) = wrappedValue.components
        try container.encode(seconds * 1000 + attoseconds / 1_000_000_000_000_000)
    }
}

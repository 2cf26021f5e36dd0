import ChunkStore

extension AppManifest {
    /// Reads an `a67app.toml`. `file` names it in errors (the path as the user gave it).
    ///
    /// Throws `StoreError(.invalidArgument)` for anything but a complete, valid manifest: TOML it
    /// cannot read, an unknown key (the message lists the known ones), a value of the wrong type or out
    /// of range, a missing `name` or `command`. Each message names the file, the line and the key, and
    /// says what to write: `a67app.toml:7: [health] interval "fast" is not a duration: write like 2s,
    /// 500ms or 1m`.
    public init(toml text: String, file: String = AppManifest.fileName) throws {
        let document = try TOMLReader.parse(text, file: file)
        let top = try ManifestTable(document, file: file, name: nil, line: 1, known: [
            "name", "command", "shell", "env", "ports", "instances", "health", "resources", "constraints",
            "update", "stop_signal", "stop_grace",
        ])

        guard let nameField = top["name"] else {
            throw top.missing("name", "add a line like name = \"web\" (the app is then reached as web.apps.DOMAIN)")
        }
        let name = try nameField.string("the app's name in quotes, like \"web\"")
        guard AppManifest.isDNSLabel(name) else {
            throw nameField.fail("\(TOMLReader.quoted(name)) cannot be an app's name: it becomes NAME.apps.DOMAIN, so use 1 to 63 lowercase letters, digits and -, not starting or ending with -")
        }
        let ports = try top["ports"].map(AppManifest.ports) ?? []
        self.init(name: name, command: try AppManifest.command(top))
        self.ports = ports
        environment = try top["env"].map { try AppManifest.environment($0, ports: ports) } ?? [:]
        instances = try top["instances"]?.integer(in: 1...1000) ?? instances
        if let field = top["health"] { health = try HealthCheck(field.table(named: "health", known: HealthCheck.keys)) }
        if let field = top["resources"] { resources = try AppManifest.resources(field.table(named: "resources", known: ["memory", "cpu", "disk"])) }
        if let field = top["constraints"] {
            let table = try field.table(named: "constraints", known: ["labels", "distinct_nodes"])
            constraints = try table["labels"].map(AppManifest.constraints) ?? []
            distinctNodes = try table["distinct_nodes"]?.bool() ?? false
        }
        if let field = top["update"] { update = try UpdatePolicy(field.table(named: "update", known: UpdatePolicy.keys)) }
        if let field = top["stop_signal"] {
            let text = try field.string("a signal's name in quotes, like \"SIGTERM\"")
            guard let signal = StopSignal(name: text) else {
                throw field.fail("\(TOMLReader.quoted(text)) is not a signal an app can be stopped with: use one of \(StopSignal.allCases.map(\.rawValue).joined(separator: ", ")) (TERM works as SIGTERM)")
            }
            stopSignal = signal.number
        }
        stopGrace = try top["stop_grace"]?.duration(in: .zero ... .seconds(3600)) ?? stopGrace
    }

    /// 1 to 63 lowercase letters, digits and `-`, not starting or ending with `-` (RFC 1123).
    public static func isDNSLabel(_ name: String) -> Bool {
        name.wholeMatch(of: /[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?/) != nil
    }

    /// `command` (an argv array), or with `shell = true` one string run by /bin/sh -c.
    private static func command(_ top: ManifestTable) throws -> [String] {
        let shell = try top["shell"]?.bool() ?? false
        guard let field = top["command"] else {
            throw top.missing("command", shell
                ? "add a line like command = \"python3 server.py\" (run by /bin/sh -c)"
                : "add a line like command = [\"python3\", \"server.py\"] (the program and its arguments)")
        }
        if shell {
            let script = try field.string("one string when shell = true (it runs as /bin/sh -c \"…\")")
            guard !script.allSatisfy(\.isWhitespace) else { throw field.fail("is empty: write the shell command to run") }
            try checkNoNUL(script, field)
            return ["/bin/sh", "-c", script]
        }
        if case .string = field.value.kind {
            throw field.fail("is a string: write it as an argv array like [\"python3\", \"server.py\"], or add shell = true to run it with /bin/sh -c")
        }
        let elements = try field.array("an argv array like [\"python3\", \"server.py\"]")
        let argv = try elements.map { element in
            let argument = try element.string("a string")
            try checkNoNUL(argument, element)
            return argument
        }
        guard let program = argv.first else { throw field.fail("is empty: name the program to run, like [\"python3\", \"server.py\"]") }
        guard !program.isEmpty else { throw elements[0].fail("is empty: name the program to run") }
        return argv
    }

    /// `ports = ["metrics"]`: names the agent turns into PORT_METRICS.
    private static func ports(_ field: ManifestField) throws -> [String] {
        var names: [String] = []
        for element in try field.array("an array of port names, like [\"metrics\"]") {
            let name = try element.string("a port's name in quotes, like \"metrics\"")
            guard name.wholeMatch(of: /[a-z][a-z0-9_]{0,31}/) != nil else {
                throw element.fail("\(TOMLReader.quoted(name)) cannot be a port's name: use 1 to 32 lowercase letters, digits and _, starting with a letter (the app reads it as PORT_\(name.uppercased()))")
            }
            guard !names.contains(name) else { throw element.fail("\(TOMLReader.quoted(name)) is named twice: name each port once") }
            names.append(name)
        }
        guard names.count <= 16 else { throw field.fail("names \(names.count) ports: at most 16") }
        return names
    }

    /// `env = { GREETING = "hi" }` or `[env]`: string values, names the shell accepts, and not the
    /// ports' variables, which the agent sets.
    private static func environment(_ field: ManifestField, ports: [String]) throws -> [String: String] {
        let table = try field.table(named: "env", known: nil)
        let reserved = ["PORT"] + ports.map { "PORT_" + $0.uppercased() }
        var environment: [String: String] = [:]
        for (key, value) in table.fields {
            guard key.wholeMatch(of: /[A-Za-z_][A-Za-z0-9_]*/) != nil else {
                throw value.fail("cannot be an environment variable's name: use letters, digits and _, not starting with a digit")
            }
            guard !reserved.contains(key) else {
                throw value.fail("is set by the agent (the port it assigns): remove it, and read \(key) in the app")
            }
            let text = try value.string("a string in quotes (write numbers and booleans as \"8080\", \"true\")")
            try checkNoNUL(text, value)
            environment[key] = text
        }
        return environment
    }

    /// `[resources]`: memory and disk as sizes, cpu in cores.
    private static func resources(_ table: ManifestTable) throws -> Resources {
        var resources = AppManifest.defaultResources
        resources.memoryBytes = try table["memory"]?.size(in: 4 << 20 ... 1 << 40) ?? resources.memoryBytes
        resources.diskBytes = try table["disk"]?.size(in: 0 ... 1 << 40) ?? resources.diskBytes
        if let field = table["cpu"] {
            let cores = try field.number("a number of cores, like 0.5 or 2")
            guard cores >= 0.001, cores <= 1024 else { throw field.fail("\(cores) is out of range: use 0.001 to 1024 cores") }
            resources.cpuMillis = Int((cores * 1000).rounded())
        }
        return resources
    }

    /// `labels = { region = "eu" }`, or `labels = ["region=eu", "disk!=hdd"]` for the other operator.
    private static func constraints(_ field: ManifestField) throws -> [Constraint] {
        var constraints: [(Constraint, ManifestField)] = []
        if case .table = field.value.kind {
            for (label, value) in try field.table(named: "constraints.labels", known: nil).fields {
                constraints.append((Constraint(label: label, value: try value.string("a label's value in quotes, like \"eu\"")), value))
            }
        } else {
            for element in try field.array("a table like { region = \"eu\" } or an array like [\"region=eu\", \"disk!=hdd\"]") {
                let text = try element.string("a constraint in quotes, like \"region=eu\" or \"disk!=hdd\"")
                guard let match = text.wholeMatch(of: /\s*([^=!\s]*)\s*(!?=)\s*(.*?)\s*/) else {
                    throw element.fail("\(TOMLReader.quoted(text)) is not a constraint: write \"label=value\" or \"label!=value\", like \"region=eu\"")
                }
                let op: Constraint.Operator = match.2 == "=" ? .equals : .notEquals
                constraints.append((Constraint(label: String(match.1), op: op, value: String(match.3)), element))
            }
        }
        for (constraint, field) in constraints {
            guard constraint.label.wholeMatch(of: /[A-Za-z0-9_.\/-]{1,63}/) != nil else {
                throw field.fail("\(TOMLReader.quoted(constraint.label)) cannot be a label: use 1 to 63 letters, digits and _ . / -")
            }
            guard constraint.value.wholeMatch(of: /[^\s\p{Cc}]{1,255}/) != nil else {
                throw field.fail("\(TOMLReader.quoted(constraint.value)) cannot be a label's value: use 1 to 255 characters, no spaces or controls")
            }
        }
        return constraints.map(\.0)
    }

    /// Arguments and environment values go to exec(2) as C strings, which end at a NUL.
    private static func checkNoNUL(_ text: String, _ field: ManifestField) throws {
        if text.unicodeScalars.contains("\0") { throw field.fail("holds a NUL character (\\u0000), which no program can be given: remove it") }
    }
}

extension HealthCheck {
    static let keys = ["http", "status", "tcp", "exec", "interval", "timeout", "healthy_threshold", "unhealthy_threshold", "grace"]

    /// `[health]`: one check (http, tcp or exec) and its timing.
    init(_ table: ManifestTable) throws {
        self.init()
        var checks: [(key: String, probe: Probe, field: ManifestField)] = []
        for (key, field) in table.fields {
            switch key {
            case "http":
                let path = try field.string("a path in quotes, like \"/health\"")
                guard path.wholeMatch(of: /\/[!-~]*/) != nil else {
                    throw field.fail("\(TOMLReader.quoted(path)) is not a path: write one starting with /, like \"/health\" (no spaces)")
                }
                checks.append((key, .http(path: path, status: nil), field))
            case "tcp":
                if try field.bool() { checks.append((key, .tcp, field)) }
            case "exec":
                let argv = try field.array("an argv array like [\"./check\"]").map { try $0.string("a string") }
                guard argv.first.map({ !$0.isEmpty }) == true else { throw field.fail("is empty: name the program to run, like [\"./check\"]") }
                checks.append((key, .exec(argv: argv), field))
            default:
                continue
            }
        }
        guard let check = checks.first else {
            throw table.fail("names no check: add http = \"/health\", tcp = true or exec = [\"./check\"] (without [health], a running instance counts as healthy)")
        }
        if checks.count > 1 {
            throw checks[1].field.fail("cannot be used with \(check.key) (line \(check.field.value.line)): a health check is one of http, tcp and exec")
        }
        probe = check.probe
        if let field = table["status"] {
            guard case .http(let path, _) = probe else { throw field.fail("is for http checks: add http = \"/path\", or remove status") }
            probe = .http(path: path, status: try field.integer(in: 100...599))
        }
        interval = try table["interval"]?.duration(in: .milliseconds(100) ... .seconds(3600)) ?? interval
        // The default timeout shrinks to a short interval rather than refuse it.
        timeout = try table["timeout"]?.duration(in: .milliseconds(10) ... interval) ?? min(timeout, interval)
        healthyThreshold = try table["healthy_threshold"]?.integer(in: 1...100) ?? healthyThreshold
        unhealthyThreshold = try table["unhealthy_threshold"]?.integer(in: 1...100) ?? unhealthyThreshold
        grace = try table["grace"]?.duration(in: .zero ... .seconds(3600)) ?? grace
    }
}

extension UpdatePolicy {
    static let keys = ["max_parallel", "min_healthy_time", "healthy_deadline", "auto_revert"]

    /// `[update]`.
    init(_ table: ManifestTable) throws {
        self.init()
        maxParallel = try table["max_parallel"]?.integer(in: 1...1000) ?? maxParallel
        minHealthyTime = try table["min_healthy_time"]?.duration(in: .zero ... .seconds(3600)) ?? minHealthyTime
        healthyDeadline = try table["healthy_deadline"]?.duration(in: .seconds(1) ... .seconds(86400)) ?? healthyDeadline
        autoRevert = try table["auto_revert"]?.bool() ?? autoRevert
        if healthyDeadline <= minHealthyTime, let field = table["healthy_deadline"] ?? table["min_healthy_time"] {
            throw field.fail("leaves no time to become healthy: healthy_deadline (\(ManifestUnits.written(healthyDeadline))) must be more than min_healthy_time (\(ManifestUnits.written(minHealthyTime)))")
        }
    }
}

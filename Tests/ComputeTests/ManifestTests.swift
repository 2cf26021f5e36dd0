import ChunkStore
@testable import Compute
import Foundation
import Testing

// The app manifest (a67app.toml): the TOML reader on its own, then the manifest decoded from it, its
// defaults, each field's good and bad values, and the errors (file, line and key in every one).

// MARK: The TOML reader

/// A parsed document written back compactly, so a case states its whole expected tree in one line:
/// `{a=1,b="x",c=[1,2.5],d={e=true}}`.
private func render(_ value: TOMLValue) -> String {
    switch value.kind {
    case .string(let text): TOMLReader.quoted(text)
    case .integer(let number): String(number)
    case .float(let number): String(number)
    case .boolean(let flag): String(flag)
    case .array(let values): "[" + values.map(render).joined(separator: ",") + "]"
    case .table(let table): render(table)
    }
}

private func render(_ table: TOMLTable) -> String {
    "{" + table.entries.map { TOMLReader.key($0.key) + "=" + render($0.value) }.joined(separator: ",") + "}"
}

/// The message of the `StoreError(.invalidArgument)` that `body` throws, or a failure.
private func invalidArgument(_ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) -> String? {
    do {
        try body()
        Issue.record("no error thrown", sourceLocation: sourceLocation)
        return nil
    } catch let error as StoreError {
        #expect(error.code == .invalidArgument, sourceLocation: sourceLocation)
        return error.message
    } catch {
        Issue.record("threw \(error), not a StoreError", sourceLocation: sourceLocation)
        return nil
    }
}

@Suite struct TOMLReaderTests {
    @Test(arguments: [
        ("", "{}"),
        ("# only a comment\n\n   \n", "{}"),
        ("a = 1 # trailing comment\nb = -2\nc = +3\nd = 1_000", "{a=1,b=-2,c=3,d=1000}"),
        ("hex = 0xDEAD_beef\noct = 0o755\nbin = 0b1010", "{hex=3735928559,oct=493,bin=10}"),
        ("f = 0.5\ng = -1e3\nh = 6.25E-2\ni = 1_0.5\nj = inf\nk = -inf", "{f=0.5,g=-1000.0,h=0.0625,i=10.5,j=inf,k=-inf}"),
        ("t = true\nf = false", "{t=true,f=false}"),
        (#"s = "tab\there \"q\" back\\slash \u00e9 \U0001F600 nl\n""#, #"{s="tab\there \"q\" back\\slash é 😀 nl\n"}"#),
        (#"s = 'C:\no\escapes "here"'"#, #"{s="C:\\no\\escapes \"here\""}"#),
        (#"s = """#, #"{s=""}"#),
        ("\"quoted key\" = 1\n'literal key' = 2\nbare-key_1 = 3\n1234 = 4", #"{"quoted key"=1,"literal key"=2,bare-key_1=3,1234=4}"#),
        ("a.b.c = 1\na.b.d = 2\na . \"e f\" = 3", #"{a={b={c=1,d=2},"e f"=3}}"#),
        ("[t]\nx = 1\n[u.v]\ny = 2\n[u]\nz = 3", "{t={x=1},u={v={y=2},z=3}}"),
        ("[ t . \"s p\" ]  # spaces in a header\nx = 1", #"{t={"s p"={x=1}}}"#),
        ("[a]\nb.c = 1\n[a.b.d]\ne = 2", "{a={b={c=1,d={e=2}}}}"),
        ("e = {}\nt = { A = \"x\", b.c = 1, d = { e = [1] } }", #"{e={},t={A="x",b={c=1},d={e=[1]}}}"#),
        ("t = {\n  a = 1, # one\n  b = 2,\n}", "{t={a=1,b=2}}"),
        ("a = []\nb = [1, \"two\", [3], { four = 4 }]", #"{a=[],b=[1,"two",[3],{four=4}]}"#),
        ("a = [\n  1,   # first\n  # between\n  2,\n]\nb = 3", "{a=[1,2],b=3}"),
        ("a = 1\r\nb = 2\r\n", "{a=1,b=2}"),
        ("\u{FEFF}a = 1", "{a=1}"),
    ])
    func reads(text: String, expected: String) throws {
        let table = try TOMLReader.parse(text, file: "t.toml")
        #expect(render(table) == expected)
    }

    @Test func nanIsAFloat() throws {
        let table = try TOMLReader.parse("n = nan", file: "t.toml")
        guard case .float(let number)? = table["n"]?.kind else { Issue.record("not a float"); return }
        #expect(number.isNaN)
    }

    /// Every value remembers the line it starts on (its key's line); a table, its header's line or the
    /// key that made it; an array's elements, their own lines.
    @Test func valuesRememberTheirLines() throws {
        let text = """
            # comment
            name = "web"

            a.b = 1
            list = [
              "x",

              "y",
            ]
            [health]
            http = "/h"
            [u.v]
            w = { x = 1,
              y = 2 }
            """
        let table = try TOMLReader.parse(text, file: "t.toml")
        func line(_ path: String...) -> Int? {
            var value = table[path[0]]
            for key in path.dropFirst() {
                guard case .table(let inner)? = value?.kind else { return nil }
                value = inner[key]
            }
            return value?.line
        }
        #expect(line("name") == 2)
        #expect(line("a") == 4)
        #expect(line("a", "b") == 4)
        #expect(line("list") == 5)
        guard case .array(let elements)? = table["list"]?.kind else { Issue.record("not an array"); return }
        #expect(elements.map(\.line) == [6, 8])
        #expect(line("health") == 10)
        #expect(line("health", "http") == 11)
        #expect(line("u") == 12)
        #expect(line("u", "v") == 12)
        #expect(line("u", "v", "w") == 13)
        #expect(line("u", "v", "w", "y") == 14)
    }

    /// A header for an implied table moves its line to the header.
    @Test func anImpliedTableTakesItsHeadersLine() throws {
        let table = try TOMLReader.parse("[a.b]\nx = 1\n\n[a]\ny = 2", file: "t.toml")
        #expect(table["a"]?.line == 4)
    }

    @Test(arguments: [
        // What the manifest does not need, refused by name.
        ("when = 1979-05-27", "t.toml:1: dates and times are not supported: write 1979-05-27 as a string, in quotes"),
        ("a = 1\nwhen = 07:32:00", "t.toml:2: dates and times are not supported: write 07:32:00 as a string, in quotes"),
        ("[[apps]]\nname = 1", "t.toml:1: arrays of tables ([[…]]) are not supported here: use a table or an inline table"),
        ("s = \"\"\"\nx\"\"\"", "t.toml:1: multi-line strings (\"\"\") are not supported: write the string on one line, with \\n for a line break"),
        ("s = '''x'''", "t.toml:1: multi-line strings (''') are not supported: write the string on one line"),
        // Keys and tables defined twice.
        ("a = 1\nb = 2\na = 3", "t.toml:3: a is already set on line 1: set each key once"),
        ("\"a\" = 1\na = 2", "t.toml:2: a is already set on line 1: set each key once"),
        ("a.b = 1\na.b = 2", "t.toml:2: a.b is already set on line 1: set each key once"),
        ("a = 1\na.b = 2", "t.toml:2: a.b cannot be set: a is already set on line 1"),
        ("t = { a = 1, a = 2 }", "t.toml:1: a is already set on line 1: set each key once"),
        ("[t]\nx = 1\n\n[t]\ny = 2", "t.toml:4: table [t] is already defined on line 1: define each table once"),
        ("[a.b]\n[a]\n[a]", "t.toml:3: table [a] is already defined on line 2: define each table once"),
        ("a.b = 1\n[a]", "t.toml:2: table [a] is already defined by dotted keys on line 1: define each table once"),
        ("t = { a = 1 }\n[t]", "t.toml:2: [t] cannot be a table: t is already set on line 1 as an inline table, which cannot be extended"),
        ("t = { a = 1 }\nt.b = 2", "t.toml:2: t.b cannot be set: t is already set on line 1 as an inline table, which cannot be extended"),
        ("a = 1\n[a.b]", "t.toml:2: [a.b] cannot be a table: a is already set on line 1"),
        ("[a.b]\n[a]\nb.c = 1", "t.toml:3: b.c cannot be set here: table [a.b] is defined on line 1; set its keys under its header"),
        // Syntax.
        ("name = web", "t.toml:1: web is not a value: put text in quotes (\"web\"); numbers are like 2, -1 or 0.5; booleans true or false"),
        ("a = 01", "t.toml:1: 01 is not a value: put text in quotes (\"01\"); numbers are like 2, -1 or 0.5; booleans true or false"),
        ("a = 1__0", "t.toml:1: 1__0 is not a value: put text in quotes (\"1__0\"); numbers are like 2, -1 or 0.5; booleans true or false"),
        ("a = .5", "t.toml:1: .5 is not a value: put text in quotes (\".5\"); numbers are like 2, -1 or 0.5; booleans true or false"),
        ("a = 99999999999999999999", "t.toml:1: 99999999999999999999 is too large for an integer"),
        ("a = 0o9", "t.toml:1: 0o9 is not an integer: its digits do not fit base 8, or it is too large"),
        ("a =", "t.toml:1: expected a value after ="),
        ("a = # nothing", "t.toml:1: expected a value after ="),
        ("a", "t.toml:1: expected = after the key a: write KEY = VALUE, found the end of the file"),
        ("a b = 1", "t.toml:1: expected = after the key a: write KEY = VALUE, found \"b\""),
        ("= 1", "t.toml:1: expected a key, found \"=\": keys are letters, digits, _ and -, or quoted"),
        ("a = 1 b = 2", "t.toml:1: unexpected \"b\" after the value of a: put each key = value on a line of its own"),
        ("[t] x = 1", "t.toml:1: unexpected \"x\" after the table header [t]: put each key = value on a line of its own"),
        ("[t", "t.toml:1: expected ] to close the table header [t], found the end of the file"),
        ("a = \"open\nb = 1", "t.toml:1: the string is not closed on its line: end it with \""),
        ("a = 'open", "t.toml:1: the string is not closed on its line: end it with '"),
        (#"a = "\q""#, #"t.toml:1: \q is not an escape: the escapes are \b \t \n \f \r \" \\ \uXXXX \UXXXXXXXX (write \\ for a backslash)"#),
        (#"a = "\u12""#, #"t.toml:1: \u12 is not a Unicode character: write \u and 4 hex digits, or \U and 8"#),
        (#"a = "\uD800""#, #"t.toml:1: \uD800 is not a Unicode character: write \u and 4 hex digits, or \U and 8"#),
        ("a = \"bell\u{07}\"", "t.toml:1: control character U+0007 in a string: write it as an escape like \\n or \\u0007"),
        ("# bell\u{07}", "t.toml:1: control character U+0007 in a comment: remove it"),
        ("a = 1\rb = 2", "t.toml:1: a carriage return without a line feed: end lines with \\n or \\r\\n"),
        ("a = [1,\n2", "t.toml:2: the array opened on line 1 is not closed: end it with ]"),
        ("a = [1 2]", "t.toml:1: expected , or ] in the array opened on line 1, found \"2\""),
        ("a = [1,,2]", "t.toml:1: expected a value in the array, found ,"),
        ("a = { b = 1 c = 2 }", "t.toml:1: expected , or } in the inline table opened on line 1, found \"c\""),
        ("a = { b = 1", "t.toml:1: the inline table opened on line 1 is not closed: end it with }"),
        ("a = { b = 1,, }", "t.toml:1: expected a key in the inline table, found ,"),
        ("a = {\n  b = 1\n", "t.toml:3: the inline table opened on line 1 is not closed: end it with }"),
    ])
    func refuses(text: String, message: String) {
        #expect(invalidArgument { _ = try TOMLReader.parse(text, file: "t.toml") } == message)
    }
}

// MARK: The manifest

/// The issue's example, as written there.
private let issueExample = """
    name = "web"
    command = ["python3", "server.py"]     # the agent sets PORT
    instances = 2
    env = { GREETING = "hi" }
    [health]
    http = "/health"                       # or tcp = true, or exec = ["./check"]
    interval = "2s"
    [resources]
    memory = "128M"
    cpu = 0.5
    [update]
    max_parallel = 1
    auto_revert = true
    """

/// The two lines every manifest needs; the cases below add theirs from line 3.
private let required = "name = \"web\"\ncommand = [\"./server\"]\n"

/// A manifest's lines after `required`, and what they change from the defaults.
struct ManifestCase: Sendable, CustomTestStringConvertible {
    let lines: String
    let change: @Sendable (inout AppManifest) -> Void
    init(_ lines: String, _ change: @escaping @Sendable (inout AppManifest) -> Void) {
        self.lines = lines
        self.change = change
    }
    var testDescription: String { lines.replacingOccurrences(of: "\n", with: " ⏎ ") }
}

/// A manifest's lines after `required`, and the error they get.
struct BadCase: Sendable, CustomTestStringConvertible {
    let lines: String
    let message: String
    init(_ lines: String, _ message: String) {
        self.lines = lines
        self.message = message
    }
    var testDescription: String { lines.replacingOccurrences(of: "\n", with: " ⏎ ") }
}

@Suite struct ManifestTests {
    @Test func theIssuesExampleDecodes() throws {
        let manifest = try AppManifest(toml: issueExample)
        var expected = AppManifest(name: "web", command: ["python3", "server.py"])
        expected.instances = 2
        expected.environment = ["GREETING": "hi"]
        expected.health.probe = .http(path: "/health", status: nil)
        expected.health.interval = .seconds(2)
        expected.resources = Resources(memoryBytes: 128 << 20, cpuMillis: 500)
        expected.update.maxParallel = 1
        expected.update.autoRevert = true
        #expect(manifest == expected)
    }

    /// What a manifest of only name and command means: each default as documented.
    @Test func defaults() throws {
        let manifest = try AppManifest(toml: required)
        #expect(manifest.name == "web")
        #expect(manifest.command == ["./server"])
        #expect(manifest.environment.isEmpty)
        #expect(manifest.ports.isEmpty)
        #expect(manifest.instances == 1)
        #expect(manifest.resources == Resources(memoryBytes: 128 << 20, cpuMillis: 250, diskBytes: 0))
        #expect(manifest.constraints.isEmpty)
        #expect(!manifest.distinctNodes)
        #expect(manifest.health.probe == .running)
        #expect(manifest.health.interval == .seconds(5))
        #expect(manifest.health.timeout == .seconds(2))
        #expect(manifest.health.healthyThreshold == 1)
        #expect(manifest.health.unhealthyThreshold == 3)
        #expect(manifest.health.grace == .seconds(10))
        #expect(manifest.update == UpdatePolicy(maxParallel: 1, minHealthyTime: .seconds(10), healthyDeadline: .seconds(300), autoRevert: true))
        #expect(manifest.stopSignal == 15)
        #expect(manifest.stopGrace == .seconds(10))
        #expect(manifest == AppManifest(name: "web", command: ["./server"]))
    }

    @Test(arguments: [
        ManifestCase("instances = 3") { $0.instances = 3 },
        ManifestCase("instances = 1000") { $0.instances = 1000 },
        ManifestCase("env = { A = \"1\", B_2 = \"two words\", _x = \"\" }") { $0.environment = ["A": "1", "B_2": "two words", "_x": ""] },
        ManifestCase("[env]\nGREETING = \"hi\"") { $0.environment = ["GREETING": "hi"] },
        ManifestCase("ports = [\"metrics\", \"admin_2\"]\nenv = { PORT_OTHER = \"x\" }") {
            $0.ports = ["metrics", "admin_2"]
            $0.environment = ["PORT_OTHER": "x"]
        },
        ManifestCase("[health]\nhttp = \"/health?deep=1\"\nstatus = 204") { $0.health.probe = .http(path: "/health?deep=1", status: 204) },
        ManifestCase("[health]\ntcp = true") { $0.health.probe = .tcp },
        ManifestCase("[health]\ntcp = false\nexec = [\"./check\", \"--quick\"]") { $0.health.probe = .exec(argv: ["./check", "--quick"]) },
        ManifestCase("[health]\ntcp = true\ninterval = \"1m\"\ntimeout = \"500ms\"\ngrace = \"0s\"\nhealthy_threshold = 2\nunhealthy_threshold = 5") {
            $0.health = HealthCheck(probe: .tcp, interval: .seconds(60), timeout: .milliseconds(500), healthyThreshold: 2, unhealthyThreshold: 5, grace: .zero)
        },
        // A short interval brings the default timeout down with it.
        ManifestCase("[health]\ntcp = true\ninterval = \"1s\"") {
            $0.health.probe = .tcp
            $0.health.interval = .seconds(1)
            $0.health.timeout = .seconds(1)
        },
        ManifestCase("[health]\ntcp = true\ninterval = \"1m30s\"") {
            $0.health.probe = .tcp
            $0.health.interval = .seconds(90)
        },
        ManifestCase("[health]\ntcp = true\ninterval = \"2.5s\"") {
            $0.health.probe = .tcp
            $0.health.interval = .milliseconds(2500)
        },
        ManifestCase("[resources]\nmemory = \"1G\"\ncpu = 2\ndisk = \"512K\"") { $0.resources = Resources(memoryBytes: 1 << 30, cpuMillis: 2000, diskBytes: 512 << 10) },
        ManifestCase("[resources]\nmemory = \"1.5GiB\"\ncpu = 0.001") { $0.resources = Resources(memoryBytes: 3 << 29, cpuMillis: 1) },
        ManifestCase("[resources]\nmemory = \"100MB\"") { $0.resources.memoryBytes = 100_000_000 },
        ManifestCase("[resources]\nmemory = \"8388608\"") { $0.resources.memoryBytes = 8 << 20 },
        ManifestCase("[constraints]\nlabels = { region = \"eu\", \"node.kind\" = \"vm\" }\ndistinct_nodes = true") {
            $0.constraints = [Constraint(label: "region", value: "eu"), Constraint(label: "node.kind", value: "vm")]
            $0.distinctNodes = true
        },
        ManifestCase("[constraints.labels]\nregion = \"eu\"") { $0.constraints = [Constraint(label: "region", value: "eu")] },
        ManifestCase("[constraints]\nlabels = [\"region=eu\", \" disk != hdd \", \"k=a=b\"]") {
            $0.constraints = [Constraint(label: "region", value: "eu"), Constraint(label: "disk", op: .notEquals, value: "hdd"), Constraint(label: "k", value: "a=b")]
        },
        ManifestCase("[update]\nmax_parallel = 2\nmin_healthy_time = \"0s\"\nhealthy_deadline = \"30s\"\nauto_revert = false") {
            $0.update = UpdatePolicy(maxParallel: 2, minHealthyTime: .zero, healthyDeadline: .seconds(30), autoRevert: false)
        },
        ManifestCase("stop_signal = \"SIGINT\"") { $0.stopSignal = 2 },
        ManifestCase("stop_signal = \"quit\"") { $0.stopSignal = 3 },
        ManifestCase("stop_signal = \"KILL\"\nstop_grace = \"0s\"") {
            $0.stopSignal = 9
            $0.stopGrace = .zero
        },
        ManifestCase("stop_grace = \"2m\"") { $0.stopGrace = .seconds(120) },
        // Dotted keys and inline tables are the same tables as headers.
        ManifestCase("health.tcp = true\nupdate = { max_parallel = 3 }") {
            $0.health.probe = .tcp
            $0.update.maxParallel = 3
        },
    ])
    func goodValues(_ testCase: ManifestCase) throws {
        var expected = AppManifest(name: "web", command: ["./server"])
        testCase.change(&expected)
        #expect(try AppManifest(toml: required + testCase.lines) == expected)
    }

    @Test(arguments: [
        ("name = \"a\"", "a"),
        ("name = \"web-2\"", "web-2"),
        ("name = \"0day\"", "0day"),
        ("name = \"\(String(repeating: "a", count: 63))\"", String(repeating: "a", count: 63)),
    ])
    func goodNames(line: String, name: String) throws {
        #expect(try AppManifest(toml: line + "\ncommand = [\"x\"]").name == name)
    }

    @Test func shellRunsOneStringThroughBinSh() throws {
        let manifest = try AppManifest(toml: "name = \"web\"\nshell = true\ncommand = \"python3 server.py > log 2>&1\"")
        #expect(manifest.command == ["/bin/sh", "-c", "python3 server.py > log 2>&1"])
        let explicit = try AppManifest(toml: "name = \"web\"\nshell = false\ncommand = [\"python3\", \"server.py > log\"]")
        #expect(explicit.command == ["python3", "server.py > log"])
    }

    @Test(arguments: [
        // Unknown keys name the key, the table, the known keys and the nearest one.
        BadCase("nmae = \"x\"", "a67app.toml:3: nmae is not a top-level key (did you mean name?): the keys are name, command, shell, env, ports, instances, health, resources, constraints, update, stop_signal, stop_grace"),
        BadCase("[health]\nhttp = \"/\"\nintervall = \"2s\"", "a67app.toml:5: [health] intervall is not a key of [health] (did you mean interval?): the keys are http, status, tcp, exec, interval, timeout, healthy_threshold, unhealthy_threshold, grace"),
        BadCase("[resources]\ngpu = 1", "a67app.toml:4: [resources] gpu is not a key of [resources] (did you mean cpu?): the keys are memory, cpu, disk"),
        BadCase("[update]\nrollback = true", "a67app.toml:4: [update] rollback is not a key of [update]: the keys are max_parallel, min_healthy_time, healthy_deadline, auto_revert"),
        BadCase("[constraints]\ndistinct = true", "a67app.toml:4: [constraints] distinct is not a key of [constraints]: the keys are labels, distinct_nodes"),
        BadCase("[deploy]\nx = 1", "a67app.toml:3: deploy is not a top-level key: the keys are name, command, shell, env, ports, instances, health, resources, constraints, update, stop_signal, stop_grace"),
        // Duplicates reach the manifest's author through the reader.
        BadCase("instances = 2\ninstances = 3", "a67app.toml:4: instances is already set on line 3: set each key once"),
        BadCase("name = \"other\"", "a67app.toml:3: name is already set on line 1: set each key once"),
        // command and shell (more in badCommands)
        BadCase("shell = true", "a67app.toml:2: command must be one string when shell = true (it runs as /bin/sh -c \"…\"); found an array"),
        // instances
        BadCase("instances = 0", "a67app.toml:3: instances 0 is out of range: use 1 to 1000"),
        BadCase("instances = 1001", "a67app.toml:3: instances 1001 is out of range: use 1 to 1000"),
        BadCase("instances = \"2\"", "a67app.toml:3: instances must be a whole number from 1 to 1000; found the string \"2\""),
        BadCase("instances = 2.0", "a67app.toml:3: instances must be a whole number from 1 to 1000; found the float 2.0"),
        // env
        BadCase("env = { PORT = \"80\" }", "a67app.toml:3: [env] PORT is set by the agent (the port it assigns): remove it, and read PORT in the app"),
        BadCase("ports = [\"metrics\"]\n[env]\nPORT_METRICS = \"1\"", "a67app.toml:5: [env] PORT_METRICS is set by the agent (the port it assigns): remove it, and read PORT_METRICS in the app"),
        BadCase("[env]\nCOUNT = 3", "a67app.toml:4: [env] COUNT must be a string in quotes (write numbers and booleans as \"8080\", \"true\"); found the integer 3"),
        BadCase("[env]\n\"MY-VAR\" = \"x\"", "a67app.toml:4: [env] MY-VAR cannot be an environment variable's name: use letters, digits and _, not starting with a digit"),
        BadCase("[env]\n1ST = \"x\"", "a67app.toml:4: [env] 1ST cannot be an environment variable's name: use letters, digits and _, not starting with a digit"),
        BadCase("env = { A = \"x\\u0000y\" }", "a67app.toml:3: [env] A holds a NUL character (\\u0000), which no program can be given: remove it"),
        BadCase("env = [\"A=1\"]", "a67app.toml:3: env must be a table, like [env] or env = { … }; found an array"),
        // ports
        BadCase("ports = \"metrics\"", "a67app.toml:3: ports must be an array of port names, like [\"metrics\"]; found the string \"metrics\""),
        BadCase("ports = [\"metrics\",\n  \"Admin\"]", "a67app.toml:4: ports[1] \"Admin\" cannot be a port's name: use 1 to 32 lowercase letters, digits and _, starting with a letter (the app reads it as PORT_ADMIN)"),
        BadCase("ports = [\"m\", \"m\"]", "a67app.toml:3: ports[1] \"m\" is named twice: name each port once"),
        BadCase("ports = [8080]", "a67app.toml:3: ports[0] must be a port's name in quotes, like \"metrics\"; found the integer 8080"),
        // health
        BadCase("[health]\nhttp = \"/\"\ninterval = \"fast\"", "a67app.toml:5: [health] interval \"fast\" is not a duration: write like 2s, 500ms or 1m"),
        BadCase("[health]\nhttp = \"/\"\ninterval = 2", "a67app.toml:5: [health] interval must be a duration in quotes, like \"2s\", \"500ms\" or \"1m\"; found the integer 2"),
        BadCase("[health]\nhttp = \"/\"\ninterval = \"2 s\"", "a67app.toml:5: [health] interval \"2 s\" is not a duration: write like 2s, 500ms or 1m"),
        BadCase("[health]\nhttp = \"/\"\ninterval = \"50ms\"", "a67app.toml:5: [health] interval 50ms is out of range: use 100ms to 1h"),
        BadCase("[health]\nhttp = \"/\"\ninterval = \"1.0005s\"", "a67app.toml:5: [health] interval \"1.0005s\" is not a duration: write like 2s, 500ms or 1m"),
        BadCase("[health]\nhttp = \"/\"\ninterval = \"2s\"\ntimeout = \"3s\"", "a67app.toml:6: [health] timeout 3s is out of range: use 10ms to 2s"),
        BadCase("[health]\nhttp = \"health\"", "a67app.toml:4: [health] http \"health\" is not a path: write one starting with /, like \"/health\" (no spaces)"),
        BadCase("[health]\nhttp = \"/a b\"", "a67app.toml:4: [health] http \"/a b\" is not a path: write one starting with /, like \"/health\" (no spaces)"),
        BadCase("[health]\nhttp = \"/\"\nstatus = 700", "a67app.toml:5: [health] status 700 is out of range: use 100 to 599"),
        BadCase("[health]\ntcp = true\nstatus = 200", "a67app.toml:5: [health] status is for http checks: add http = \"/path\", or remove status"),
        BadCase("[health]\nhttp = \"/\"\ntcp = true", "a67app.toml:5: [health] tcp cannot be used with http (line 4): a health check is one of http, tcp and exec"),
        BadCase("[health]\ntcp = \"yes\"", "a67app.toml:4: [health] tcp must be true or false; found the string \"yes\""),
        BadCase("[health]\nexec = []", "a67app.toml:4: [health] exec is empty: name the program to run, like [\"./check\"]"),
        BadCase("[health]\nexec = \"./check\"", "a67app.toml:4: [health] exec must be an argv array like [\"./check\"]; found the string \"./check\""),
        BadCase("\n[health]\ninterval = \"2s\"", "a67app.toml:4: [health] names no check: add http = \"/health\", tcp = true or exec = [\"./check\"] (without [health], a running instance counts as healthy)"),
        BadCase("[health]\ntcp = true\nhealthy_threshold = 0", "a67app.toml:5: [health] healthy_threshold 0 is out of range: use 1 to 100"),
        BadCase("[health]\ntcp = true\ngrace = \"2h\"", "a67app.toml:5: [health] grace 2h is out of range: use 0s to 1h"),
        BadCase("health = true", "a67app.toml:3: health must be a table, like [health] or health = { … }; found the boolean true"),
        // resources
        BadCase("[resources]\nmemory = \"lots\"", "a67app.toml:4: [resources] memory \"lots\" is not a size: write like 512K, 128M or 1G (powers of 1024)"),
        BadCase("[resources]\nmemory = \"128Q\"", "a67app.toml:4: [resources] memory \"128Q\" is not a size: write like 512K, 128M or 1G (powers of 1024)"),
        BadCase("[resources]\nmemory = 134217728", "a67app.toml:4: [resources] memory must be a size in quotes, like \"128M\" or \"1G\"; found the integer 134217728"),
        BadCase("[resources]\nmemory = \"1M\"", "a67app.toml:4: [resources] memory 1M is out of range: use 4M to 1T"),
        BadCase("[resources]\ncpu = 0", "a67app.toml:4: [resources] cpu 0.0 is out of range: use 0.001 to 1024 cores"),
        BadCase("[resources]\ncpu = -1.5", "a67app.toml:4: [resources] cpu -1.5 is out of range: use 0.001 to 1024 cores"),
        BadCase("[resources]\ncpu = \"500m\"", "a67app.toml:4: [resources] cpu must be a number of cores, like 0.5 or 2; found the string \"500m\""),
        BadCase("[resources]\ncpu = nan", "a67app.toml:4: [resources] cpu must be a number of cores, like 0.5 or 2; found the float nan"),
        // constraints
        BadCase("[constraints]\nlabels = [\"region\"]", "a67app.toml:4: [constraints] labels[0] \"region\" is not a constraint: write \"label=value\" or \"label!=value\", like \"region=eu\""),
        BadCase("[constraints]\nlabels = [\"=eu\"]", "a67app.toml:4: [constraints] labels[0] \"\" cannot be a label: use 1 to 63 letters, digits and _ . / -"),
        BadCase("[constraints]\nlabels = [\"region=\"]", "a67app.toml:4: [constraints] labels[0] \"\" cannot be a label's value: use 1 to 255 characters, no spaces or controls"),
        BadCase("[constraints]\nlabels = { region = \"e u\" }", "a67app.toml:4: [constraints.labels] region \"e u\" cannot be a label's value: use 1 to 255 characters, no spaces or controls"),
        BadCase("[constraints]\nlabels = { region = 1 }", "a67app.toml:4: [constraints.labels] region must be a label's value in quotes, like \"eu\"; found the integer 1"),
        BadCase("[constraints]\nlabels = \"region=eu\"", "a67app.toml:4: [constraints] labels must be a table like { region = \"eu\" } or an array like [\"region=eu\", \"disk!=hdd\"]; found the string \"region=eu\""),
        BadCase("[constraints]\ndistinct_nodes = 1", "a67app.toml:4: [constraints] distinct_nodes must be true or false; found the integer 1"),
        // update
        BadCase("[update]\nmax_parallel = 0", "a67app.toml:4: [update] max_parallel 0 is out of range: use 1 to 1000"),
        BadCase("[update]\nmin_healthy_time = \"1m\"\nhealthy_deadline = \"30s\"", "a67app.toml:5: [update] healthy_deadline leaves no time to become healthy: healthy_deadline (30s) must be more than min_healthy_time (1m)"),
        BadCase("[update]\nmin_healthy_time = \"10m\"", "a67app.toml:4: [update] min_healthy_time leaves no time to become healthy: healthy_deadline (5m) must be more than min_healthy_time (10m)"),
        BadCase("[update]\nauto_revert = \"yes\"", "a67app.toml:4: [update] auto_revert must be true or false; found the string \"yes\""),
        // stop
        BadCase("stop_signal = \"SIGSTOP\"", "a67app.toml:3: stop_signal \"SIGSTOP\" is not a signal an app can be stopped with: use one of SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGWINCH, SIGKILL (TERM works as SIGTERM)"),
        BadCase("stop_signal = 15", "a67app.toml:3: stop_signal must be a signal's name in quotes, like \"SIGTERM\"; found the integer 15"),
        BadCase("stop_grace = \"-1s\"", "a67app.toml:3: stop_grace \"-1s\" is not a duration: write like 2s, 500ms or 1m"),
        BadCase("stop_grace = \"2h\"", "a67app.toml:3: stop_grace 2h is out of range: use 0s to 1h"),
    ])
    func badValues(_ testCase: BadCase) {
        #expect(invalidArgument { _ = try AppManifest(toml: required + testCase.lines) } == testCase.message)
    }

    @Test(arguments: [
        ("name = \"Web\"", "a67app.toml:1: name \"Web\" cannot be an app's name: it becomes NAME.apps.DOMAIN, so use 1 to 63 lowercase letters, digits and -, not starting or ending with -"),
        ("name = \"\"", "a67app.toml:1: name \"\" cannot be an app's name: it becomes NAME.apps.DOMAIN, so use 1 to 63 lowercase letters, digits and -, not starting or ending with -"),
        ("name = \"-web\"", "a67app.toml:1: name \"-web\" cannot be an app's name: it becomes NAME.apps.DOMAIN, so use 1 to 63 lowercase letters, digits and -, not starting or ending with -"),
        ("name = \"web.app\"", "a67app.toml:1: name \"web.app\" cannot be an app's name: it becomes NAME.apps.DOMAIN, so use 1 to 63 lowercase letters, digits and -, not starting or ending with -"),
        ("name = \"\(String(repeating: "a", count: 64))\"", "a67app.toml:1: name \"\(String(repeating: "a", count: 64))\" cannot be an app's name: it becomes NAME.apps.DOMAIN, so use 1 to 63 lowercase letters, digits and -, not starting or ending with -"),
        ("name = web", "a67app.toml:1: web is not a value: put text in quotes (\"web\"); numbers are like 2, -1 or 0.5; booleans true or false"),
        ("name = [\"web\"]", "a67app.toml:1: name must be the app's name in quotes, like \"web\"; found an array"),
    ])
    func badNames(line: String, message: String) {
        #expect(invalidArgument { _ = try AppManifest(toml: line + "\ncommand = [\"x\"]") } == message)
    }

    @Test(arguments: [
        ("name = \"web\"\ncommand = \"python3 server.py\"", "a67app.toml:2: command is a string: write it as an argv array like [\"python3\", \"server.py\"], or add shell = true to run it with /bin/sh -c"),
        ("name = \"web\"\ncommand = []", "a67app.toml:2: command is empty: name the program to run, like [\"python3\", \"server.py\"]"),
        ("name = \"web\"\ncommand = [\"\", \"x\"]", "a67app.toml:2: command[0] is empty: name the program to run"),
        ("name = \"web\"\ncommand = [\n  \"python3\",\n  3,\n]", "a67app.toml:4: command[1] must be a string; found the integer 3"),
        ("name = \"web\"\ncommand = [\"a\\u0000b\"]", "a67app.toml:2: command[0] holds a NUL character (\\u0000), which no program can be given: remove it"),
        ("name = \"web\"\ncommand = { run = \"x\" }", "a67app.toml:2: command must be an argv array like [\"python3\", \"server.py\"]; found a table"),
        ("name = \"web\"\nshell = true\ncommand = [\"a\", \"b\"]", "a67app.toml:3: command must be one string when shell = true (it runs as /bin/sh -c \"…\"); found an array"),
        ("name = \"web\"\nshell = true\ncommand = \"  \"", "a67app.toml:3: command is empty: write the shell command to run"),
        ("name = \"web\"\nshell = \"yes\"\ncommand = \"x\"", "a67app.toml:2: shell must be true or false; found the string \"yes\""),
    ])
    func badCommands(text: String, message: String) {
        #expect(invalidArgument { _ = try AppManifest(toml: text) } == message)
    }

    /// A missing required key is on no line: the message names the file and the key.
    @Test(arguments: [
        ("command = [\"x\"]", "a67app.toml: name is missing: add a line like name = \"web\" (the app is then reached as web.apps.DOMAIN)"),
        ("name = \"web\"", "a67app.toml: command is missing: add a line like command = [\"python3\", \"server.py\"] (the program and its arguments)"),
        ("name = \"web\"\nshell = true", "a67app.toml: command is missing: add a line like command = \"python3 server.py\" (run by /bin/sh -c)"),
        ("", "a67app.toml: name is missing: add a line like name = \"web\" (the app is then reached as web.apps.DOMAIN)"),
    ])
    func missingKeys(text: String, message: String) {
        #expect(invalidArgument { _ = try AppManifest(toml: text) } == message)
    }

    /// Errors name the file as the caller gave it, at the line of the key in a realistic manifest.
    @Test func errorsNameTheFileGiven() {
        let text = issueExample.replacingOccurrences(of: "interval = \"2s\"", with: "interval = \"fast\"")
        let message = invalidArgument { _ = try AppManifest(toml: text, file: "myapp/a67app.toml") }
        #expect(message == "myapp/a67app.toml:7: [health] interval \"fast\" is not a duration: write like 2s, 500ms or 1m")
    }

    /// The controller stores a manifest as JSON: it comes back equal, durations as milliseconds.
    @Test func roundTripsThroughJSON() throws {
        let text = "stop_grace = \"1500ms\"\n" + issueExample + "\n[constraints]\nlabels = [\"disk!=hdd\"]\ndistinct_nodes = true"
        let manifest = try AppManifest(toml: text)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let json = try encoder.encode(manifest)
        #expect(try JSONDecoder().decode(AppManifest.self, from: json) == manifest)
        let object = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
        #expect(object["stopGrace"] as? Int == 1500)
        #expect((object["health"] as? [String: Any])?["interval"] as? Int == 2000)
        #expect((object["update"] as? [String: Any])?["healthyDeadline"] as? Int == 300_000)
    }

    @Test func stopSignalsByNameAndNumber() {
        #expect(StopSignal(name: "SIGTERM") == .term)
        #expect(StopSignal(name: "term") == .term)
        #expect(StopSignal(name: "SIGSTOP") == nil)
        #expect(StopSignal(name: "") == nil)
        #expect(StopSignal(number: 9) == .kill)
        #expect(StopSignal(number: 19) == nil)
        #expect(StopSignal.allCases.map(\.number) == [15, 2, 3, 1, 10, 12, 28, 9])
    }

    @Test(arguments: [
        ("2s", Duration.seconds(2)), ("500ms", .milliseconds(500)), ("1m", .seconds(60)), ("1h", .seconds(3600)),
        ("1m30s", .seconds(90)), ("1.5s", .milliseconds(1500)), ("0.25h", .seconds(900)), ("0s", .zero),
    ])
    func durations(text: String, duration: Duration) {
        #expect(ManifestUnits.duration(text) == duration)
        #expect(ManifestUnits.duration(ManifestUnits.written(duration)) == duration)
    }

    @Test(arguments: ["", "2", "s", "2 s", "-1s", "2sec", "1.s", ".5s", "2d", "1.0001s", "2S"])
    func notDurations(text: String) {
        #expect(ManifestUnits.duration(text) == nil)
    }

    static let sizeCases: [(String, Int64)] = [
        ("128M", 128 << 20), ("1G", 1 << 30), ("512k", 512 << 10), ("2MiB", 2 << 20), ("1T", 1 << 40),
        ("100MB", 100_000_000), ("1KB", 1000), ("4096", 4096), ("4096B", 4096), ("0.5G", 1 << 29), ("64 M", 64 << 20),
    ]

    @Test(arguments: sizeCases)
    func sizes(text: String, bytes: Int64) {
        #expect(ManifestUnits.size(text) == bytes)
    }

    @Test(arguments: ["", "M", "lots", "-1M", "1Q", "1.M", "99999999999T"])
    func notSizes(text: String) {
        #expect(ManifestUnits.size(text) == nil)
    }
}

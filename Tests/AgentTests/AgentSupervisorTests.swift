import ChunkStore
import Compute
import Foundation
import Testing
@testable import Agent
#if canImport(Glibc)
import Glibc
#endif

@Suite("Agent supervisor")
struct AgentSupervisorTests {
    @Test("An instance starts with PORT, its env and its folder, serves, and turns healthy (http)")
    func startsAndServes() async throws {
        let box = try Sandbox()
        defer { box.remove() }
        try box.script("server.py", pythonServer)
        let supervisor = Supervisor(dataDirectory: box.data, options: fastOptions(ports: 21000...21019))
        let health = HealthCheck(probe: .http(path: "/health", status: nil), interval: .milliseconds(100), timeout: .milliseconds(100),
                                 grace: .seconds(30))
        await supervisor.apply([box.spec("a1", ["python3", "server.py"], health: health, environment: ["GREETING": "hi"])])
        await eventually("healthy") { await supervisor.report("a1")?.healthy == true }
        let report = try #require(await supervisor.report("a1"))
        #expect(report.state == .running)
        let port = try #require(report.port)
        #expect((21000...21019).contains(port))
        #expect(box.read("started") == "\(port) \(box.bundle) hi")
        #expect(try LocalSockets.httpStatus(port: port, path: "/", timeoutMilliseconds: 2000) == 200)
        // Its own session and process group.
        let pid = try #require(await supervisor.pid("a1"))
        #expect(getsid(pid) == pid && getpgid(pid) == pid)
        // No core files; its own open-file limit.
        let limits = try String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8).split(separator: "\n")
        let core = limits.first { $0.hasPrefix("Max core file size") }?.split(separator: " ", omittingEmptySubsequences: true)
        let files = limits.first { $0.hasPrefix("Max open files") }?.split(separator: " ", omittingEmptySubsequences: true)
        #expect(core?.dropFirst(4).prefix(2) == ["0", "0"])
        #expect(files?.dropFirst(3).prefix(2) == ["4096", "4096"])
        await supervisor.shutdown(stopInstances: true)
        #expect(await supervisor.report("a1")?.state == .stopped)
    }

    @Test("http health turns unhealthy on a bad status and healthy again")
    func httpHealthFlips() async throws {
        let box = try Sandbox()
        defer { box.remove() }
        try box.script("server.py", pythonServer)
        let supervisor = Supervisor(dataDirectory: box.data, options: fastOptions(ports: 21020...21039))
        let health = HealthCheck(probe: .http(path: "/health", status: 200), interval: .milliseconds(50), timeout: .milliseconds(50),
                                 healthyThreshold: 1, unhealthyThreshold: 2, grace: .zero)
        await supervisor.apply([box.spec("a1", ["python3", "server.py"], health: health)])
        await eventually("healthy") { await supervisor.report("a1")?.healthy == true }
        try "503".write(toFile: box.bundle + "/status", atomically: true, encoding: .utf8)
        await eventually("unhealthy") { await supervisor.report("a1")?.healthy == false }
        #expect(await supervisor.report("a1")?.message == "health check failing: GET /health answered 503")
        try "200".write(toFile: box.bundle + "/status", atomically: true, encoding: .utf8)
        await eventually("healthy again") { await supervisor.report("a1")?.healthy == true }
        #expect(await supervisor.report("a1")?.restarts == 0)
        await supervisor.shutdown(stopInstances: true)
    }

    @Test("tcp and exec health checks", arguments: ["tcp", "exec"])
    func tcpAndExecHealth(kind: String) async throws {
        let box = try Sandbox()
        defer { box.remove() }
        try box.script("server.py", pythonServer)
        try box.script("check", "#!/bin/sh\ntest -f ok && test -n \"$PORT\"\n")
        let probe: HealthCheck.Probe = kind == "tcp" ? .tcp : .exec(argv: ["./check"])
        let supervisor = Supervisor(dataDirectory: box.data, options: fastOptions(ports: kind == "tcp" ? 21040...21059 : 21060...21079))
        let health = HealthCheck(probe: probe, interval: .milliseconds(50), timeout: .seconds(2), unhealthyThreshold: 1, grace: .zero)
        if kind == "exec" { try "".write(toFile: box.bundle + "/ok", atomically: true, encoding: .utf8) }
        await supervisor.apply([box.spec("a1", ["python3", "server.py"], health: health)])
        await eventually("healthy") { await supervisor.report("a1")?.healthy == true }
        if kind == "exec" {
            try FileManager.default.removeItem(atPath: box.bundle + "/ok")
            await eventually("unhealthy") { await supervisor.report("a1")?.healthy == false }
            #expect(await supervisor.report("a1")?.message == "health check failing: check ./check exited with status 1")
        }
        await supervisor.shutdown(stopInstances: true)
    }

    @Test("kill -9 of an instance: started again, the restart counted, exit code reported")
    func killedIsRestarted() async throws {
        let box = try Sandbox()
        defer { box.remove() }
        let supervisor = Supervisor(dataDirectory: box.data, options: fastOptions(ports: 21080...21099))
        await supervisor.apply([box.spec("a1", ["sleep", "1000"])])
        await eventually("running") { await supervisor.pid("a1") != nil }
        let first = try #require(await supervisor.pid("a1"))
        kill(first, SIGKILL)
        await eventually("restarted") {
            let restarts = await supervisor.report("a1")?.restarts
            let pid = await supervisor.pid("a1")
            return restarts == 1 && pid != nil
        }
        let report = try #require(await supervisor.report("a1"))
        #expect(await supervisor.pid("a1") != first)
        #expect(report.exitCode == 128 + SIGKILL)
        #expect(report.state == .running)
        #expect(String(decoding: await supervisor.log(allocationID: "a1", tail: 10) ?? [], as: UTF8.self)
            .contains("pid \(first) killed by signal 9"))
        await supervisor.shutdown(stopInstances: true)
    }

    @Test("A crash loop backs off: 50, 100, 200, 400, 400 ms")
    func crashLoopBacksOff() async throws {
        let box = try Sandbox()
        defer { box.remove() }
        let supervisor = Supervisor(dataDirectory: box.data, options: fastOptions(ports: 21100...21119))
        await supervisor.apply([box.spec("a1", ["sh", "-c", "exit 3"])])
        await eventually("five restarts") { await supervisor.report("a1")!.restarts >= 5 }
        #expect(await Array(supervisor.waits("a1").prefix(5)) == [50, 100, 200, 400, 400].map { .milliseconds($0) })
        let report = try #require(await supervisor.report("a1"))
        #expect(report.exitCode == 3)
        #expect(String(decoding: await supervisor.log(allocationID: "a1", tail: 50) ?? [], as: UTF8.self).contains("exited with status 3"))
        await supervisor.shutdown(stopInstances: true)
    }

    @Test("Stop: the stop signal, then SIGKILL of the whole group after the grace (child ignoring TERM, grandchild)")
    func stopKillsGroup() async throws {
        let box = try Sandbox()
        defer { box.remove() }
        // The shell ignores SIGTERM, and so does the sleep it starts (ignored signals are inherited).
        try box.script("stubborn", "#!/bin/sh\ntrap '' TERM\nsleep 1000 &\necho $! > grandchild\nwait\nwait\n")
        let supervisor = Supervisor(dataDirectory: box.data, options: fastOptions(ports: 21120...21139))
        await supervisor.apply([box.spec("a1", ["./stubborn"], stopGrace: .milliseconds(300))])
        await eventually("grandchild started") { box.read("grandchild").flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) } != nil }
        let child = try #require(await supervisor.pid("a1"))
        let grandchild = try #require(box.read("grandchild").flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) })
        #expect(ProcessIdentity.isRunning(grandchild))
        await supervisor.apply([])
        #expect(await supervisor.report("a1")?.state == .stopping)
        await eventually("stopped") { await supervisor.report("a1")?.state == .stopped }
        #expect(!ProcessIdentity.isRunning(child))
        #expect(!ProcessIdentity.isRunning(grandchild))
        let log = String(decoding: await supervisor.log(allocationID: "a1", tail: 5) ?? [], as: UTF8.self)
        #expect(log.contains("SIGKILL to its group"))
        #expect(!FileManager.default.fileExists(atPath: box.data + "/instances/a1.json"))
        // A stopped instance left out again is forgotten.
        await supervisor.apply([])
        #expect(await supervisor.reports().isEmpty)
        await supervisor.shutdown()
    }

    @Test("Wanted again while stopping: started anew once the old process is gone")
    func wantedAgainWhileStopping() async throws {
        let box = try Sandbox()
        defer { box.remove() }
        let supervisor = Supervisor(dataDirectory: box.data, options: fastOptions(ports: 21280...21299))
        // sh ignores SIGTERM here, so the stop takes the whole grace.
        let spec = box.spec("a1", ["sh", "-c", "trap '' TERM; while true; do sleep 0.05; done"], stopGrace: .milliseconds(200))
        await supervisor.apply([spec])
        let first = try #require(await supervisor.pid("a1"))
        await supervisor.apply([])
        await supervisor.apply([spec])
        #expect(await supervisor.report("a1")?.state == .stopping)
        await eventually("running anew") {
            let pid = await supervisor.pid("a1")
            return pid != nil && pid != first
        }
        #expect(!ProcessIdentity.isRunning(first))
        #expect(await supervisor.report("a1")?.state == .running)
        await supervisor.shutdown(stopInstances: true)
    }

    @Test("A command that does not exist: failed, with a message that names it, and no restarts")
    func missingCommand() async throws {
        let box = try Sandbox()
        defer { box.remove() }
        let supervisor = Supervisor(dataDirectory: box.data, options: fastOptions(ports: 21140...21159))
        await supervisor.apply([box.spec("a1", ["no-such-program-a67", "x"]), box.spec("a2", ["./missing"])])
        let reports = await supervisor.reports()
        #expect(reports.map(\.state) == [.failed, .failed])
        #expect(reports[0].message == "command not found: no-such-program-a67 (no executable file on PATH /usr/local/bin:/usr/bin:/bin); fix `command` in a67app.toml")
        #expect(reports[1].message == "command not found: ./missing (no executable file in \(box.bundle)); fix `command` in a67app.toml")
        #expect(reports.allSatisfy { $0.restarts == 0 && !$0.healthy })
        await supervisor.shutdown()
    }

    @Test("A port in use is never handed out; instances get distinct ports")
    func portInUse() async throws {
        let box = try Sandbox()
        defer { box.remove() }
        try box.script("hold.py", "import socket, time\ns = socket.socket()\ns.bind(('0.0.0.0', 21160))\ns.listen()\nopen('held', 'w').close()\ntime.sleep(1000)\n")
        let holder = try ChildProcesses.spawn(SpawnRequest(executable: "/usr/bin/python3", arguments: ["python3", "hold.py"], environment: [],
                                                           directory: box.bundle))
        defer {
            kill(holder, SIGKILL)
            _ = waitpid(holder, nil, 0)
        }
        await eventually("port held") { box.read("held") != nil }
        #expect(!LocalSockets.isPortFree(21160))
        let supervisor = Supervisor(dataDirectory: box.data, options: fastOptions(ports: 21160...21163))
        await supervisor.apply([box.spec("a1", ["sleep", "1000"]), box.spec("a2", ["sleep", "1000"]), box.spec("a3", ["sleep", "1000"])])
        let ports = await supervisor.reports().compactMap(\.port)
        #expect(Set(ports) == [21161, 21162, 21163])
        // The range is used up: a fourth waits, saying why.
        await supervisor.apply([box.spec("a1", ["sleep", "1000"]), box.spec("a2", ["sleep", "1000"]), box.spec("a3", ["sleep", "1000"]),
                                box.spec("a4", ["sleep", "1000"])])
        let fourth = try #require(await supervisor.report("a4"))
        #expect(fourth.state == .pending && fourth.port == nil)
        #expect(fourth.message?.hasPrefix("no free port in 21160-21163") == true)
        await supervisor.shutdown(stopInstances: true)
    }

    @Test("The log is bounded: rotated to one older file, and its tail comes back")
    func boundedLog() async throws {
        let box = try Sandbox()
        defer { box.remove() }
        // 200 KB of output, then (once the test says so) one last line.
        try box.script("chatty", """
            #!/bin/sh
            i=0
            while [ $i -lt 2000 ]; do printf 'line %04d ..........................................................................\\n' $i; i=$((i+1)); done
            touch written
            while [ ! -f go ]; do sleep 0.02; done
            echo last line
            sleep 1000

            """)
        let limit = 16 << 10
        let supervisor = Supervisor(dataDirectory: box.data, options: fastOptions(ports: 21180...21199, logLimit: limit))
        await supervisor.apply([box.spec("a1", ["./chatty"])])
        let log = box.data + "/logs/a1"
        func size(_ path: String) -> Int { (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue ?? .max }
        await eventually("written and rotated") {
            box.read("written") != nil && FileManager.default.fileExists(atPath: log + ".1") && size(log) <= limit
        }
        #expect(size(log + ".1") <= limit)
        try "".write(toFile: box.bundle + "/go", atomically: true, encoding: .utf8)
        await eventually("the last line logged") {
            String(decoding: await supervisor.log(allocationID: "a1", tail: 1) ?? [], as: UTF8.self) == "last line\n"
        }
        // The agent's own line about the start may land anywhere among the script's first lines.
        let tail = String(decoding: await supervisor.log(allocationID: "a1", tail: 4) ?? [], as: UTF8.self)
        let appLines = tail.split(separator: "\n").filter { !$0.hasPrefix("a67: ") }.suffix(2)
        #expect(appLines.first?.hasPrefix("line 1999 ") == true, "\(tail)")
        #expect(appLines.last == "last line")
        #expect(await supervisor.log(allocationID: "nothing", tail: 2) == nil)
        await supervisor.shutdown(stopInstances: true)
    }

    @Test("Adoption: a second supervisor on the same data folder adopts a live instance (same pid) and restarts a dead one")
    func adoption() async throws {
        let box = try Sandbox()
        defer { box.remove() }
        let first = Supervisor(dataDirectory: box.data, options: fastOptions(ports: 21200...21219))
        await first.apply([box.spec("live", ["sleep", "1000"]), box.spec("dead", ["sleep", "1000"])])
        let live = try #require(await first.pid("live"))
        let dead = try #require(await first.pid("dead"))
        let livePort = await first.report("live")?.port
        await first.shutdown()
        // The agent is gone (its loop stopped); one of its instances dies meanwhile.
        kill(dead, SIGKILL)
        await eventually("dead is gone") { !ProcessIdentity.isRunning(dead) }

        let second = Supervisor(dataDirectory: box.data, options: fastOptions(ports: 21200...21219))
        await second.adopt()
        #expect(await second.pid("live") == live)
        #expect(await second.report("live")?.port == livePort)
        #expect(await second.report("live")?.state == .running)
        await eventually("dead restarted") { await second.pid("dead") != nil }
        #expect(await second.pid("dead") != dead)
        #expect(await second.report("dead")?.restarts == 1)
        // The adopted one stays supervised, by polling: killed, it is started again.
        kill(live, SIGKILL)
        await eventually("adopted one restarted") {
            let restarts = await second.report("live")?.restarts
            let pid = await second.pid("live")
            return restarts == 1 && pid != nil
        }
        #expect(await second.pid("live") != live)
        await second.shutdown(stopInstances: true)
        #expect(await second.reports().allSatisfy { $0.state == .stopped })
    }
}

@Suite("Agent supervisor as root", .enabled(if: getuid() == 0, "needs root"))
struct AgentRootTests {
    @Test("Instances of a root agent run as the unprivileged user")
    func unprivilegedUser() async throws {
        let box = try Sandbox()
        defer { box.remove() }
        let supervisor = Supervisor(dataDirectory: box.data, options: fastOptions(ports: 21220...21239, runAs: .automatic))
        await supervisor.apply([box.spec("a1", ["sleep", "1000"])])
        let pid = try #require(await supervisor.pid("a1"))
        let passwd = (try? String(contentsOfFile: "/etc/passwd", encoding: .utf8)) ?? ""
        let expected = try #require(RunAs.automatic.ids(agentUID: 0, passwd: passwd))
        #expect(expected.uid != 0)
        #expect(uid(of: pid) == expected.uid)
        await supervisor.shutdown(stopInstances: true)
    }

    @Test("cgroup v1: the instance is in its memory and cpu groups, with its limits set, before it runs",
          .enabled(if: { if case .v1(let memory?, let cpu?) = CgroupHierarchy.detectHere() { _ = (memory, cpu); return true }; return false }(),
                   "needs cgroup v1 memory and cpu hierarchies"))
    func cgroupV1() async throws {
        let box = try Sandbox()
        defer { box.remove() }
        // The instance prints its own cgroups first thing: they were joined before exec.
        try box.script("show", "#!/bin/sh\ncat /proc/self/cgroup > cgroups\nmv cgroups cgroups-at-start\nexec sleep 1000\n")
        let id = "cg-" + UUID().uuidString.prefix(8).lowercased()
        let supervisor = Supervisor(dataDirectory: box.data, options: fastOptions(ports: 21240...21259, cgroups: nil))
        await supervisor.apply([box.spec(id, ["./show"], resources: Resources(memoryBytes: 64 << 20, cpuMillis: 500))])
        // (A script just written may be busy for a moment, ETXTBSY: the supervisor tries again.)
        await eventually("started") { await supervisor.pid(id) != nil }
        let pid = try #require(await supervisor.pid(id))
        await eventually("cgroups written") { box.read("cgroups-at-start") != nil }
        let atStart = try #require(box.read("cgroups-at-start"))
        #expect(atStart.contains(":memory:/a67/\(id)\n"))
        #expect(atStart.contains(":cpu:/a67/\(id)\n") || atStart.contains(":cpu,cpuacct:/a67/\(id)\n"))
        let memoryGroup = "/sys/fs/cgroup/memory/a67/" + id
        let cpuGroup = "/sys/fs/cgroup/cpu/a67/" + id
        defer {
            box.remove()
            _ = rmdir(memoryGroup)
            _ = rmdir(cpuGroup)
        }
        let members = try String(contentsOfFile: memoryGroup + "/cgroup.procs", encoding: .utf8)
        #expect(members.split(separator: "\n").contains("\(pid)"))
        #expect(try String(contentsOfFile: memoryGroup + "/memory.limit_in_bytes", encoding: .utf8) == "67108864\n")
        #expect(try String(contentsOfFile: cpuGroup + "/cpu.cfs_quota_us", encoding: .utf8) == "50000\n")
        #expect(await supervisor.report(id)?.message == nil)
        await supervisor.shutdown(stopInstances: true)
        // Stopped: its groups are removed.
        #expect(!FileManager.default.fileExists(atPath: memoryGroup))
        #expect(!FileManager.default.fileExists(atPath: cpuGroup))
    }

    @Test("cgroup v1: an instance that fails before exec leaves no group behind",
          .enabled(if: { if case .v1(let memory?, let cpu?) = CgroupHierarchy.detectHere() { _ = (memory, cpu); return true }; return false }(),
                   "needs cgroup v1 memory and cpu hierarchies"))
    func cgroupOfAFailedStartIsRemoved() async throws {
        let box = try Sandbox()
        defer { box.remove() }
        let id = "cgf-" + UUID().uuidString.prefix(8).lowercased()
        let supervisor = Supervisor(dataDirectory: box.data, options: fastOptions(ports: 21260...21279, cgroups: nil))
        var spec = box.spec(id, ["sleep", "1000"], resources: Resources(memoryBytes: 64 << 20, cpuMillis: 500))
        spec.directory = box.bundle + "/no-such-folder"  // the child joins its groups, then cannot enter its folder
        await supervisor.apply([spec])
        await eventually("failed") { await supervisor.report(id)?.state == .failed }
        #expect(await supervisor.report(id)?.message?.contains("no-such-folder") == true)
        #expect(!FileManager.default.fileExists(atPath: "/sys/fs/cgroup/memory/a67/" + id))
        #expect(!FileManager.default.fileExists(atPath: "/sys/fs/cgroup/cpu/a67/" + id))
        await supervisor.shutdown(stopInstances: true)
    }

    @Test("cgroups not writable: the instance runs without limits, and its report says so")
    func cgroupNotWritable() async throws {
        let box = try Sandbox()
        defer { box.remove() }
        let supervisor = Supervisor(dataDirectory: box.data,
                                    options: fastOptions(ports: 21260...21279, cgroups: .v1(memory: "/proc/a67-no-cgroups", cpu: nil)))
        await supervisor.apply([box.spec("a1", ["sleep", "1000"])])
        let report = try #require(await supervisor.report("a1"))
        #expect(report.state == .running)
        #expect(report.message?.hasPrefix("memory and CPU limits not enforced: could not write /proc/a67-no-cgroups/a67") == true)
        await supervisor.shutdown(stopInstances: true)
    }
}

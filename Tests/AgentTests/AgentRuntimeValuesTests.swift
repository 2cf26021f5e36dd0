import ChunkStore
import Compute
import Foundation
import Testing
@testable import Agent

@Suite("Agent runtime values")
struct AgentRuntimeValuesTests {
    @Test("Restart backoff doubles from the base up to the cap, and resets after a long healthy run",
          arguments: [
              // (healthy time of each run before its exit, the waits expected), base 1 s, cap 8 s, reset after 60 s
              ([0, 0, 0, 0, 0, 0], [1, 2, 4, 8, 8, 8]),
              ([0, 0, 0, 60, 0], [1, 2, 4, 1, 2]),
              ([0, 0, 59, 0], [1, 2, 4, 8]),
              ([120], [1]),
          ] as [([Int], [Int])])
    func backoff(healthy: [Int], waits: [Int]) {
        var backoff = RestartBackoff(base: .seconds(1), cap: .seconds(8), resetAfter: .seconds(60))
        let got = healthy.map { backoff.delay(afterHealthyFor: .seconds($0)) }
        #expect(got == waits.map { .seconds($0) })
    }

    @Test("Backoff never overflows past the cap however long the loop")
    func backoffLongLoop() {
        var backoff = RestartBackoff(base: .milliseconds(50), cap: .seconds(30), resetAfter: .seconds(60))
        let waits = (0..<200).map { _ in backoff.delay(afterHealthyFor: .zero) }
        #expect(waits.last == .seconds(30))
        #expect(waits.allSatisfy { $0 <= .seconds(30) && $0 >= .milliseconds(50) })
    }

    @Test("Health: thresholds in a row, failures in the grace do not count", arguments: [
        // (probe results with the seconds since start, healthy after each)
        ([(true, 0)], [true], 1, 3),
        ([(true, 0), (true, 1)], [false, true], 2, 3),
        ([(true, 0), (false, 20), (false, 21), (false, 22)], [true, true, true, false], 1, 3),
        ([(true, 0), (false, 20), (true, 21), (false, 22), (false, 23)], [true, true, true, true, true], 1, 3),
        ([(false, 1), (false, 2), (true, 3)], [false, false, true], 1, 1),
    ] as [([(Bool, Int)], [Bool], Int, Int)])
    func health(results: [(Bool, Int)], healthy: [Bool], healthyThreshold: Int, unhealthyThreshold: Int) {
        var tracker = HealthTracker(check: HealthCheck(probe: .tcp, healthyThreshold: healthyThreshold,
                                                       unhealthyThreshold: unhealthyThreshold, grace: .seconds(10)))
        #expect(!tracker.healthy)
        var got: [Bool] = []
        for (passed, second) in results {
            tracker.record(passed: passed, sinceStart: .seconds(second))
            got.append(tracker.healthy)
        }
        #expect(got == healthy)
    }

    @Test("Failures within the grace do not undo health either")
    func healthGrace() {
        var tracker = HealthTracker(check: HealthCheck(probe: .tcp, unhealthyThreshold: 1, grace: .seconds(10)))
        tracker.record(passed: true, sinceStart: .seconds(1))
        let changedInGrace = tracker.record(passed: false, sinceStart: .seconds(2))
        #expect(!changedInGrace)
        #expect(tracker.healthy)
        let changedAfter = tracker.record(passed: false, sinceStart: .seconds(11))
        #expect(changedAfter)
        #expect(!tracker.healthy)
    }

    @Test("No check: healthy while running")
    func healthNone() {
        #expect(HealthTracker(check: HealthCheck()).healthy)
    }

    @Test("cgroup hierarchy detection", arguments: [
        (["/sys/fs/cgroup/cgroup.controllers"], CgroupHierarchy.v2(root: "/sys/fs/cgroup")),
        (["/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
          "/sys/fs/cgroup/unified/cgroup.controllers"], .v1(memory: "/sys/fs/cgroup/memory", cpu: "/sys/fs/cgroup/cpu")),
        (["/sys/fs/cgroup/memory/memory.limit_in_bytes"], .v1(memory: "/sys/fs/cgroup/memory", cpu: nil)),
        ([], .none),
    ] as [([String], CgroupHierarchy)])
    func detect(files: [String], expected: CgroupHierarchy) {
        #expect(CgroupHierarchy.detect { files.contains($0) } == expected)
    }

    @Test("cgroup v2 plan: an a67 group at the top, controllers enabled, memory.max and cpu.max")
    func planV2() throws {
        let plan = try #require(CgroupPlan.make(.v2(root: "/cg"), allocationID: "a1", memoryBytes: 128 << 20, cpuMillis: 500))
        #expect(plan.directories == ["/cg/a67", "/cg/a67/a1"])
        #expect(plan.writes.map(\.path) == ["/cg/cgroup.subtree_control", "/cg/cgroup.subtree_control",
                                            "/cg/a67/cgroup.subtree_control", "/cg/a67/cgroup.subtree_control",
                                            "/cg/a67/a1/memory.max", "/cg/a67/a1/cpu.max"])
        #expect(plan.writes.map(\.content) == ["+memory", "+cpu", "+memory", "+cpu", "134217728", "50000 100000"])
        // Enabling controllers may fail (already on, or enabled above by whoever delegated): the limits may not.
        #expect(plan.writes.map(\.mayFail) == [true, true, true, true, false, false])
        #expect(plan.procFiles == ["/cg/a67/a1/cgroup.procs"])
        #expect(plan.groups == ["/cg/a67/a1"])
    }

    @Test("cgroup v1 plan: memory.limit_in_bytes and the CFS quota, one group per controller")
    func planV1() throws {
        let plan = try #require(CgroupPlan.make(.v1(memory: "/cg/memory", cpu: "/cg/cpu"), allocationID: "a1",
                                                memoryBytes: 64 << 20, cpuMillis: 250))
        #expect(plan.directories == ["/cg/memory/a67", "/cg/memory/a67/a1", "/cg/cpu/a67", "/cg/cpu/a67/a1"])
        #expect(plan.writes == [
            .init(path: "/cg/memory/a67/a1/memory.limit_in_bytes", content: "67108864"),
            .init(path: "/cg/cpu/a67/a1/cpu.cfs_period_us", content: "100000"),
            .init(path: "/cg/cpu/a67/a1/cpu.cfs_quota_us", content: "25000"),
        ])
        #expect(plan.procFiles == ["/cg/memory/a67/a1/cgroup.procs", "/cg/cpu/a67/a1/cgroup.procs"])
    }

    @Test("cgroup plans leave unset limits out, and no hierarchy means no plan")
    func planWithoutLimits() throws {
        let plan = try #require(CgroupPlan.make(.v1(memory: "/m", cpu: nil), allocationID: "x", memoryBytes: 0, cpuMillis: nil))
        #expect(plan.writes.isEmpty)
        #expect(plan.procFiles == ["/m/a67/x/cgroup.procs"])
        // The smallest quota the kernel takes is 1 ms per period.
        let tiny = try #require(CgroupPlan.make(.v2(root: "/cg"), allocationID: "x", memoryBytes: nil, cpuMillis: 1))
        #expect(tiny.writes.last == .init(path: "/cg/a67/x/cpu.max", content: "1000 100000"))
        #expect(CgroupPlan.make(.none, allocationID: "x", memoryBytes: 1, cpuMillis: 1) == nil)
    }

    @Test("Ports: never one taken or in use, distinct, moving on through the range")
    func ports() {
        var picker = PortPicker(range: 100...105)
        let inUse: Set<Int> = [101]
        #expect(picker.pick(2, taken: [100], isFree: { !inUse.contains($0) }) == [102, 103])
        #expect(picker.pick(1, taken: [], isFree: { !inUse.contains($0) }) == [104])
        #expect(picker.pick(2, taken: [102, 103, 104], isFree: { !inUse.contains($0) }) == [105, 100])
        #expect(picker.pick(3, taken: [100, 102, 103, 104, 105], isFree: { !inUse.contains($0) }) == nil)
    }

    @Test("Run as: root gets a67app, else nobody, else 65534; others keep their own", arguments: [
        (0, "root:x:0:0::/root:/bin/sh\na67app:x:990:991::/:/usr/sbin/nologin\nnobody:x:65534:65534::/:/x\n", RunAs.automatic, 990, 991),
        (0, "root:x:0:0::/root:/bin/sh\nnobody:x:65534:65533::/:/x\n", .automatic, 65534, 65533),
        (0, "root:x:0:0::/root:/bin/sh\n", .automatic, 65534, 65534),
        (0, "", .user(uid: 5, gid: 6), 5, 6),
    ] as [(UInt32, String, RunAs, UInt32, UInt32)])
    func runAs(agent: UInt32, passwd: String, runAs: RunAs, uid: UInt32, gid: UInt32) {
        let ids = runAs.ids(agentUID: agent, passwd: passwd)
        #expect(ids?.uid == uid && ids?.gid == gid)
    }

    @Test("Run as: an unprivileged agent, or .agent, keeps its own user")
    func runAsSelf() {
        #expect(RunAs.automatic.ids(agentUID: 1000, passwd: "nobody:x:65534:65534::/:/x") == nil)
        #expect(RunAs.agent.ids(agentUID: 0, passwd: "nobody:x:65534:65534::/:/x") == nil)
    }

    @Test("Log tail: the last lines, a final line without newline counts", arguments: [
        ("a\nb\nc\n", 2, "b\nc\n"),
        ("a\nb\nc", 2, "b\nc"),
        ("a\nb\n", 5, "a\nb\n"),
        ("", 3, ""),
        ("a\n", 0, ""),
    ])
    func lastLines(text: String, count: Int, expected: String) {
        #expect(Array(InstanceLog.lastLines(Array(text.utf8), count: count)) == Array(expected.utf8))
    }

    @Test("Spawn errors: a missing program is final, a busy one or a fork shortage passes", arguments: [
        (SpawnError.Step.exec, ENOENT, true), (.exec, EACCES, true), (.exec, ETXTBSY, false), (.directory, ENOENT, true),
        (.user, EPERM, true), (.fork, EAGAIN, false), (.cgroup, EACCES, false),
    ] as [(SpawnError.Step, Int32, Bool)])
    func spawnErrors(step: SpawnError.Step, errno: Int32, permanent: Bool) {
        #expect(SpawnError(step: step, errno: errno, executable: "x").isPermanent == permanent)
    }

    @Test("Environment: clean, the manifest's, then PORT and PORT_NAME")
    func environment() {
        let manifest = AppManifest(name: "web", command: ["x"], environment: ["GREETING": "hi", "PATH": "/opt/bin"],
                                   ports: ["metrics", "admin-ui"])
        let environment = Supervisor.environment(of: manifest, ports: [20001, 20002, 20003], searchPath: "/usr/bin", home: "/r")
        #expect(environment == ["PATH": "/opt/bin", "HOME": "/r", "LANG": "C.UTF-8", "GREETING": "hi", "PORT": "20001",
                                "PORT_METRICS": "20002", "PORT_ADMIN_UI": "20003"])
    }
}

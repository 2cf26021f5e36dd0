import ChunkStore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Which cgroup hierarchy the machine has, and where: the agent enforces an instance's memory and
/// CPU limits through it. Found by `detect` from which files exist (a pure function of them).
public enum CgroupHierarchy: Sendable, Equatable {
    /// The unified hierarchy (current distributions): `cgroup.controllers` at its root.
    case v2(root: String)
    /// Separate hierarchies per controller (older systems, these machines): the memory and cpu
    /// mounts, each nil when absent.
    case v1(memory: String?, cpu: String?)
    /// No cgroups the agent can use.
    case none

    /// The hierarchy under `root` (/sys/fs/cgroup), given which paths exist. A hybrid system (v1
    /// controllers, and a unified mount at `root/unified` without controllers) counts as v1.
    public static func detect(root: String = "/sys/fs/cgroup", exists: (String) -> Bool) -> CgroupHierarchy {
        if exists(root + "/cgroup.controllers") { return .v2(root: root) }
        let memory = exists(root + "/memory/memory.limit_in_bytes") ? root + "/memory" : nil
        let cpu = exists(root + "/cpu/cpu.cfs_quota_us") ? root + "/cpu" : nil
        return memory == nil && cpu == nil ? .none : .v1(memory: memory, cpu: cpu)
    }

    /// The hierarchy of this machine.
    public static func detectHere() -> CgroupHierarchy {
        detect { FileManager.default.fileExists(atPath: $0) }
    }
}

/// What to create and write so that one instance runs in its own cgroup with its limits: a pure value,
/// tested for both hierarchies; `CgroupPlan.apply` does the writes.
///
/// Instance groups live in an `a67` group at the top of each hierarchy (/sys/fs/cgroup/a67/ALLOC on
/// v2; /sys/fs/cgroup/memory/a67/ALLOC and /sys/fs/cgroup/cpu/a67/ALLOC on v1), not under the agent's
/// own group: they outlive the agent (which adopts them after its restart), and a service manager
/// stopping the agent's group must not take its instances with it. On v2 the `a67` group holds no
/// process, so its children may have controllers (the no-internal-processes rule).
public struct CgroupPlan: Sendable, Equatable {
    public struct Write: Sendable, Equatable {
        public var path: String
        public var content: String
        /// A write whose failure is not the plan's (enabling a controller that is already on, or that
        /// a parent's owner enabled for us): a limit file that is then missing fails in its place.
        public var mayFail = false
    }

    /// Folders to create, parents first (existing ones are fine).
    public var directories: [String]
    /// Files to write, in order.
    public var writes: [Write]
    /// The `cgroup.procs` files the instance writes "0" to before its exec: it joins the groups
    /// before running a single instruction of its own, so its very first allocation is charged.
    public var procFiles: [String]
    /// The instance's groups, removed (rmdir) once its processes are gone.
    public var groups: [String]

    /// CPU limits are a quota per period of 100 ms.
    public static let cpuPeriodMicroseconds = 100_000
    /// The name of the agent's group in each hierarchy.
    public static let agentGroup = "a67"

    /// The plan for instance `allocationID` limited to `memoryBytes` and `cpuMillis` (thousandths of a
    /// core); a limit that is nil or not positive is not set. Nil for `.none`.
    public static func make(_ hierarchy: CgroupHierarchy, allocationID: String, memoryBytes: Int64?, cpuMillis: Int?) -> CgroupPlan? {
        let memory = memoryBytes.flatMap { $0 > 0 ? $0 : nil }
        let quota = cpuMillis.flatMap { $0 > 0 ? max(1000, $0 * cpuPeriodMicroseconds / 1000) : nil }
        switch hierarchy {
        case .none:
            return nil
        case .v2(let root):
            let parent = root + "/" + agentGroup
            let group = parent + "/" + allocationID
            var writes: [Write] = []
            // Each controller on its own line: enabling one that is already on is fine, and one the
            // kernel lacks then fails alone.
            for folder in [root, parent] {
                writes += ["+memory", "+cpu"].map { Write(path: folder + "/cgroup.subtree_control", content: $0, mayFail: true) }
            }
            if let memory { writes.append(Write(path: group + "/memory.max", content: "\(memory)")) }
            if let quota { writes.append(Write(path: group + "/cpu.max", content: "\(quota) \(cpuPeriodMicroseconds)")) }
            return CgroupPlan(directories: [parent, group], writes: writes, procFiles: [group + "/cgroup.procs"], groups: [group])
        case .v1(let memoryRoot, let cpuRoot):
            var plan = CgroupPlan(directories: [], writes: [], procFiles: [], groups: [])
            if let memoryRoot {
                let group = memoryRoot + "/" + agentGroup + "/" + allocationID
                plan.directories += [memoryRoot + "/" + agentGroup, group]
                if let memory { plan.writes.append(Write(path: group + "/memory.limit_in_bytes", content: "\(memory)")) }
                plan.procFiles.append(group + "/cgroup.procs")
                plan.groups.append(group)
            }
            if let cpuRoot {
                let group = cpuRoot + "/" + agentGroup + "/" + allocationID
                plan.directories += [cpuRoot + "/" + agentGroup, group]
                if let quota {
                    plan.writes.append(Write(path: group + "/cpu.cfs_period_us", content: "\(cpuPeriodMicroseconds)"))
                    plan.writes.append(Write(path: group + "/cpu.cfs_quota_us", content: "\(quota)"))
                }
                plan.procFiles.append(group + "/cgroup.procs")
                plan.groups.append(group)
            }
            return plan
        }
    }

    /// Creates the groups and writes the limits. Throws the first failure as words naming the file,
    /// for the instance's report ("memory and CPU limits not enforced: ...").
    public func apply() throws(CgroupError) {
        for directory in directories where !FileManager.default.fileExists(atPath: directory) {
            guard mkdir(directory, 0o755) == 0 || errno == EEXIST else { throw CgroupError(path: directory, errno: errno) }
        }
        for write in writes {
            let fd = open(write.path, O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else {
                if write.mayFail { continue }
                throw CgroupError(path: write.path, errno: errno)
            }
            defer { close(fd) }
            do {
                try LocalFiles.write(fd, Array(write.content.utf8)[...], path: write.path)
            } catch {
                if !write.mayFail { throw CgroupError(path: write.path, errno: error.errno) }
            }
        }
    }

    /// Removes the instance's groups (only possible once they hold no process); best effort.
    public func remove() {
        for group in groups { _ = rmdir(group) }
    }
}

/// A cgroup file or folder the agent could not write: limits go unenforced, and the report says why.
public struct CgroupError: Error, Sendable, Equatable, CustomStringConvertible {
    public let path: String
    public let errno: Int32

    public var description: String {
        "memory and CPU limits not enforced: could not write \(path): \(String(cString: strerror(errno)))"
    }
}

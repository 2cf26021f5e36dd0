import ChunkStore
import Compute
import Foundation

/// What this machine offers apps and what is in use, read from /proc and the data folder's file
/// system for the join and every heartbeat.
public enum HostResources {
    /// Capacity: all memory, every CPU (thousandths), the data folder's file system.
    public static func capacity(data: String) -> Resources {
        let memory = (try? meminfo())?.total ?? 0
        let (diskTotal, _) = disk(data)
        return Resources(memoryBytes: memory, cpuMillis: ProcessInfo.processInfo.activeProcessorCount * 1000, diskBytes: diskTotal)
    }

    /// In use now: memory not available, the 1-minute load average as CPUs, disk not free.
    public static func used(data: String) -> Resources {
        let memory = (try? meminfo()).map { $0.total - $0.available } ?? 0
        let (diskTotal, diskFree) = disk(data)
        return Resources(memoryBytes: max(0, memory), cpuMillis: loadAverage().map { Int($0 * 1000) } ?? 0,
                         diskBytes: max(0, diskTotal - diskFree))
    }

    /// MemTotal and MemAvailable of /proc/meminfo's text, in bytes.
    public static func parseMeminfo(_ text: String) -> (total: Int64, available: Int64)? {
        var values: [String: Int64] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(whereSeparator: { $0 == ":" || $0 == " " })
            guard parts.count >= 2, let kib = Int64(parts[1]) else { continue }
            values[String(parts[0])] = kib * 1024
        }
        guard let total = values["MemTotal"] else { return nil }
        return (total, values["MemAvailable"] ?? values["MemFree"] ?? 0)
    }

    /// The first field of /proc/loadavg's text.
    public static func parseLoadAverage(_ text: String) -> Double? {
        text.split(separator: " ").first.flatMap { Double($0) }
    }

    static func meminfo() throws -> (total: Int64, available: Int64)? {
        parseMeminfo(String(decoding: try LocalFile.read("/proc/meminfo", atMost: 1 << 16), as: UTF8.self))
    }

    static func loadAverage() -> Double? {
        (try? LocalFile.read("/proc/loadavg", atMost: 4096)).flatMap { parseLoadAverage(String(decoding: $0, as: UTF8.self)) }
    }

    static func disk(_ path: String) -> (total: Int64, free: Int64) {
        LocalFiles.space(of: path) ?? (0, 0)
    }
}

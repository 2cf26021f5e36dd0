import Foundation

/// What the agent keeps on disk about each instance it runs (dataDirectory/instances/ALLOC.json), so
/// that after its own restart (even a kill -9) it can find the process again and take it back, or
/// start it anew: the spec, the process's identity (pid and start time, so that a reused pid is not
/// taken for it), its ports and how often it was restarted. Written whenever one of them changes;
/// removed once the instance has stopped for good.
public struct InstanceRecord: Sendable, Equatable, Codable {
    public var spec: InstanceSpec
    public var pid: Int32?
    /// The process's start time in clock ticks since boot (field 22 of /proc/PID/stat).
    public var startTicks: UInt64?
    /// The main port first, then one for each of the manifest's extra ports, in its order.
    public var ports: [Int]
    public var restarts: Int

    public init(spec: InstanceSpec, pid: Int32?, startTicks: UInt64?, ports: [Int], restarts: Int) {
        self.spec = spec
        self.pid = pid
        self.startTicks = startTicks
        self.ports = ports
        self.restarts = restarts
    }

    /// The record's file in `folder` (dataDirectory/instances).
    public static func path(in folder: String, allocationID: String) -> String {
        folder + "/" + allocationID + ".json"
    }

    public func write(in folder: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try encoder.encode(self).write(to: URL(fileURLWithPath: Self.path(in: folder, allocationID: spec.allocationID)), options: .atomic)
    }

    /// Every record in `folder`, and the files that could not be read (with why).
    public static func readAll(in folder: String) -> (records: [InstanceRecord], unreadable: [String]) {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".json") }.sorted()
        var records: [InstanceRecord] = []
        var unreadable: [String] = []
        for name in names {
            let path = folder + "/" + name
            do {
                records.append(try JSONDecoder().decode(InstanceRecord.self, from: Data(contentsOf: URL(fileURLWithPath: path))))
            } catch {
                unreadable.append("\(path): \(error)")
            }
        }
        return (records, unreadable)
    }
}

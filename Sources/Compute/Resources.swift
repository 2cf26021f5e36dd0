/// An amount of a node's resources: what an instance asks for, what a node has, what is in use.
public struct Resources: Sendable, Hashable, Codable {
    public var memoryBytes: Int64
    /// Thousandths of a core (0.5 core = 500).
    public var cpuMillis: Int
    public var diskBytes: Int64

    public init(memoryBytes: Int64 = 0, cpuMillis: Int = 0, diskBytes: Int64 = 0) {
        self.memoryBytes = memoryBytes
        self.cpuMillis = cpuMillis
        self.diskBytes = diskBytes
    }

    public static let zero = Resources()

    public static func + (a: Resources, b: Resources) -> Resources {
        Resources(memoryBytes: a.memoryBytes + b.memoryBytes, cpuMillis: a.cpuMillis + b.cpuMillis, diskBytes: a.diskBytes + b.diskBytes)
    }

    public static func - (a: Resources, b: Resources) -> Resources {
        Resources(memoryBytes: a.memoryBytes - b.memoryBytes, cpuMillis: a.cpuMillis - b.cpuMillis, diskBytes: a.diskBytes - b.diskBytes)
    }

    /// Whether every amount of `self` fits in `room`.
    public func fits(in room: Resources) -> Bool {
        memoryBytes <= room.memoryBytes && cpuMillis <= room.cpuMillis && diskBytes <= room.diskBytes
    }
}

/// A condition on a node's labels that an app's instances require (`region = "eu"`, `disk != "hdd"`).
public struct Constraint: Sendable, Hashable, Codable, CustomStringConvertible {
    public enum Operator: String, Sendable, Hashable, Codable {
        case equals = "="
        case notEquals = "!="
    }

    public let label: String
    public let op: Operator
    public let value: String

    public init(label: String, op: Operator = .equals, value: String) {
        self.label = label
        self.op = op
        self.value = value
    }

    /// Whether a node with `labels` satisfies it (a missing label equals nothing).
    public func isSatisfied(by labels: [String: String]) -> Bool {
        switch op {
        case .equals: labels[label] == value
        case .notEquals: labels[label] != value
        }
    }

    /// "region=eu", "disk!=hdd".
    public var description: String { label + op.rawValue + value }
}

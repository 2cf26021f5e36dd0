import Compute

/// One instance the node should run: the allocation the controller placed here, the app's manifest,
/// and the folder its bundle is unpacked in. The supervisor runs it until it is no longer desired.
public struct InstanceSpec: Sendable, Equatable, Codable {
    /// Unique among all allocations: the instance's name on this node (its log, state file, cgroup).
    public var allocationID: String
    public var app: String
    public var version: Int
    public var manifest: AppManifest
    /// The unpacked bundle (releases/APP/VERSION): the process's working directory, where a relative
    /// program (`./server`) is found.
    public var directory: String

    public init(allocationID: String, app: String, version: Int, manifest: AppManifest, directory: String) {
        self.allocationID = allocationID
        self.app = app
        self.version = version
        self.manifest = manifest
        self.directory = directory
    }
}

import BackendTesting
import ChunkStore
import Compute
import Controller
import Testing

/// A real catalog with the controller's tables, in a temporary folder, for the controller's suites
/// (ControllerNodeTests, ControllerAppTests).
struct ControllerFixture {
    let folder: TemporaryDirectory
    let catalog: Catalog
    let store: ControllerStore
    /// A fixed moment (nanoseconds), far from 0 so that a time in seconds would show.
    static let t0: Int64 = 1_800_000_000 * 1_000_000_000
    static let capacity = Resources(memoryBytes: 4 << 30, cpuMillis: 2000, diskBytes: 20 << 30)

    init() throws {
        folder = try TemporaryDirectory()
        catalog = try Catalog(path: folder.path + "/catalog.db", create: true, modules: [ControllerSchema.schema])
        store = ControllerStore(catalog: catalog)
    }

    /// A node joined with a fresh token.
    func join(_ name: String, labels: [String: String] = [:], at now: Int64 = t0) throws -> NodeRegistration {
        let token = try store.createJoinToken(ttl: .seconds(600), now: now)
        return try store.register(token: token, name: name, address: "10.0.0.1:7070", labels: labels, capacity: Self.capacity,
                                  agentVersion: "0.15.0", now: now)
    }

    func errorCode(_ work: () throws -> Void) -> StoreError.Code? {
        do { try work() } catch let error as StoreError { return error.code } catch { return .internal }
        return nil
    }
}

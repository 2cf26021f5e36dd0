import ChunkStore
import Synchronization

/// A backend in memory, for unit tests. Keeps the Backend contract (atomic puts, byte-ordered
/// listing, classified errors) so it can stand in for any provider.
public final class MemoryBackend: Backend {
    private let objects = Mutex<[String: [UInt8]]>([:])
    public let location: String

    public init(name: String = "memory") { location = "memory \(name)" }

    public func put(_ name: String, data: [UInt8]) async throws { objects.withLock { $0[name] = data } }

    public func get(_ name: String, range: Range<Int>?) async throws -> [UInt8] {
        guard let data = objects.withLock({ $0[name] }) else { throw BackendError.notFound(name) }
        guard let range else { return data }
        let lower = min(range.lowerBound, data.count), upper = min(range.upperBound, data.count)
        return Array(data[lower..<max(lower, upper)])
    }

    public func head(_ name: String) async throws -> ObjectInfo {
        guard let data = objects.withLock({ $0[name] }) else { throw BackendError.notFound(name) }
        return ObjectInfo(name: name, size: data.count)
    }

    public func delete(_ name: String) async throws { _ = objects.withLock { $0.removeValue(forKey: name) } }

    public func list(prefix: String, after: String?, limit: Int) async throws -> ListPage {
        let names = objects.withLock { all in
            all.filter { entry in entry.key.hasPrefix(prefix) && (after.map { entry.key > $0 } ?? true) }
                .map { ObjectInfo(name: $0.key, size: $0.value.count) }
        }.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        guard names.count > limit else { return ListPage(objects: names, nextAfter: nil) }
        let page = Array(names.prefix(limit))
        return ListPage(objects: page, nextAfter: page.last!.name)
    }

    public func usage() async throws -> BackendUsage {
        objects.withLock { all in
            BackendUsage(usedBytes: all.values.reduce(0) { $0 + Int64($1.count) }, objectCount: all.count, freeBytes: nil)
        }
    }

    /// Replaces stored bytes behind the backend's back, to simulate corruption.
    public func tamper(_ name: String, _ change: ([UInt8]) -> [UInt8]) {
        objects.withLock { if let data = $0[name] { $0[name] = change(data) } }
    }

    public var names: [String] { objects.withLock { Array($0.keys) }.sorted() }
}

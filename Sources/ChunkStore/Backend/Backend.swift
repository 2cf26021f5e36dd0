/// A provider's storage: a flat namespace of named objects (names are lowercase ASCII with `/`).
///
/// What every backend guarantees, and the conformance suite checks (BackendTesting.BackendConformance):
/// - `put` is atomic: after it returns, `get` returns exactly the bytes put; a crash or failure
///   mid-put leaves either the old object, or no object, never a partial one. Overwriting is allowed.
/// - `put` returns only once the bytes are durable (synced), as far as the provider lets us know.
/// - Read-after-write: `get`, `head` and `list` see an object as soon as its `put` has returned.
/// - Errors are classified: `BackendError.notFound` for a missing object, `.full` when the provider
///   is out of space or quota, `.transient` for what may succeed if retried (timeouts, resets, 5xx),
///   `.permanent` for what will not (permissions, bad credentials, bad requests). Retrying is the
///   caller's decision (a wrapper's), never the backend's own.
/// - Backends are safe to call from many tasks at once.
public protocol Backend: Sendable {
    /// Where this backend stores, for messages: "directory /srv/a67". Never holds a secret.
    var location: String { get }

    /// Stores `data` under `name`, replacing any object of that name. Atomic and durable on return.
    func put(_ name: String, data: [UInt8]) async throws

    /// Returns the object's bytes, or those in `range` (byte offsets, clamped to the object's end;
    /// a range starting at or past the end returns no bytes). Throws `.notFound` when absent.
    func get(_ name: String, range: Range<Int>?) async throws -> [UInt8]

    /// Returns the object's size. Throws `.notFound` when absent.
    func head(_ name: String) async throws -> ObjectInfo

    /// Removes the object. Removing an absent object is not an error.
    func delete(_ name: String) async throws

    /// Lists objects whose names start with `prefix`, in ascending byte order of name, starting after
    /// `after` (exclusive) when given, at most `limit` per page. `nextAfter` is nil on the last page.
    func list(prefix: String, after: String?, limit: Int) async throws -> ListPage

    /// Space used by this backend's objects, and free space where the provider tells. May walk
    /// the whole store: not for hot paths.
    func usage() async throws -> BackendUsage

    /// Makes a new provider's location ready for its first put: creates what the backend does not
    /// create on demand (a directory's own folder, never a missing parent; a WebDAV root folder).
    /// Called once, when the provider is added (`BackendFactory.prepare`); what already exists is
    /// left as it is. The default does nothing.
    func prepare() async throws
}

/// A backend whose interrupted puts can leave temporary files outside its namespace (the directory
/// backend's `.a67-tmp/`): garbage collection removes those older than its grace period.
public protocol LeftoverSweeping: Sendable {
    /// Removes temporary files last modified more than `olderThan` seconds ago; returns how many and
    /// their bytes.
    func sweepLeftovers(olderThan seconds: Double) async throws -> (count: Int, bytes: Int64)
}

/// A backend whose interrupted uploads stay beside their final names, hidden from `list` (WebDAV's
/// and SFTP's `.LEAF.a67-partial-…`): garbage collection deletes them once it has seen them for its
/// grace period.
public protocol LeftoverListing: Sendable {
    /// The names of interrupted uploads under `prefix` ("" for everything). An old copy an overwrite
    /// moved aside is included only when the final object exists beside it (an overwrite cut short
    /// between its renames keeps the only copy there).
    func leftovers(under prefix: String) async throws -> [String]
}

public struct ObjectInfo: Sendable, Equatable {
    public let name: String
    public let size: Int
    public init(name: String, size: Int) {
        self.name = name
        self.size = size
    }
}

public struct ListPage: Sendable, Equatable {
    public let objects: [ObjectInfo]
    /// Pass as `after` to get the next page; nil when this page is the last.
    public let nextAfter: String?
    public init(objects: [ObjectInfo], nextAfter: String?) {
        self.objects = objects
        self.nextAfter = nextAfter
    }
}

public struct BackendUsage: Sendable, Equatable {
    public let usedBytes: Int64
    public let objectCount: Int
    /// Free space on the provider, when it says.
    public let freeBytes: Int64?
    public init(usedBytes: Int64, objectCount: Int, freeBytes: Int64?) {
        self.usedBytes = usedBytes
        self.objectCount = objectCount
        self.freeBytes = freeBytes
    }
}

/// How a backend operation failed. Messages carry no secrets.
public enum BackendError: Error, Sendable, Equatable, CustomStringConvertible {
    case notFound(String)
    /// Out of space or quota.
    case full(String)
    /// May succeed if retried.
    case transient(String)
    /// The provider asks us to slow down (HTTP 429, 503 SlowDown): retry, after `retryAfter` seconds
    /// when it says.
    case throttled(String, retryAfter: Double?)
    /// Will not succeed if retried.
    case permanent(String)

    public var description: String {
        switch self {
        case .notFound(let name): return "\(name): no such object"
        case .full(let detail): return "out of space: \(detail)"
        case .transient(let detail): return detail
        case .throttled(let detail, _): return detail
        case .permanent(let detail): return detail
        }
    }

    public var isRetryable: Bool {
        switch self {
        case .transient, .throttled: return true
        case .notFound, .full, .permanent: return false
        }
    }
}

extension Backend {
    public func prepare() async throws {}

    public func get(_ name: String) async throws -> [UInt8] { try await get(name, range: nil) }

    /// Usage summed over a full listing, for providers that do not report their own (free space
    /// unknown).
    public func usageFromListing() async throws -> BackendUsage {
        let all = try await listAll(prefix: "")
        return BackendUsage(usedBytes: all.reduce(0) { $0 + Int64($1.size) }, objectCount: all.count, freeBytes: nil)
    }

    /// Every object under `prefix`, following pages.
    public func listAll(prefix: String, pageSize: Int = 1000) async throws -> [ObjectInfo] {
        var all: [ObjectInfo] = []
        var after: String?
        repeat {
            let page = try await list(prefix: prefix, after: after, limit: pageSize)
            all += page.objects
            after = page.nextAfter
        } while after != nil
        return all
    }
}

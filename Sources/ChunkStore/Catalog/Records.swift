/// Plain values read from or written to the catalog.
public struct ProviderRecord: Sendable, Equatable {
    public let id: Int64
    public let name: String
    /// "dir", "s3", "webdav" or "sftp".
    public let kind: String
    /// Kind-specific settings as JSON (for "dir": {"path": "..."}). Never holds a plaintext secret.
    public let config: String
    public let quota: Int64?
    public let usedBytes: Int64
    public let chunkCount: Int
    /// The provider's credentials sealed under the repository's secrets key (see FORMAT.md), if any.
    public let sealedSecret: [UInt8]?
    /// The failure domain (one cloud account, one disk): two replicas never share one. Defaults to the
    /// provider's own name.
    public var group: String = ""
    public var state: ProviderState = .active
    /// What the last command that used the provider saw of it, if any.
    public var health: ProviderHealthRecord? = nil
    /// When it was added, in nanoseconds since 1970.
    public var createdAt: Int64 = 0
}

/// Whether a provider takes new chunks; stored as its raw value in `provider.state`.
public enum ProviderState: String, Sendable, Equatable, CaseIterable {
    case active
    /// No new chunks; a67 provider drain moves the rest off.
    case draining
}

/// A provider's circuit breaker (Replicator's ProviderHealth); stored as its raw value in
/// `provider.health_breaker`.
public enum BreakerState: String, Sendable, Equatable, CaseIterable {
    case closed, open, halfOpen = "half-open"
}

/// A provider's health as last recorded: breaker state, latency and error rate.
public struct ProviderHealthRecord: Sendable, Equatable {
    public let breaker: BreakerState
    public let latencySeconds: Double?
    public let errorRate: Double
    public let requests: Int
    /// Nanoseconds since 1970.
    public let checkedAt: Int64
    /// Why nothing is placed there whatever the breaker says (its keyring is missing or another
    /// repository's), or nil.
    public let problem: String?
    public init(breaker: BreakerState, latencySeconds: Double?, errorRate: Double, requests: Int, checkedAt: Int64,
                problem: String? = nil) {
        self.problem = problem
        self.breaker = breaker
        self.latencySeconds = latencySeconds
        self.errorRate = errorRate
        self.requests = requests
        self.checkedAt = checkedAt
    }
}

public struct BucketRecord: Sendable, Equatable {
    public let id: Int64
    public let name: String
    public let rootInode: Int64
    public let replicas: Int
    public let createdAt: Int64
    /// The fewest replicas a put settles for when providers fail (the rest are left to repair).
    public var minReplicas: Int = 1
    /// The user whose keys reach it through the blob API; nil for buckets only the CLI (the
    /// repository's owner) reaches.
    public var ownerID: Int64? = nil
}

public struct BucketSummary: Sendable, Equatable {
    public let bucket: BucketRecord
    public let objects: Int
    public let bytes: Int64
}

/// A chunk durably stored on `providers`.
public struct StoredChunk: Sendable, Equatable {
    public let id: ChunkID
    public let plainSize: Int
    public let sealedSize: Int
    public let providers: [Int64]
    /// The replicas it should have (repair restores that many).
    public let want: Int
    public init(id: ChunkID, plainSize: Int, sealedSize: Int, providers: [Int64], want: Int) {
        self.id = id
        self.plainSize = plainSize
        self.sealedSize = sealedSize
        self.providers = providers
        self.want = want
    }
}

public struct ObjectRecord: Sendable {
    public let key: String
    public let size: Int64
    /// Nanoseconds since 1970.
    public let mtime: Int64
    public let manifestID: ChunkID
    public let manifest: Manifest
}

public struct ListEntry: Sendable, Equatable {
    /// The full key; folders end with `/`.
    public let key: String
    public let isFolder: Bool
    public let size: Int64
    /// Nanoseconds since 1970.
    public let mtime: Int64
    /// An object's manifest (nil for folders).
    public var manifestID: ChunkID? = nil
}

public struct CatalogStatistics: Sendable, Equatable {
    public let objects: Int
    /// Sum of object sizes.
    public let logicalBytes: Int64
    /// Referenced data chunks, each counted once.
    public let uniqueChunks: Int
    public let uniquePlainBytes: Int64
    public let uniqueSealedBytes: Int64
    /// All chunks the catalog knows (data and manifests, referenced or not).
    public let totalChunks: Int
    /// Sealed bytes of all chunks, one copy each.
    public let storedBytes: Int64
    /// Sealed bytes summed over every replica on every provider.
    public let replicaBytes: Int64
    /// Chunks no object refers to any more (kept until garbage collection).
    public let unreferencedChunks: Int
    public let unreferencedBytes: Int64
}

/// Someone who reaches buckets through the blob API with access keys.
public struct UserRecord: Sendable, Equatable {
    public let id: Int64
    public let name: String
    /// Sees every bucket, user and provider through the control API.
    public let admin: Bool
    /// The most bytes (object sizes, plus parts of unfinished uploads) the user's buckets may hold.
    public let quota: Int64?
    /// Nanoseconds since 1970.
    public let createdAt: Int64
}

public struct AccessKeyRecord: Sendable, Equatable {
    public let id: String
    public let userID: Int64
    public let userName: String
    /// The secret, sealed under the repository's secrets key (see FORMAT.md, "Access keys").
    public let sealedSecret: [UInt8]
    public let createdAt: Int64
}

/// What a user's buckets hold.
public struct UsageRecord: Sendable, Equatable {
    public let buckets: Int
    public let objects: Int
    /// Object sizes plus the parts of unfinished multipart uploads.
    public let bytes: Int64
}

/// An unfinished multipart upload.
public struct UploadRecord: Sendable, Equatable {
    public let id: String
    public let bucketID: Int64
    public let key: String
    /// The object's attributes (content type, user metadata) given when the upload began.
    public let attributes: [String: String]
    public let createdAt: Int64
}

public struct PartRecord: Sendable, Equatable {
    public let number: Int
    public let size: Int64
    /// Hex MD5 of the part's bytes, unquoted.
    public let etag: String
    public let entries: [Manifest.Entry]
    public let createdAt: Int64
}

import ChunkStore
import Foundation
import Synchronization

/// One Automator67 repository: the local state under $A67_HOME (the catalog and a copy of the
/// keyring) and the providers that hold its chunks. Opening it with keys unlocks puts and gets;
/// the read-only catalog views (ls, stat) need no passphrase.
public final class Repository: Sendable {
    public let home: String
    public let catalog: Catalog
    let keys: RepositoryKeys?
    public let repositoryID: String
    /// Builds the providers' backends (the CLI passes one that knows every kind); nil when only the
    /// catalog was opened.
    let backends: (any BackendFactory)?

    public static let catalogFile = "catalog.db"
    public static let keyringFile = "keyring"
    /// The catalog `init` builds, renamed to `catalogFile` once the keyring is written.
    static let newCatalogFile = "catalog.db.init"

    public struct Settings: Sendable {
        public var zstdLevel = Zstd.defaultLevel
        public var scryptLogN = Keyring.defaultLogN
        public init() {}
    }

    /// Creates a repository at `home`. Refuses when one is already there, and whenever a catalog is
    /// there (whatever else is): a catalog is never replaced.
    ///
    /// Order of writes: the catalog is built under a temporary name (`newCatalogFile`), then the
    /// keyring is written, then the catalog is renamed into place. So `catalog.db` without a keyring
    /// can only mean a lost keyring (restore it), never an interrupted init; an interrupted init
    /// leaves `catalog.db.init` (and perhaps a keyring that no catalog or provider ever used), which
    /// running init again removes.
    /// `catalogModules`: the schemas of the modules that keep tables in the catalog beside ChunkStore's
    /// (the controller's, the SQL router's), migrated when it is opened; every opener of one repository
    /// passes the same ones (the composition root's list).
    public static func initialize(home: String, backends: any BackendFactory, catalogModules: [CatalogSchema] = [],
                                  passphrase: Passphrase, settings: Settings = .init()) throws -> Repository {
        let fm = FileManager.default
        let keyringPath = home + "/" + keyringFile
        let catalogPath = home + "/" + catalogFile
        let newCatalogPath = home + "/" + newCatalogFile
        try checkFolder(home)
        if fm.fileExists(atPath: catalogPath) {
            if fm.fileExists(atPath: keyringPath) {
                throw StoreError(.alreadyExists, "a repository already exists at \(home); use it, or set A67_HOME to another folder")
            }
            throw keyringLost(home: home, "\(keyringPath) is missing, and a67 init never replaces a catalog")
        }
        let interrupted = fm.fileExists(atPath: newCatalogPath)
        if fm.fileExists(atPath: keyringPath) && !interrupted {
            throw catalogLost(home: home)
        }
        guard Zstd.levels.contains(settings.zstdLevel) else {
            throw StoreError(.invalidArgument, "zstd level \(settings.zstdLevel) is out of range: use 1 to 19")
        }
        if interrupted {
            for leftover in [keyringPath, newCatalogPath, newCatalogPath + "-wal", newCatalogPath + "-shm"] {
                try? fm.removeItem(atPath: leftover)
            }
        }
        do {
            try fm.createDirectory(atPath: home, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw StoreError(.io, "cannot create \(home): \(error.localizedDescription)")
        }
        let master = SecretKey.random()
        let id = Crypto.randomBytes(16)
        let keyring = try Keyring.wrap(master: master, passphrase: passphrase, repositoryID: id, logN: settings.scryptLogN)
        let building = try Catalog(path: newCatalogPath, create: true, modules: catalogModules)
        try building.setSetting("repository_id", Hex.encode(id))
        try building.setSetting("zstd_level", String(settings.zstdLevel))
        try building.setSetting("format_version", String(ChunkSealer.formatVersion))
        try building.close()  // checkpoints and removes its write-ahead log: the database is one file to rename
        try LocalFile.write(keyring.encoded, to: keyringPath)
        try LocalFile.move(newCatalogPath, to: catalogPath)
        return Repository(home: home, catalog: try Catalog(path: catalogPath, modules: catalogModules), keys: RepositoryKeys(master: master),
                          repositoryID: Hex.encode(id), backends: backends)
    }

    /// Opens the repository at `home` with its keys. A wrong passphrase fails before anything is
    /// touched; `passphrase` is asked for only once a repository is known to be there.
    /// `relaxed`: the catalog syncs on `Catalog.sync` rather than on every commit (the mount).
    public static func open(home: String, backends: any BackendFactory, catalogModules: [CatalogSchema] = [], relaxed: Bool = false,
                            passphrase: () throws -> Passphrase) throws -> Repository {
        let keyring = try localKeyring(home: home)
        let master = try keyring.unwrap(passphrase: try passphrase())
        let catalog = try Catalog(path: home + "/" + catalogFile, relaxed: relaxed, modules: catalogModules)
        let id = Hex.encode(keyring.repositoryID)
        guard try catalog.setting("repository_id") == id else {
            throw StoreError(.integrity, "the catalog in \(home) belongs to another repository than its keyring")
        }
        return Repository(home: home, catalog: catalog, keys: RepositoryKeys(master: master), repositoryID: id, backends: backends)
    }

    /// Opens the catalog only, for read-only views.
    public static func openCatalog(home: String, catalogModules: [CatalogSchema] = []) throws -> Repository {
        let keyring = try localKeyring(home: home)
        let catalog = try Catalog(path: home + "/" + catalogFile, modules: catalogModules)
        return Repository(home: home, catalog: catalog, keys: nil, repositoryID: Hex.encode(keyring.repositoryID), backends: nil)
    }

    /// The pool over the providers, built once; its providers are reloaded when they change (see
    /// `refreshPoolIfProvidersChanged`), and each provider's health outlives reloads.
    private let cachedPool = Mutex<ReplicatedPool?>(nil)
    private let healths = Mutex<[Int64: ProviderHealth]>([:])
    /// The catalog's `providersVersion` the pool's providers were loaded at.
    private let loadedVersion = Mutex<Int64>(-1)
    /// The keyring problem this process last logged for each provider (see `watchProviders`).
    let reportedProblems = Mutex<[Int64: String]>([:])
    /// Whether the providers were reloaded for another process's change since `watchProviders` last said so.
    let reloadedUnreported = Mutex(false)

    init(home: String, catalog: Catalog, keys: RepositoryKeys?, repositoryID: String, backends: (any BackendFactory)?) {
        self.home = home
        self.catalog = catalog
        self.keys = keys
        self.repositoryID = repositoryID
        self.backends = backends
    }

    /// The keyring in `home`, once the repository's local files are known to be there: a missing or
    /// damaged keyring beside a catalog (`keyringLost`), a keyring without its catalog, an interrupted
    /// init and a folder that is a file are each named as what they are.
    static func localKeyring(home: String) throws -> Keyring {
        try checkFolder(home)
        let fm = FileManager.default
        let path = home + "/" + keyringFile
        let hasCatalog = fm.fileExists(atPath: home + "/" + catalogFile)
        let bytes: [UInt8]
        do throws(SystemCallError) {
            bytes = try LocalFile.read(path, atMost: Keyring.size + 1)
        } catch where error.isNotFound {
            if hasCatalog { throw keyringLost(home: home, "\(path) is missing") }
            if fm.fileExists(atPath: home + "/" + newCatalogFile) { throw initInterrupted(home: home) }
            throw StoreError(.notInitialized, "no repository at \(home): run a67 init (or set A67_HOME to where your repository is)")
        } catch {
            throw StoreError(.io, "cannot read the keyring \(path): \(error.reason)\(error.remedy)")
        }
        guard hasCatalog else {
            throw fm.fileExists(atPath: home + "/" + newCatalogFile) ? initInterrupted(home: home) : catalogLost(home: home)
        }
        do {
            return try Keyring(decoding: bytes, source: path)
        } catch let error as StoreError where error.code == .integrity {
            throw keyringLost(home: home, error.message)
        }
    }

    /// `home` must be a folder (or not exist yet): a file there is named as such.
    static func checkFolder(_ home: String) throws {
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: home, isDirectory: &isFolder), !isFolder.boolValue {
            throw StoreError(.notInitialized, "\(home) is a file, not a folder: the repository is a folder "
                + "(set A67_HOME or --home to the folder holding catalog.db and keyring, or to a new folder for a67 init)")
        }
    }

    /// The catalog is there, its keyring is not (or is damaged): the keys are lost from this machine,
    /// not the data. Names every way back, with the providers this catalog knows (each holds a copy).
    static func keyringLost(home: String, _ problem: String) -> StoreError {
        let keyringPath = home + "/" + keyringFile
        let providers = (try? Catalog(path: home + "/" + catalogFile, readOnly: true).providers.all()) ?? []
        let specs = providers.compactMap { record in (try? ProviderSpec(kind: record.kind, config: record.config)).map { (record.name, $0) } }
        let copies = specs.map { name, spec -> String in
            if case .directory(let path) = spec { return path + "/" + Keyring.objectName }
            return "the object \(Keyring.objectName) on provider \(name) (\(spec.summary))"
        }
        var example = "--dir PATH (or --s3, --webdav, --sftp as for a67 provider add)"
        if case .directory(let path)? = specs.first?.1 { example = "--dir " + path }
        return StoreError(.keyringLost, "\(problem). The catalog beside it (\(home)/\(catalogFile)) is still there: this machine lost "
            + "the repository's keyring, not its data. Restore the keyring: copy it to \(keyringPath) from a backup or from any "
            + "provider of this repository, each of which holds a copy named \(Keyring.objectName)"
            + (copies.isEmpty ? "" : " (" + copies.joined(separator: "; ") + ")")
            + "; or run a67 recover \(example), which checks that provider's keyring against your passphrase and this catalog "
            + "and restores it, keeping the catalog. a67 init refuses while a catalog is here")
    }

    static func catalogLost(home: String) -> StoreError {
        StoreError(.notInitialized, "\(home) holds a keyring but no catalog (\(catalogFile)): the catalog was lost. Rebuild it from "
            + "the providers with a67 recover into an empty folder (A67_HOME=NEW-FOLDER a67 recover --dir PATH, or --s3, "
            + "--webdav, --sftp as for a67 provider add), or move \(home)/\(keyringFile) away to create a new repository here")
    }

    static func initInterrupted(home: String) -> StoreError {
        StoreError(.notInitialized, "a67 init in \(home) was interrupted before it finished (\(newCatalogFile) is left): "
            + "run a67 init again")
    }

    func unlocked() throws -> RepositoryKeys {
        guard let keys else { throw StoreError(.internal, "repository opened without keys") }
        return keys
    }

    // MARK: - Providers

    /// Adds a provider and stores the keyring on it. A location that already holds a keyring of
    /// another repository is refused. `secret` (remote providers) is sealed into the catalog. An SFTP
    /// host without a pinned key is trusted on first use: its fingerprint is pinned here.
    public func addProvider(name: String, spec: ProviderSpec, secret: ProviderSecret? = nil,
                            quota: Int64?, group: String? = nil) async throws -> (record: ProviderRecord, spec: ProviderSpec) {
        try Names.validateProvider(name)
        if let group { try Names.validateProvider(group, what: "group") }
        let keys = try unlocked()
        let existing = try catalog.providers.all()
        if existing.contains(where: { $0.name == name }) {
            throw StoreError(.alreadyExists, "a provider named \(name) already exists; pick another name")
        }
        // Made ready first: a directory's folder created and its path resolved, an SFTP host's key
        // pinned, a WebDAV root folder created.
        let prepared: (spec: ProviderSpec, backend: any Backend)
        do {
            prepared = try await backendFactory().prepare(spec, secret: secret)
        } catch let error as BackendError {
            throw StoreError(.providerFailure, "provider \(name) (\(spec.summary)) cannot be set up: \(error)")
        }
        let (spec, backend) = prepared
        if let twin = existing.first(where: { (try? ProviderSpec(kind: $0.kind, config: $0.config))?.identity == spec.identity }) {
            throw StoreError(.alreadyExists, "\(spec.summary) is already provider \(twin.name) of this repository")
        }
        let local = try Self.localKeyring(home: home)
        do {
            let present = try await backend.get(Keyring.objectName)
            let theirs = try Keyring(decoding: present, source: "\(backend.location)/keyring")
            guard theirs.repositoryID == local.repositoryID else {
                throw StoreError(.conflict, "\(backend.location) already holds another Automator67 repository; choose an empty location")
            }
        } catch BackendError.notFound {
            // A new location: expected.
        } catch let error as BackendError {
            throw StoreError(.providerFailure, "provider \(name) (\(backend.location)) cannot be read: \(error)")
        }
        do {
            try await backend.put(Keyring.objectName, data: local.encoded)
        } catch {
            throw StoreError(.providerFailure, "provider \(name) (\(backend.location)) cannot be written: \(error)")
        }
        let sealed = secret?.seal(keys: keys, repositoryID: repositoryID, provider: name)
        let catalog = self.catalog
        let record = try await BlockingIOPool.shared.run { [spec] in
            try catalog.providers.add(name: name, kind: spec.kind, config: spec.configJSON, quota: quota, sealedSecret: sealed, group: group)
        }
        try reloadProviders()
        return (record, spec)
    }

    public func providers() throws -> [(record: ProviderRecord, spec: ProviderSpec)] {
        try catalog.providers.all().map { ($0, try ProviderSpec(kind: $0.kind, config: $0.config)) }
    }

    /// The provider's backend, its credentials unsealed (needs the repository's keys).
    public func backend(for provider: (record: ProviderRecord, spec: ProviderSpec)) throws -> any Backend {
        let secret = try provider.record.sealedSecret.map {
            try ProviderSecret.open($0, keys: try unlocked(), repositoryID: repositoryID, provider: provider.record.name)
        }
        return try backendFactory().makeBackend(provider.spec, secret: secret)
    }

    func backendFactory() throws -> any BackendFactory {
        guard let backends else { throw StoreError(.internal, "repository opened without a backend factory") }
        return backends
    }

    /// The pool over this repository's providers: built on first use, then kept, its providers
    /// reloaded whenever the catalog's change (checked before every placement).
    public func pool() throws -> ReplicatedPool {
        if let pool = cachedPool.withLock({ $0 }) { return pool }
        let version = try catalog.providers.version()
        let (members, used) = try loadMembers()
        let catalog = self.catalog
        let repositoryID = Hex.decode(self.repositoryID)
        let pool = ReplicatedPool(
            members: members, used: used, repositoryID: repositoryID,
            beforePlacing: { [weak self] in _ = try? self?.refreshPoolIfProvidersChanged() },
            onDamage: { chunk, provider, _ in
                // The copy is gone or bad: forget it, so that status counts the chunk as under-replicated
                // and repair stores it again. The last recorded copy is never forgotten here.
                // On the BlockingIOPool: a catalog write waits for the writer, which must not hold a
                // cooperative thread.
                _ = try? await offPool { try catalog.chunks.forgetLocation(chunk, provider: provider) }
            })
        return cachedPool.withLock { cached in
            if let cached { return cached }
            cached = pool
            loadedVersion.withLock { $0 = version }
            return pool
        }
    }

    /// Reloads the pool's providers now (this process changed them).
    func reloadProviders() throws {
        guard let pool = cachedPool.withLock({ $0 }) else { return }
        let version = try catalog.providers.version()
        let (members, used) = try loadMembers()
        pool.reload(members: members, used: used)
        loadedVersion.withLock { $0 = version }
    }

    /// Reloads the pool's providers when the catalog's are no longer the ones it loaded (another
    /// process added, drained or removed one): one read of a counter, made before every placement, so
    /// a provider being drained takes no new chunk once the drain has marked it. True when it changed.
    @discardableResult
    public func refreshPoolIfProvidersChanged() throws -> Bool {
        guard cachedPool.withLock({ $0 }) != nil else { return false }
        let version = try catalog.providers.version()
        guard version != loadedVersion.withLock({ $0 }) else { return false }
        try reloadProviders()
        reloadedUnreported.withLock { $0 = true }
        return true
    }

    /// The pool's members as the catalog has them now, with the bytes placed on each.
    private func loadMembers() throws -> (members: [ReplicatedPool.Member], used: [Int64: Int64]) {
        let providers = try self.providers()
        let policy = try breakerPolicy()
        let members = try providers.map { provider in
            let health = healths.withLock { $0[provider.record.id, default: ProviderHealth(policy: policy)] }
            healths.withLock { $0[provider.record.id] = health }
            return ReplicatedPool.Member(id: provider.record.id, name: provider.record.name, backend: try backend(for: provider),
                                         quota: provider.record.quota, group: provider.record.group,
                                         draining: provider.record.state == .draining, health: health)
        }
        return (members, Dictionary(uniqueKeysWithValues: providers.map { ($0.record.id, $0.record.usedBytes) }))
    }

    /// The breaker thresholds: catalog settings, else the defaults.
    public func breakerPolicy() throws -> BreakerPolicy {
        var policy = BreakerPolicy()
        if let value = try catalog.setting(BreakerPolicy.failuresSetting), let n = Int(value) { policy.failureThreshold = n }
        if let value = try catalog.setting(BreakerPolicy.openSecondsSetting), let s = Double(value) { policy.openSeconds = s }
        return BreakerPolicy(failureThreshold: policy.failureThreshold, openSeconds: policy.openSeconds)
    }

    /// Records what this process saw of each provider it used, for a67 provider ls.
    public func saveHealth() {
        let seen = healths.withLock { $0 }
        // A provider this process used, or whose keyring it checked (a67 provider ls says why one takes no chunks).
        for (provider, health) in seen where health.requests > 0 || health.keyring != .unchecked {
            try? catalog.providers.setHealth(provider, health.record())
        }
    }

    /// `saveHealth` from async code: its catalog writes wait on the `BlockingIOPool`, not on a
    /// cooperative thread.
    public func saveHealthOffPool() async {
        _ = try? await BlockingIOPool.shared.run { [self] in saveHealth() }
    }

    // MARK: - Objects

    public var zstdLevel: Int {
        get throws { Int(try catalog.setting("zstd_level") ?? "") ?? Zstd.defaultLevel }
    }

    /// Puts `source` as `bucket/key`, replacing an older object of that key.
    public func put(_ source: ByteSource, bucket: String, key: String, zstdLevel: Int? = nil,
                    progress: ProgressHandler? = nil) async throws -> ObjectWriter.Result {
        let keys = try unlocked()
        let record = try catalog.namespace.bucket(bucket)
        let level = try zstdLevel ?? self.zstdLevel
        guard Zstd.levels.contains(level) else {
            throw StoreError(.invalidArgument, "zstd level \(level) is out of range: use 1 to 19")
        }
        // Shared with other puts, exclusive of garbage collection (see RepositoryLock).
        return try await whileStoring {
            let writer = ObjectWriter(sealer: ChunkSealer(keys: keys, zstdLevel: level), pool: try pool(), catalog: catalog)
            // The bucket owner's quota binds a67 put as it binds S3 uploads and the mount.
            let quota = QuotaReservation(catalog: catalog, user: record.ownerID)
            defer { quota.release() }
            return try await writer.write(from: source, bucket: record, key: key,
                                          owner: (uid: getuid(), gid: getgid(), mode: 0o644), quota: quota, progress: progress)
        }
    }

    /// Runs `body` holding the repository lock shared, as puts do (garbage collection holds it
    /// exclusive). Waiting for it suspends the task (see RepositoryLock).
    public func whileStoring<T>(isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> T) async throws -> T {
        try await RepositoryLock.at(home: home).withShared(body)
    }

    /// Runs `body` holding the repository lock exclusively: no store is between placing a chunk and
    /// recording it.
    func whileExclusive<T>(isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> T) async throws -> T {
        try await RepositoryLock.at(home: home).withExclusive(body)
    }

    /// Returns once every store that was running when it was called has recorded what it placed (or
    /// given up): each holds the repository lock shared from placing its chunks until they are recorded.
    func waitForStoresInFlight() async throws { try await whileExclusive {} }

    /// The object at `bucket/key`, or `notFound`.
    public func object(bucket: String, key: String) throws -> ObjectRecord {
        try catalog.namespace.object(bucket: try catalog.namespace.bucket(bucket), segments: try Names.keySegments(key))
    }

    /// Writes `object` (or `range` of it) to `sink`.
    public func get(_ object: ObjectRecord, bucket: String, range: ClosedRange<Int64>? = nil, to sink: ByteSink,
                    progress: ProgressHandler? = nil) async throws {
        let reader = ObjectReader(sealer: ChunkSealer(keys: try unlocked()), pool: try pool(), catalog: catalog)
        try await reader.read(object, bucket: bucket, range: range, to: sink, progress: progress)
    }

    public func remove(bucket: String, key: String) async throws {
        _ = try unlocked()
        let catalog = self.catalog
        try await offPool {
            try catalog.namespace.removeObject(bucket: try catalog.namespace.bucket(bucket), segments: try Names.keySegments(key))
        }
    }

    public func list(bucket: String, prefix: String, recursive: Bool) throws -> [ListEntry] {
        var entries: [ListEntry] = []
        try catalog.namespace.list(bucket: try catalog.namespace.bucket(bucket), prefix: prefix, recursive: recursive) { entries.append($0) }
        return entries
    }

    // MARK: - Buckets

    public static let defaultReplicas = 2

    public func createBucket(_ name: String, replicas: Int = defaultReplicas, minReplicas: Int = 1,
                             owner: Int64? = nil) async throws -> BucketRecord {
        _ = try unlocked()
        guard (1...8).contains(replicas) else {
            throw StoreError(.invalidArgument, "--replicas \(replicas) is out of range: use 1 to 8")
        }
        guard (1...replicas).contains(minReplicas) else {
            throw StoreError(.invalidArgument, "--min-replicas \(minReplicas) is out of range: use 1 to --replicas (\(replicas))")
        }
        let catalog = self.catalog
        return try await offPool { try catalog.namespace.createBucket(name, replicas: replicas, minReplicas: minReplicas, owner: owner) }
    }

    public func removeBucket(_ name: String) async throws {
        _ = try unlocked()
        let catalog = self.catalog
        try await offPool { try catalog.namespace.removeBucket(name) }
    }

}

#if canImport(Glibc)
import Glibc
#endif

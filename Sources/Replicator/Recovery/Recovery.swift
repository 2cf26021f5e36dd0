import ChunkStore
import Foundation

extension Repository {
    public struct RecoveryReport: Sendable {
        /// The provider the snapshot was read from, and its sequence number.
        public let source: String
        public let sequence: Int64
        /// Nanoseconds since 1970.
        public let snapshotTime: Int64
        public let providers: Int
        public let buckets: Int
        public let objects: Int
        /// Providers of the recovered catalog that could not be reached (repair restores what they held).
        public let unreachable: [String]
        /// Set when a provider holds a newer snapshot than the one installed but it could not be read:
        /// the recovered catalog may miss the latest changes.
        public let newerSnapshotUnread: String?
        public let underReplicatedChunks: Int
        /// Set when `home` held this repository's catalog without its keyring: only the keyring was
        /// restored, the local catalog kept (it is at least as new as any snapshot); the snapshot
        /// fields are then zero.
        public var keyringOnly = false
    }

    /// Rebuilds a repository at `home` (which must hold none) from one provider and the passphrase:
    /// reads the keyring there, unlocks it, reads the sealed root pointer, fetches and verifies the
    /// catalog snapshot it names, and installs it. Then it asks every provider of the recovered catalog
    /// for its root pointer and, if one holds a newer snapshot, installs that one instead. Providers
    /// that cannot be reached are reported; their chunks are read from the other replicas, and
    /// `repair` restores full replication.
    ///
    /// A `home` that holds this repository's catalog but no keyring (it was lost) gets the keyring
    /// back, after the passphrase unlocks it and the catalog's repository ID matches; the catalog is
    /// kept. A catalog is never replaced.
    public static func recover(home: String, passphrase: Passphrase, from spec: ProviderSpec, secret: ProviderSecret?,
                               backends: any BackendFactory, catalogModules: [CatalogSchema] = [],
                               progress: ProgressHandler? = nil) async throws -> (Repository, RecoveryReport) {
        let fm = FileManager.default
        try checkFolder(home)
        // A keyring that no longer reads (truncated, damaged) beside its catalog is replaced, as a lost one is.
        let damagedKeyring = fm.fileExists(atPath: home + "/" + keyringFile) && fm.fileExists(atPath: home + "/" + catalogFile)
            && (try? localKeyring(home: home)) == nil
        if fm.fileExists(atPath: home + "/" + keyringFile) && !damagedKeyring {
            throw StoreError(.alreadyExists, "a repository already exists at \(home): recover into an empty folder (set A67_HOME or --home to another one)")
        }
        let backend = try backends.makeBackend(spec, secret: secret)
        let keyringBytes: [UInt8]
        do {
            keyringBytes = try await backend.get(Keyring.objectName)
        } catch BackendError.notFound {
            throw StoreError(.notFound, "\(backend.location) holds no Automator67 repository (no keyring there): check the location and credentials")
        } catch {
            throw StoreError(.providerFailure, "\(backend.location) cannot be read: \(error)")
        }
        let keyring = try Keyring(decoding: keyringBytes, source: "\(backend.location)/keyring")
        let keys = RepositoryKeys(master: try keyring.unwrap(passphrase: passphrase))
        let repositoryID = Hex.encode(keyring.repositoryID)
        if fm.fileExists(atPath: home + "/" + catalogFile) {
            return try restoreKeyring(keyring, keys: keys, home: home, source: backend.location, backends: backends,
                                      catalogModules: catalogModules)
        }
        let sealer = ChunkSealer(keys: keys)

        func readRoot(_ backend: any Backend, _ source: String) async throws -> SnapshotRoot {
            let sealed: [UInt8]
            do {
                sealed = try await backend.get(rootObjectName)
            } catch BackendError.notFound {
                throw StoreError(.notFound, "\(source) holds the keyring but no catalog snapshot (root pointer): it was never snapshotted to, or was emptied")
            }
            return try openRoot(sealed, keys: keys, repositoryID: repositoryID, source: source)
        }
        func fetchSnapshot(_ root: SnapshotRoot, from backend: any Backend, _ source: String) async throws -> [UInt8] {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(Int(root.size))
            for chunk in root.chunks {
                guard let id = ChunkID(hex: chunk.id) else {
                    throw StoreError(.integrity, "the root pointer on \(source) names a malformed chunk ID")
                }
                let sealed: [UInt8]
                do {
                    sealed = try await backend.get(id.objectName)
                } catch {
                    throw StoreError(.providerFailure, "catalog snapshot \(root.sequence) chunk \(id.short) cannot be read from \(source): \(error)")
                }
                bytes += try sealer.open(sealed, id: id, expectedLength: chunk.length)
                progress?(Int64(chunk.length))
            }
            guard bytes.count == root.size else {
                throw StoreError(.integrity, "catalog snapshot \(root.sequence) from \(source) is \(bytes.count) bytes, its root pointer says \(root.size)")
            }
            return bytes
        }

        var root = try await readRoot(backend, backend.location)
        var source = backend.location
        var snapshot = try await fetchSnapshot(root, from: backend, source)

        do {
            try fm.createDirectory(atPath: home, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw StoreError(.io, "cannot create \(home): \(error.localizedDescription)")
        }
        let catalogPath = home + "/" + catalogFile
        func install(_ bytes: [UInt8]) throws -> Catalog {
            for leftover in [catalogPath, catalogPath + "-wal", catalogPath + "-shm"] { try? fm.removeItem(atPath: leftover) }
            try LocalFile.write(bytes, to: catalogPath)
            let catalog = try Catalog(path: catalogPath, modules: catalogModules)
            guard try catalog.setting("repository_id") == repositoryID else {
                throw StoreError(.integrity, "the catalog snapshot on \(source) belongs to another repository than its keyring")
            }
            return catalog
        }
        var catalog = try install(snapshot)

        // A provider that missed later snapshots (it was down) holds an older one: look for newer ones,
        // on every provider of the catalog installed, and again on those of a newer one once installed
        // (it may name providers added since), until nothing newer turns up.
        var repository = Repository(home: home, catalog: catalog, keys: keys, repositoryID: repositoryID, backends: backends)
        var asked: Set<String> = [spec.identity]
        var unreachable: [String: String] = [:]
        var others: [(root: SnapshotRoot, backend: any Backend, name: String)] = []
        var sequences: [String: Int64] = [:]
        var unread: (sequence: Int64, why: String)?
        var tried: Set<Int64> = []
        while true {
            for provider in try repository.providers() {
                if provider.spec.identity == spec.identity { sequences[String(provider.record.id)] = root.sequence }
                guard asked.insert(provider.spec.identity).inserted else { continue }
                do {
                    let other = try repository.backend(for: provider)
                    let theirs = try await readRoot(other, provider.record.name)
                    others.append((theirs, other, provider.record.name))
                    sequences[String(provider.record.id)] = theirs.sequence
                    unreachable[provider.record.name] = nil
                } catch {
                    unreachable[provider.record.name] = "\(provider.record.name): \(error)"
                }
            }
            // The newest snapshot that can be read wins; one that cannot is reported, never skipped silently.
            var installed = false
            for candidate in others.sorted(by: { $0.root.sequence > $1.root.sequence })
            where candidate.root.sequence > root.sequence && !tried.contains(candidate.root.sequence) {
                tried.insert(candidate.root.sequence)
                do {
                    snapshot = try await fetchSnapshot(candidate.root, from: candidate.backend, candidate.name)
                } catch {
                    if candidate.root.sequence > unread?.sequence ?? 0 {
                        unread = (candidate.root.sequence,
                                  "\(candidate.name) holds snapshot \(candidate.root.sequence), which could not be read (\(error))")
                    }
                    continue
                }
                root = candidate.root
                source = candidate.name
                try catalog.close()
                catalog = try install(snapshot)
                repository = Repository(home: home, catalog: catalog, keys: keys, repositoryID: repositoryID, backends: backends)
                installed = true
                break
            }
            if !installed { break }
        }
        // Reported only if nothing at least as new was installed after all.
        let newerUnread = unread.flatMap { $0.sequence > root.sequence ? $0.why : nil }

        // Every root seen is remembered, so that the next snapshot's sequence is higher than all of them
        // (a provider that missed it must never look newer to a later recovery). Written before the
        // keyring, which goes last: it marks a complete repository (a failure before it can be retried).
        var state = SnapshotState()
        state.snapshots = [root]
        state.roots = sequences
        try repository.saveSnapshotState(state)
        let path = home + "/" + keyringFile
        // A damaged keyring is kept beside, never overwritten: it is all that is left of what it was.
        if FileManager.default.fileExists(atPath: path) {
            _ = Glibc.rename(path, path + ".damaged")
        }
        try LocalFile.write(keyring.encoded, to: path)
        let stats = try catalog.statistics()
        let report = RecoveryReport(source: source, sequence: root.sequence, snapshotTime: root.createdAt,
                                    providers: try catalog.providers.all().count, buckets: try catalog.namespace.buckets().count,
                                    objects: stats.objects, unreachable: unreachable.values.sorted(), newerSnapshotUnread: newerUnread,
                                    underReplicatedChunks: try catalog.chunks.underReplicated().count)
        return (repository, report)
    }

    /// Puts a lost keyring back beside its catalog (see `recover`).
    private static func restoreKeyring(_ keyring: Keyring, keys: RepositoryKeys, home: String,
                                       source: String, backends: any BackendFactory,
                                       catalogModules: [CatalogSchema]) throws -> (Repository, RecoveryReport) {
        let repositoryID = Hex.encode(keyring.repositoryID)
        let catalog = try Catalog(path: home + "/" + catalogFile, modules: catalogModules)
        guard try catalog.setting("repository_id") == repositoryID else {
            throw StoreError(.conflict, "the catalog in \(home) belongs to another repository than the keyring on \(source): "
                + "name a provider of this catalog's repository (a67 provider ls lists them once the keyring is back), "
                + "or recover into an empty folder")
        }
        let path = home + "/" + keyringFile
        // A damaged keyring is kept beside, never overwritten: it is all that is left of what it was.
        if FileManager.default.fileExists(atPath: path) {
            _ = Glibc.rename(path, path + ".damaged")
        }
        try LocalFile.write(keyring.encoded, to: path)
        let stats = try catalog.statistics()
        var report = RecoveryReport(source: source, sequence: 0, snapshotTime: 0, providers: try catalog.providers.all().count,
                                    buckets: try catalog.namespace.buckets().count, objects: stats.objects, unreachable: [],
                                    newerSnapshotUnread: nil, underReplicatedChunks: try catalog.chunks.underReplicated().count)
        report.keyringOnly = true
        return (Repository(home: home, catalog: catalog, keys: keys, repositoryID: repositoryID, backends: backends), report)
    }
}

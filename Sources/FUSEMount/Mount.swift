import CFUSE
import ChunkStore
import Foundation
import Replicator
import ServiceLifecycle
import Synchronization

/// `a67 mount`: serves one bucket at a folder through libfuse3's low-level API, on a pool of FUSE
/// worker threads, until it is unmounted or gets SIGTERM, SIGINT or SIGHUP; then commits every
/// changed file (durably), snapshots the catalog and unmounts.
public final class Mount: Sendable {
    public struct Settings: Sendable {
        /// Bytes of sealed chunks kept on local disk for reads.
        public var cacheSize: Int64 = 1 << 30
        /// Other local users may use the mount (permissions are enforced by the kernel either way).
        public var allowOther = false
        /// Changed data kept in memory before it spills to a local file.
        public var dirtyMemory = 48 << 20
        /// Plaintext of recently read or written chunks kept in memory.
        public var cacheMemory = 32 << 20
        /// Blocks sealed and stored at once in the background.
        public var sealWindow = 4
        /// A changed file is committed this long after its first uncommitted change, if nothing committed it before.
        public var commitDelay: Duration = .seconds(2)
        /// Seconds between catalog snapshots while the namespace changes.
        public var snapshotInterval: Double = 60
        public var threads = 16
        public init() {}
    }

    let repository: Repository
    let bucket: BucketRecord
    public let mountpoint: String
    let settings: Settings

    public init(repository: Repository, bucket: String, mountpoint: String, settings: Settings) throws {
        self.repository = repository
        self.bucket = try repository.catalog.namespace.bucket(bucket)
        self.mountpoint = mountpoint
        self.settings = settings
    }

    /// Mounts, calls `ready`, serves until unmounted or signalled, then flushes and unmounts.
    /// Throws when the mount cannot be made; a change that could not be stored at the end is
    /// reported in the thrown error (nothing is dropped silently).
    public func run(ready: @escaping @Sendable () -> Void) async throws {
        // A mount runs for long: freed buffers go back to the kernel rather than padding its RSS.
        MemoryTuning.limitRetainedMemory(32 << 20)
        let fs = try await fileSystem()
        let settings = self.settings
        let mountpoint = self.mountpoint
        let bucketName = bucket.name
        let repository = self.repository
        // One ServiceGroup, as in a67 serve: the FUSE session, and the provider watcher (providers changed by
        // other commands and keyrings gone missing are noticed within seconds). The session ends when the
        // folder is unmounted or on a signal (its own handlers: every change is committed before the folder
        // goes away); its end shuts the group down.
        // The session blocks its thread for the mount's whole life: a thread of its own, not one of
        // BlockingIOPool's (meant for short calls), which it would take for good.
        let session = Session {
            try await runOnOwnThread(name: "a67 FUSE session") {
                try Self.serve(fs, mountpoint: mountpoint, bucket: bucketName, settings: settings, repository: repository, ready: ready)
            }
        }
        try await ServiceGroup(configuration: .init(services: [
            .init(service: ProviderWatcher(repository: repository, logger: MountFileSystem.logger)),
            .init(service: session, successTerminationBehavior: .gracefullyShutdownGroup),
        ], logger: MountFileSystem.logger)).run()
        let failures = session.failures.withLock { $0 }
        guard failures.isEmpty else {
            throw StoreError(.providerFailure, "unmounted, but changes to \(failures.count) file(s) could not be stored: "
                + failures.joined(separator: "; ") + ". Their data is lost with this process; check the providers (a67 provider ls)")
        }
    }

    /// The filesystem over the bucket: its cache, spill file, bounds and leases, with the empty
    /// manifest stored and leased. No kernel involved (tests use it as it is).
    func fileSystem() async throws -> MountFileSystem {
        let catalog = repository.catalog
        let writer = try repository.objectWriter(window: 4)
        let policy = ReplicaPolicy(replicas: bucket.replicas, minimum: bucket.minReplicas)
        // Every new file starts as the empty manifest: stored once, shared by all.
        let empty = Manifest(entries: [])
        let leases = LeaseBook(catalog: catalog)
        // Leased for as long as the mount runs: gc would otherwise take it whenever no empty file is left.
        let emptyID = try await repository.whileStoring {
            let (emptyID, emptyChunk) = try await writer.storeManifest(empty, policy: policy)
            if let emptyChunk { try await catalog.chunks.record([emptyChunk]) }
            try leases.acquire([emptyID])
            return emptyID
        }
        let cache = try ChunkCache(directory: repository.home + "/cache/" + bucket.name, diskLimit: settings.cacheSize,
                                   memoryLimit: settings.cacheMemory, sealer: writer.sealer, pool: writer.pool, catalog: catalog,
                                   key: try repository.localCacheKey())
        let spill = try SpillFile(directory: repository.home + "/mounts")
        let context = try MountContext(repository: repository, bucket: bucket, cache: cache, spill: spill,
                                       budget: DirtyBudget(memoryLimit: settings.dirtyMemory, sealWindow: settings.sealWindow),
                                       leases: leases, emptyManifest: (emptyID, empty.encoded))
        return MountFileSystem(context: context)
    }

    /// The FUSE session as a service: runs `serve` to its end and keeps the changes it could not store.
    final class Session: Service {
        let serve: @Sendable () async throws -> [String]
        let failures = Mutex<[String]>([])

        init(_ serve: @escaping @Sendable () async throws -> [String]) { self.serve = serve }

        func run() async throws {
            let failures = try await serve()
            self.failures.withLock { $0 = failures }
        }
    }

    /// The FUSE session, on this thread (its own) until unmounted.
    static func serve(_ fs: MountFileSystem, mountpoint: String, bucket: String, settings: Settings, repository: Repository,
                      ready: @Sendable () -> Void) throws -> [String] {
        var ops = fuse_lowlevel_ops()
        Operations.install(&ops)
        var options = "fsname=a67:\(bucket),subtype=a67,default_permissions"
        if settings.allowOther { options += ",allow_other" }
        let arguments = ["a67", "-o", options]
        let retained = Unmanaged.passRetained(fs)
        defer { retained.release() }
        var argv = arguments.map { strdup($0) }
        defer { argv.forEach { free($0) } }
        guard let session = a67_fuse_session_new(Int32(argv.count), &argv, &ops, retained.toOpaque()) else {
            throw StoreError(.io, "cannot start a FUSE session (libfuse refused the options \(options))")
        }
        defer { fuse_session_destroy(session) }
        guard fuse_session_mount(session, mountpoint) == 0 else {
            throw StoreError(.io, "cannot mount at \(mountpoint): it must be an empty folder, /dev/fuse must be there"
                + " (apt-get install fuse3; in a container, --device /dev/fuse), and --allow-other needs root"
                + " or user_allow_other in /etc/fuse.conf")
        }
        let connection = Self.connection(mountpoint)
        let stop = Mutex(false)
        let flusher = Thread {
            var lastSnapshot = ContinuousClock.now
            var changedSince = false
            while !stop.withLock({ $0 }) {
                Thread.sleep(forTimeInterval: 0.5)
                let before = fs.nodes.withLock { $0.count }
                fs.commitDirty(olderThan: settings.commitDelay, durable: false)
                if before > 0 { changedSince = true }
                if changedSince, ContinuousClock.now - lastSnapshot > .seconds(settings.snapshotInterval) {
                    lastSnapshot = .now
                    changedSince = false
                    fs.snapshot(repository)
                }
            }
        }
        flusher.start()
        // SIGTERM, SIGINT, SIGHUP: store every change while the folder is still there, then unmount
        // (libfuse's own handlers only mark the session, which a signal landing on one of Swift's
        // threads never wakes).
        let handle = SessionHandle(raw: session)
        let signals = [SIGTERM, SIGINT, SIGHUP].map { number -> DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                fs.log("signal \(number): storing every change, then unmounting")
                for failure in fs.commitDirty(olderThan: nil, durable: true) { fs.log("not stored: \(failure)") }
                fuse_session_exit(handle.raw)
                fuse_session_unmount(handle.raw)
                // Files still open would keep the detached mount (and this process) alive: end the
                // connection, which their next use answers with an error (their data is stored).
                if let connection { Self.abort(connection) }
            }
            source.resume()
            return source
        }
        defer {
            signals.forEach { $0.cancel() }
            // Every change is stored by the time this returns: a signal during the rest of the
            // shutdown ends the process as usual rather than being ignored.
            for number in [SIGTERM, SIGINT, SIGHUP] { signal(number, SIG_DFL) }
        }
        ready()
        let result = a67_fuse_loop_mt(session, UInt32(settings.threads))
        stop.withLock { $0 = true }
        // Everything changed is committed before the folder goes away.
        let failures = fs.commitDirty(olderThan: nil, durable: true)
        try? fs.catalog.sync()
        fs.snapshot(repository)
        fuse_session_unmount(session)
        if result < 0 { fs.log("the FUSE loop ended with error \(-result)") }
        return failures
    }
}

extension Mount {
    /// The kernel's number for the FUSE connection mounted at `path` (the minor of its device), from
    /// the mount table (stat would ask this very process, which is not serving yet).
    static func connection(_ path: String) -> String? {
        MountTable.device(at: path)?.split(separator: ":").last.map(String.init)
    }

    /// Aborts FUSE connection `id` through the fusectl filesystem (mounting it if need be).
    static func abort(_ id: String) {
        let control = "/sys/fs/fuse/connections"
        if !FileManager.default.fileExists(atPath: control + "/" + id) {
            _ = Glibc.mount("fusectl", control, "fusectl", 0, nil)
        }
        let fd = open(control + "/" + id + "/abort", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = Glibc.write(fd, "1", 1)
        close(fd)
    }
}

/// This process's view of the mount table (/proc/self/mountinfo).
public enum MountTable {
    /// Whether `path` is a mount point now.
    public static func isMounted(_ path: String) -> Bool { device(at: path) != nil }

    /// The "major:minor" of what is mounted at `path` (the last mount there), or nil.
    static func device(at path: String) -> String? {
        guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n").reversed() {
            let fields = line.split(separator: " ")
            guard fields.count > 4, unescape(fields[4]) == path else { continue }
            return String(fields[2])
        }
        return nil
    }

    /// Mount points are written with octal escapes for space, tab, newline and backslash.
    static func unescape(_ field: Substring) -> String {
        field.replacingOccurrences(of: "\\040", with: " ").replacingOccurrences(of: "\\011", with: "\t")
            .replacingOccurrences(of: "\\012", with: "\n").replacingOccurrences(of: "\\134", with: "\\")
    }
}

/// The session, for the signal handler's queue.
struct SessionHandle: @unchecked Sendable {
    let raw: OpaquePointer
}

extension MountFileSystem {
    func snapshot(_ repository: Repository) {
        do {
            let report = try context.blocking { try await repository.snapshotCatalog() }
            if !report.behind.isEmpty { log("the catalog snapshot did not reach \(report.behind.joined(separator: ", "))") }
        } catch {
            log("catalog snapshot failed: \(error)")
        }
    }
}

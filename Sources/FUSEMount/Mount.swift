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
        self.bucket = try repository.catalog.bucket(bucket)
        self.mountpoint = mountpoint
        self.settings = settings
    }

    /// Mounts, calls `ready`, serves until unmounted or signalled, then flushes and unmounts.
    /// Throws when the mount cannot be made; a change that could not be stored at the end is
    /// reported in the thrown error (nothing is dropped silently).
    public func run(ready: @escaping @Sendable () -> Void) async throws {
        let catalog = repository.catalog
        let writer = try repository.objectWriter(window: 4)
        let policy = ReplicaPolicy(replicas: bucket.replicas, minimum: bucket.minReplicas)
        // Every new file starts as the empty manifest: stored once, shared by all.
        let empty = Manifest(entries: [])
        let leases = LeaseBook(catalog: catalog)
        // Leased for as long as the mount runs: gc would otherwise take it whenever no empty file is left.
        let emptyID = try await repository.whileStoring {
            let (emptyID, emptyChunk) = try await writer.storeManifest(empty, policy: policy)
            if let emptyChunk { try await catalog.recordChunks([emptyChunk]) }
            try leases.acquire([emptyID])
            return emptyID
        }
        let cache = try ChunkCache(directory: repository.home + "/cache/" + bucket.name, diskLimit: settings.cacheSize,
                                   memoryLimit: settings.cacheMemory, sealer: writer.sealer, pool: writer.pool, catalog: catalog,
                                   key: try repository.localCacheKey())
        // A mount runs for long: freed buffers go back to the kernel rather than padding its RSS.
        MemoryTuning.limitRetainedMemory(32 << 20)
        let spill = try SpillFile(directory: repository.home + "/mounts")
        let context = try MountContext(repository: repository, bucket: bucket, cache: cache, spill: spill,
                                       budget: DirtyBudget(memoryLimit: settings.dirtyMemory, sealWindow: settings.sealWindow),
                                       leases: leases, emptyManifest: (emptyID, empty.encoded))
        let fs = MountFileSystem(context: context)
        let settings = self.settings
        let mountpoint = self.mountpoint
        let bucketName = bucket.name
        let repository = self.repository
        // One ServiceGroup, as in a67 serve: the FUSE session, and the provider watcher (providers changed by
        // other commands and keyrings gone missing are noticed within seconds). The session ends when the
        // folder is unmounted or on a signal (its own handlers: every change is committed before the folder
        // goes away); its end shuts the group down.
        let session = Session {
            try await BlockingIOPool.shared.run {
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

    /// The FUSE session, on this (blocking) thread.
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
        defer { signals.forEach { $0.cancel() } }
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

/// The C entry points: each finds the filesystem in the session's user data and hands the
/// request over, names and buffers copied into Swift values.
enum Operations {
    static func fs(_ req: fuse_req_t?) -> MountFileSystem {
        Unmanaged<MountFileSystem>.fromOpaque(fuse_req_userdata(req)!).takeUnretainedValue()
    }

    /// A request's bytes as an array, copied in one move.
    static func copy(_ buffer: UnsafePointer<CChar>?, _ size: Int) -> [UInt8] {
        guard let buffer, size > 0 else { return [] }
        return [UInt8](unsafeUninitializedCapacity: size) { out, count in
            memcpy(out.baseAddress!, buffer, size)
            count = size
        }
    }

    static func install(_ ops: inout fuse_lowlevel_ops) {
        ops.`init` = { _, conn in a67_conn_configure(conn) }
        ops.lookup = { req, parent, name in Operations.fs(req).lookup(Request(raw: req!), parent: parent, name: String(cString: name!)) }
        ops.forget = { req, _, _ in fuse_reply_none(req) }
        ops.forget_multi = { req, _, _ in fuse_reply_none(req) }
        ops.getattr = { req, ino, _ in Operations.fs(req).getattr(Request(raw: req!), ino: ino) }
        ops.setattr = { req, ino, attr, toSet, _ in
            Operations.fs(req).setattr(Request(raw: req!), ino: ino, attributes: attr!.pointee, fields: toSet)
        }
        ops.readlink = { req, ino in Operations.fs(req).readlink(Request(raw: req!), ino: ino) }
        ops.mkdir = { req, parent, name, mode in Operations.fs(req).mkdir(Request(raw: req!), parent: parent, name: String(cString: name!), mode: mode) }
        ops.mknod = { req, parent, name, mode, rdev in
            Operations.fs(req).mknod(Request(raw: req!), parent: parent, name: String(cString: name!), mode: mode, rdev: UInt64(rdev))
        }
        ops.unlink = { req, parent, name in Operations.fs(req).unlink(Request(raw: req!), parent: parent, name: String(cString: name!)) }
        ops.rmdir = { req, parent, name in Operations.fs(req).rmdir(Request(raw: req!), parent: parent, name: String(cString: name!)) }
        ops.symlink = { req, target, parent, name in
            Operations.fs(req).symlink(Request(raw: req!), target: String(cString: target!), parent: parent, name: String(cString: name!))
        }
        ops.rename = { req, parent, name, newParent, newName, flags in
            Operations.fs(req).rename(Request(raw: req!), parent: parent, name: String(cString: name!), newParent: newParent,
                           newName: String(cString: newName!), flags: flags)
        }
        ops.link = { req, ino, parent, name in Operations.fs(req).link(Request(raw: req!), ino: ino, parent: parent, name: String(cString: name!)) }
        ops.open = { req, ino, info in Operations.fs(req).openFile(Request(raw: req!), ino: ino, info: info!) }
        ops.create = { req, parent, name, mode, info in
            Operations.fs(req).create(Request(raw: req!), parent: parent, name: String(cString: name!), mode: mode, info: info!)
        }
        ops.read = { req, ino, size, offset, info in Operations.fs(req).read(Request(raw: req!), ino: ino, size: size, offset: Int64(offset), info: info) }
        ops.write = { req, ino, buffer, size, offset, info in
            let bytes = Operations.copy(buffer, size)
            Operations.fs(req).write(Request(raw: req!), ino: ino, bytes: bytes, offset: Int64(offset), info: info)
        }
        ops.flush = { req, ino, info in Operations.fs(req).flush(Request(raw: req!), ino: ino, info: info) }
        ops.release = { req, ino, info in Operations.fs(req).release(Request(raw: req!), ino: ino, info: info) }
        ops.fsync = { req, ino, _, info in Operations.fs(req).fsync(Request(raw: req!), ino: ino, info: info) }
        ops.fsyncdir = { req, _, _, _ in Operations.fs(req).fsyncdir(Request(raw: req!)) }
        ops.readdir = { req, ino, size, offset, _ in Operations.fs(req).readdir(Request(raw: req!), ino: ino, size: size, offset: Int64(offset), plus: false) }
        ops.readdirplus = { req, ino, size, offset, _ in
            Operations.fs(req).readdir(Request(raw: req!), ino: ino, size: size, offset: Int64(offset), plus: true)
        }
        ops.statfs = { req, _ in Operations.fs(req).statfs(Request(raw: req!)) }
        ops.setxattr = { req, ino, name, value, size, flags in
            let bytes = Operations.copy(value, size)
            Operations.fs(req).setxattr(Request(raw: req!), ino: ino, name: String(cString: name!), value: bytes, flags: flags)
        }
        ops.getxattr = { req, ino, name, size in Operations.fs(req).getxattr(Request(raw: req!), ino: ino, name: String(cString: name!), size: size) }
        ops.listxattr = { req, ino, size in Operations.fs(req).listxattr(Request(raw: req!), ino: ino, size: size) }
        ops.removexattr = { req, ino, name in Operations.fs(req).removexattr(Request(raw: req!), ino: ino, name: String(cString: name!)) }
    }
}

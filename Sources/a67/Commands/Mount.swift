import ArgumentParser
import ChunkStore
import FUSEMount
import Foundation
import Replicator
import Supervision

struct MountCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mount",
        abstract: "Mount a bucket as a folder (FUSE): its objects are the folder's files.",
        discussion: """
            Files written there are stored like a67 put stores objects (chunked, encrypted, replicated) \
            and show in a67 ls, a67 get and the S3 API once closed; objects put elsewhere show in the \
            folder within a second. fsync returns once the data is on its replicas.
            Without --foreground, a67 mount returns once the folder is mounted and a background process \
            serves it (its log: $A67_HOME/mounts/BUCKET.log). a67 umount MOUNTPOINT, SIGTERM or Ctrl-C \
            (with --foreground) stores every change, then unmounts.
            Example:
              mkdir -p ~/photos && a67 mount photos ~/photos
              cp -r ~/Pictures/2026 ~/photos/ && a67 umount ~/photos
            """)

    @OptionGroup var home: HomeOptions

    @Argument(help: "The bucket to mount.")
    var bucket: String

    @Argument(help: "An empty folder to mount it at.")
    var mountpoint: String

    @Flag(help: "Serve in this process until unmounted, SIGTERM or Ctrl-C.")
    var foreground = false

    @Option(help: "Local disk for cached chunks (kept encrypted), like 512M or 2G; 0 turns the disk cache off.")
    var cacheSize = "1G"

    @Flag(help: "Let other local users use the mount (needs root, or user_allow_other in /etc/fuse.conf). Permissions are enforced either way; new files belong to whoever creates them.")
    var allowOther = false

    @Flag(help: .hidden)
    var daemonChild = false

    func run() async throws {
        try await guarded {
            let point = absolute(mountpoint)
            let cacheBytes = try ByteSize.parse(cacheSize)
            try MountPoints.clearStale(point, home: home.path)
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: point, isDirectory: &isFolder), isFolder.boolValue else {
                throw StoreError(.notFound, "the mountpoint \(point) is not a folder: create it first (mkdir -p \(point))")
            }
            if MountTable.isMounted(point) {
                throw StoreError(.conflict, "something is already mounted at \(point): a67 umount \(point) first")
            }
            if foreground || daemonChild {
                if daemonChild { Supervision.detach() }
                try await serve(point, cacheBytes: cacheBytes)
            } else {
                try startInBackground(point)
            }
        }
    }

    func serve(_ point: String, cacheBytes: Int64) async throws {
        let repository = try Repository.open(home: home.path, backends: backendFactory, catalogModules: catalogModules, relaxed: true, passphrase: { try Passphrase.fromEnvironment() })
        var settings = Mount.Settings()
        settings.cacheSize = cacheBytes
        settings.allowOther = allowOther
        let mount = try Mount(repository: repository, bucket: bucket, mountpoint: point, settings: settings)
        let pidFile = MountPoints.pidFile(home: home.path, mountpoint: point)
        let lostFile = MountPoints.lostFile(home: home.path, mountpoint: point)
        try? FileManager.default.createDirectory(atPath: home.path + "/mounts", withIntermediateDirectories: true)
        try? FileManager.default.removeItem(atPath: lostFile)
        let bucket = self.bucket
        defer { pidFile.remove() }
        do {
            try await mount.run {
                pidFile.write()
                note("a67 mount: \(bucket) is mounted at \(point) (a67 umount \(point), SIGTERM or Ctrl-C unmounts)")
            }
        } catch {
            // For a67 umount, which cannot see this process's exit status: what was lost, before exiting.
            try? "\(error)\n".write(toFile: lostFile, atomically: true, encoding: .utf8)
            throw error
        }
        note("a67 mount: \(point) unmounted, every change stored")
    }

    /// Starts `a67 mount --foreground` detached (its own session, output to a log), hands it the
    /// passphrase through a pipe (never the command line or the environment), and returns once the
    /// folder is mounted, or fails with what the child said.
    func startInBackground(_ point: String) throws {
        let passphrase = try Passphrase.fromEnvironment()
        // Wrong passphrase or bucket: said here, not in a log.
        let repository = try Repository.open(home: home.path, backends: backendFactory, catalogModules: catalogModules, passphrase: { passphrase })
        _ = try repository.catalog.namespace.bucket(bucket)
        let logPath = home.path + "/mounts/\(bucket).log"
        try FileManager.default.createDirectory(atPath: home.path + "/mounts", withIntermediateDirectories: true)
        let executable = CommandLine.arguments[0].hasPrefix("/")
            ? CommandLine.arguments[0] : Bundle.main.executablePath ?? CommandLine.arguments[0]
        var arguments = ["mount", bucket, point, "--daemon-child", "--cache-size", cacheSize, "--home", home.path]
        if allowOther { arguments.append("--allow-other") }
        var environment = ProcessInfo.processInfo.environment
        environment["A67_PASSPHRASE"] = nil
        environment["A67_PASSPHRASE_FILE"] = "/dev/stdin"
        let child = try Supervision.startDetached(executable, arguments: arguments, environment: environment, log: logPath,
                                                  secret: passphrase.bytes + [0x0a])
        switch Supervision.waitUntilReady(child, timeout: .seconds(60), ready: { MountTable.isMounted(point) }) {
        case .ready:
            show("mounted \(bucket) at \(point) (process \(child.processIdentifier); a67 umount \(point) unmounts)")
        case .exited(let status):
            let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            // One line: error output escapes line breaks, so the log's last lines are joined.
            throw StoreError(.io, "the mount process exited (status \(status)) before mounting \(point); "
                + "the end of its log (\(logPath)): \(Supervision.tail(text))")
        case .timedOut:
            child.terminate()
            throw StoreError(.io, "\(point) was not mounted within 60 s; see \(logPath)")
        }
    }
}

struct UmountCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "umount",
        abstract: "Unmount a folder a67 mount serves, once every change in it is stored.",
        discussion: """
            Waits for the mount process to store what is still changed and exit. A folder whose mount \
            process was killed is just unmounted.
            Example:
              a67 umount ~/photos
            """)

    @OptionGroup var home: HomeOptions

    @Argument(help: "The folder a bucket is mounted at.")
    var mountpoint: String

    func run() async throws {
        try await guarded {
            let point = absolute(mountpoint)
            let pidFile = MountPoints.pidFile(home: home.path, mountpoint: point)
            let lostFile = MountPoints.lostFile(home: home.path, mountpoint: point)
            // It stores what is changed (which can take a while on slow providers), unmounts, exits.
            if let pid = pidFile.read(), Supervision.stop(pid) {
                // Changes it could not store are named in its lost file (its exit status is not ours to read).
                if let lost = try? String(contentsOfFile: lostFile, encoding: .utf8) {
                    try? FileManager.default.removeItem(atPath: lostFile)
                    throw StoreError(.providerFailure, lost.trimmingCharacters(in: .whitespacesAndNewlines))
                }
                if !MountTable.isMounted(point) {
                    show("unmounted \(point)")
                    return
                }
            }
            if try MountPoints.clearStale(point, home: home.path) {
                show("unmounted \(point) (its mount process was gone)")
                return
            }
            guard MountTable.isMounted(point) else {
                throw StoreError(.notFound, "nothing is mounted at \(point)")
            }
            // Mounted by a process of another A67_HOME, or one without its pid file: the kernel asks it to let go.
            let status = MountPoints.fusermount(["-u", point])
            guard status == 0 else {
                throw StoreError(.conflict, "cannot unmount \(point) (fusermount3 exit \(status)): is a program still using it? (fuser -m \(point))")
            }
            show("unmounted \(point)")
        }
    }
}

enum MountPoints {
    static func pidFile(home: String, mountpoint: String) -> PIDFile {
        PIDFile(directory: home + "/mounts", instance: mountpoint)
    }

    /// Where a mount process that could not store every change says which files lost what.
    static func lostFile(home: String, mountpoint: String) -> String {
        home + "/mounts/" + PIDFile.fileName(mountpoint) + ".lost"
    }

    /// Unmounts a mount whose process is gone (killed: "Transport endpoint is not connected"); true
    /// if there was one. Gone means: its pid file names a process that is no longer running, or the
    /// kernel says the connection is down (stat alone can answer from the kernel's cache for a while).
    @discardableResult
    static func clearStale(_ path: String, home: String) throws -> Bool {
        guard MountTable.isMounted(path) else { return false }
        var gone = false
        if let pid = pidFile(home: home, mountpoint: path).read() {
            gone = !ProcessIdentity.isRunning(pid)
        }
        var st = stat()
        if !gone, stat(path, &st) != 0, errno == ENOTCONN { gone = true }
        guard gone else { return false }
        if umount2(path, Int32(MNT_DETACH)) != 0 && fusermount(["-u", "-z", path]) != 0 {
            throw StoreError(.io, "\(path) is a mount whose process is gone, and it cannot be unmounted: run fusermount3 -uz \(path)")
        }
        pidFile(home: home, mountpoint: path).remove()
        note("a67: \(path) was left mounted by a mount process that is gone; unmounted it")
        return true
    }

    static func fusermount(_ arguments: [String]) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/fusermount3")
        process.arguments = arguments
        guard (try? process.run()) != nil else { return -1 }
        process.waitUntilExit()
        return process.terminationStatus
    }
}

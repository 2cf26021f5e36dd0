import CGlibc
#if canImport(Glibc)
import Glibc
#endif

/// What to start, and how to set the child up between fork and exec: what Foundation's `Process`
/// cannot do (its own session, joining cgroups before the first instruction runs, rlimits, another
/// uid). The node agent runs app instances with it; the C side is `a67_spawn` in the CGlibc shim.
public struct SpawnRequest: Sendable, Equatable {
    /// The program: an absolute path (no PATH search happens in the child; see `ChildProcesses.resolve`).
    public var executable: String
    /// The whole argv, argv[0] included.
    public var arguments: [String]
    /// "NAME=VALUE" strings: the child's whole environment.
    public var environment: [String]
    /// The working directory, entered after the uid is dropped (so it must be reachable by that uid).
    public var directory: String?
    /// The file stdout and stderr append to (created 0640 if missing, opened by the caller, so the
    /// child's uid needs no right to it); nil sends them to /dev/null.
    public var outputPath: String?
    /// Whether the child leads its own session and process group (its pid is the group's id).
    public var newSession: Bool
    /// cgroup.procs files the child writes "0" to before exec: it joins those groups before it runs.
    public var cgroupProcFiles: [String]
    /// The uid and gid to run as (supplementary groups dropped); nil keeps the caller's.
    public var user: (uid: UInt32, gid: UInt32)?
    /// RLIMIT_NOFILE, soft and hard; nil keeps the caller's.
    public var openFileLimit: UInt64?
    /// RLIMIT_CORE 0: a crashing instance leaves no core file in its folder.
    public var noCoreFiles: Bool

    public init(executable: String, arguments: [String], environment: [String], directory: String? = nil,
                outputPath: String? = nil, newSession: Bool = true, cgroupProcFiles: [String] = [],
                user: (uid: UInt32, gid: UInt32)? = nil, openFileLimit: UInt64? = nil, noCoreFiles: Bool = true) {
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.directory = directory
        self.outputPath = outputPath
        self.newSession = newSession
        self.cgroupProcFiles = cgroupProcFiles
        self.user = user
        self.openFileLimit = openFileLimit
        self.noCoreFiles = noCoreFiles
    }

    public static func == (a: SpawnRequest, b: SpawnRequest) -> Bool {
        a.executable == b.executable && a.arguments == b.arguments && a.environment == b.environment
            && a.directory == b.directory && a.outputPath == b.outputPath && a.newSession == b.newSession
            && a.cgroupProcFiles == b.cgroupProcFiles && a.user?.uid == b.user?.uid && a.user?.gid == b.user?.gid
            && a.openFileLimit == b.openFileLimit && a.noCoreFiles == b.noCoreFiles
    }
}

/// A child that could not be started: which step of its setup failed, and the errno.
public struct SpawnError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Step: Int32, Sendable {
        case fork = 1, session, cgroup, limits, files, user, directory, exec
    }

    public let step: Step
    public let errno: Int32
    public let executable: String
    /// The folder it was to run in (named when entering it failed).
    public let directory: String?

    public init(step: Step, errno: Int32, executable: String, directory: String? = nil) {
        self.step = step
        self.errno = errno
        self.executable = executable
        self.directory = directory
    }

    /// Whether starting again cannot help (the program is missing or not executable, the folder or
    /// the uid is wrong), as opposed to a passing condition: fork's EAGAIN, or an exec's ETXTBSY (the
    /// program file is open for writing somewhere, as when another thread forked while it was being
    /// written: the descriptor lives until that child's exec).
    public var isPermanent: Bool {
        switch step {
        case .exec: errno != ETXTBSY
        case .directory, .user: true
        case .fork, .session, .cgroup, .limits, .files: false
        }
    }

    public var description: String {
        let reason = String(cString: strerror(errno))
        switch step {
        case .fork: return "could not start \(executable): fork: \(reason)"
        case .session: return "could not start \(executable) in its own session: \(reason)"
        case .cgroup: return "could not put \(executable) in its cgroup: \(reason)"
        case .limits: return "could not set the resource limits of \(executable): \(reason)"
        case .files: return "could not set up the output of \(executable): \(reason)"
        case .user: return "could not switch \(executable) to its unprivileged user: \(reason)"
        case .directory: return "could not enter \(directory ?? "the working folder"), the working folder of \(executable): \(reason)"
        case .exec: return "could not execute \(executable): \(reason)"
        }
    }
}

/// How a child ended.
public enum ChildExit: Sendable, Equatable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    /// The status a shell would show: the exit code, or 128 + the signal.
    public var code: Int32 {
        switch self {
        case .exited(let code): code
        case .signaled(let signal): 128 + signal
        }
    }

    public var description: String {
        switch self {
        case .exited(let code): "exited with status \(code)"
        case .signaled(let signal): "killed by signal \(signal)"
        }
    }
}

/// Starting, reaping and signalling child processes and their groups, without a thread per child:
/// the caller polls `reap`, which never blocks.
public enum ChildProcesses {
    /// Starts the child and returns its pid once it has exec'd.
    public static func spawn(_ request: SpawnRequest) throws(SpawnError) -> Int32 {
        let outputFD = open(request.outputPath ?? "/dev/null", O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard outputFD >= 0 else { throw SpawnError(step: .files, errno: errno, executable: request.executable) }
        // The child writes through this descriptor: its uid needs no right to the file itself.
        defer { close(outputFD) }
        var failedErrno: Int32 = 0
        var failedStep: Int32 = 0
        let pid = withCStrings(request.arguments) { argv in
            withCStrings(request.environment) { envp in
                withCStrings(request.cgroupProcFiles) { cgroups in
                    request.executable.withCString { path in
                        withOptionalCString(request.directory) { directory in
                            var options = a67_spawn_options()
                            options.path = path
                            options.argv = argv
                            options.envp = envp
                            options.directory = directory
                            options.output_fd = outputFD
                            options.new_session = request.newSession ? 1 : 0
                            options.cgroup_procs = UnsafePointer(OpaquePointer(cgroups))
                            if let user = request.user {
                                options.set_ids = 1
                                options.uid = user.uid
                                options.gid = user.gid
                            }
                            options.open_files = request.openFileLimit.map { Int64(clamping: $0) } ?? 0
                            options.no_core = request.noCoreFiles ? 1 : 0
                            return a67_spawn(&options, &failedErrno, &failedStep)
                        }
                    }
                }
            }
        }
        guard pid > 0 else {
            throw SpawnError(step: SpawnError.Step(rawValue: failedStep) ?? .fork, errno: failedErrno, executable: request.executable,
                             directory: request.directory)
        }
        return pid
    }

    /// How child `pid` ended, when it has (reaping it); nil while it runs, or when it is not a child
    /// of this process (already reaped, or someone else's).
    public static func reap(_ pid: Int32) -> ChildExit? {
        var status: Int32 = 0
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { break }
            if r == -1 && errno == EINTR { continue }
            return nil
        }
        // WIFEXITED / WEXITSTATUS / WTERMSIG, which Swift does not import (macros).
        if status & 0x7F == 0 { return .exited((status >> 8) & 0xFF) }
        return .signaled(status & 0x7F)
    }

    /// Sends `signal` to every process of group `group`; false when the group has no process left.
    @discardableResult
    public static func signalGroup(_ group: Int32, _ signal: Int32) -> Bool {
        guard group > 1 else { return false }
        return kill(-group, signal) == 0
    }

    /// Whether process group `group` still has a process (zombies count until reaped).
    public static func groupExists(_ group: Int32) -> Bool { signalGroup(group, 0) }

    /// Sends `signal` to process `pid`; false when there is no such process.
    @discardableResult
    public static func signal(_ pid: Int32, _ signal: Int32) -> Bool {
        guard pid > 1 else { return false }
        return kill(pid, signal) == 0
    }

    /// Whether `path` names a regular file this process may execute (as the effective uid; a child
    /// with another uid may still be refused, and says so when it is).
    public static func isExecutable(_ path: String) -> Bool {
        var info = stat()
        guard stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return false }
        return access(path, X_OK) == 0
    }

    /// The program `name` names, as `execvp` would find it: a name with a '/' relative to
    /// `directory`, a bare one on `searchPath` (':'-separated). Nil when there is no such executable.
    public static func resolve(_ name: String, in directory: String, searchPath: String) -> String? {
        if name.isEmpty { return nil }
        if name.contains("/") {
            let path = name.hasPrefix("/") ? name : directory + "/" + name
            return isExecutable(path) ? path : nil
        }
        for folder in searchPath.split(separator: ":", omittingEmptySubsequences: false) {
            let base = folder.isEmpty ? directory : (folder.hasPrefix("/") ? String(folder) : directory + "/" + folder)
            let path = base + "/" + name
            if isExecutable(path) { return path }
        }
        return nil
    }
}

/// Calls `body` with a NULL-terminated array of C strings copied from `strings`, valid only during the call.
private func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    let pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) } + [nil]
    defer { for pointer in pointers { free(pointer) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}

private func withOptionalCString<R>(_ string: String?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
    guard let string else { return body(nil) }
    return string.withCString { body($0) }
}

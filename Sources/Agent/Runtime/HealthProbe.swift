import ChunkStore
import Compute
#if canImport(Glibc)
import Glibc
#endif

/// One run of an instance's health check, with real I/O: an HTTP GET or a TCP connect to its port,
/// or its check program. The result says why it failed, for the instance's report.
enum HealthProbe {
    struct Outcome: Sendable, Equatable {
        var passed: Bool
        /// What failed ("GET /health answered 503"); nil when it passed.
        var detail: String?
    }

    /// What an exec check needs of its instance: where and as whom it runs, and its environment.
    struct ExecContext: Sendable {
        var directory: String
        var environment: [String]
        var searchPath: String
        var user: (uid: UInt32, gid: UInt32)?
    }

    /// Runs `probe` once; it counts as failed after `timeout`. The socket probes run on `pool` (they
    /// block a thread for up to the timeout); the exec probe is polled on `clock`.
    static func run(_ probe: HealthCheck.Probe, port: Int?, timeout: Duration, exec: ExecContext, pool: BlockingIOPool,
                    clock: RuntimeClock) async -> Outcome {
        let milliseconds = Int(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        switch probe {
        case .running:
            return Outcome(passed: true)
        case .tcp:
            guard let port else { return Outcome(passed: false, detail: "tcp check: no port") }
            let outcome = try? await pool.run { () -> Outcome in
                do {
                    try LocalSockets.checkAcceptsConnections(port: port, timeoutMilliseconds: milliseconds)
                    return Outcome(passed: true)
                } catch {
                    return Outcome(passed: false, detail: "tcp check: \(error)")
                }
            }
            return outcome ?? Outcome(passed: false, detail: "tcp check: cancelled")
        case .http(let path, let expected):
            guard let port else { return Outcome(passed: false, detail: "GET \(path): no port") }
            let answer = try? await pool.run { () -> Result<Int, LocalSockets.ProbeError> in
                Result { () throws(LocalSockets.ProbeError) in
                    try LocalSockets.httpStatus(port: port, path: path, timeoutMilliseconds: milliseconds)
                }
            }
            switch answer {
            case .success(let status)?:
                let passed = expected.map { status == $0 } ?? (200..<300).contains(status)
                return passed ? Outcome(passed: true) : Outcome(passed: false, detail: "GET \(path) answered \(status)")
            case .failure(let error)?:
                return Outcome(passed: false, detail: "GET \(path): \(error)")
            case nil:
                return Outcome(passed: false, detail: "GET \(path): cancelled")
            }
        case .exec(let argv):
            return await runProgram(argv, timeout: timeout, context: exec, clock: clock)
        }
    }

    /// Runs the check program in its own process group (so a timeout kills all it started) and waits
    /// for it, polling every 20 ms.
    private static func runProgram(_ argv: [String], timeout: Duration, context: ExecContext, clock: RuntimeClock) async -> Outcome {
        let name = argv.first ?? ""
        guard let program = ChildProcesses.resolve(name, in: context.directory, searchPath: context.searchPath) else {
            return Outcome(passed: false, detail: "check program not found: \(name)")
        }
        let pid: Int32
        do {
            pid = try ChildProcesses.spawn(SpawnRequest(
                executable: program, arguments: argv, environment: context.environment, directory: context.directory,
                user: context.user))
        } catch {
            return Outcome(passed: false, detail: "check: \(error)")
        }
        let deadline = clock.now() + timeout
        while true {
            if let exit = ChildProcesses.reap(pid) {
                return exit == .exited(0) ? Outcome(passed: true) : Outcome(passed: false, detail: "check \(name) \(exit)")
            }
            if clock.now() >= deadline { break }
            try? await clock.sleep(.milliseconds(20))
        }
        ChildProcesses.signalGroup(pid, SIGKILL)
        for _ in 0..<400 where ChildProcesses.reap(pid) == nil {
            try? await clock.sleep(.milliseconds(5))
        }
        return Outcome(passed: false, detail: "check \(name) timed out")
    }
}

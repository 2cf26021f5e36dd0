import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A program the tests run (the a67 binary, mount, openssl, python3), awaited without holding a
/// thread of the cooperative pool: its exit arrives through `Process.terminationHandler`, and each of
/// its output pipes is read to its end on a thread of its own, so that neither pipe can fill up and
/// stall the child however much it prints, while the test's task is suspended, not blocked. Input is
/// written on a thread of its own too (a child that stops reading must not stall the test).
public final class ChildProcess: @unchecked Sendable {
    /// What the child reads.
    public enum Input: Sendable {
        /// The null device.
        case none
        /// These bytes, then end of file.
        case bytes([UInt8])
        /// A pipe the test writes to with `feed` and closes with `closeInput`.
        case pipe
    }

    /// Where the child's output goes.
    public enum Output: Sendable {
        /// Collected, for the result.
        case capture
        /// Standard error only: into the same collection as standard output, in the order written
        /// (with standard output captured).
        case merged
        /// The null device.
        case discard
        /// The test process's own.
        case inherit
        /// A pipe the test reads itself, with `readLine` (a server that prints its port).
        case lines
    }

    public struct Result: Sendable {
        public let status: Int32
        /// `.exit` or `.uncaughtSignal` (status is then the signal).
        public let reason: Process.TerminationReason
        public let stdout: [UInt8]
        public let stderr: [UInt8]
        /// Killed by `finish(timeout:)` because it did not exit in time.
        public let timedOut: Bool

        public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
        public var stderrText: String { String(decoding: stderr, as: UTF8.self) }
    }

    public let process: Process
    private let inputPipe: Pipe?
    /// The test's own end of the child's input (`.pipe`; with `.bytes`, the writing thread owns it).
    private let fedInput: FileHandle?
    private let linesPipe: Pipe?
    private let exited = OneShot<Void>()
    private let stdout: OneShot<[UInt8]>
    private let stderr: OneShot<[UInt8]>

    /// A child process that stops at a closed pipe must not stop the tests with SIGPIPE: a write to a
    /// child that exited early fails with EPIPE instead.
    private static let pipesMayClose: Void = { _ = Glibc.signal(SIGPIPE, SIG_IGN) }()

    /// Starts `executable ARGUMENTS`.
    public init(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, input: Input = .none,
                stdout: Output = .capture, stderr: Output = .capture) throws {
        Self.pipesMayClose
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        switch input {
        case .none: process.standardInput = FileHandle.nullDevice; inputPipe = nil
        case .bytes, .pipe:
            let pipe = Pipe()
            process.standardInput = pipe
            inputPipe = pipe
        }
        if case .pipe = input { fedInput = inputPipe?.fileHandleForWriting } else { fedInput = nil }
        let outPipe = stdout == .capture || stdout == .lines ? Pipe() : nil
        if stdout != .inherit { process.standardOutput = outPipe ?? FileHandle.nullDevice }
        linesPipe = stdout == .lines ? outPipe : nil
        let errPipe = stderr == .capture ? Pipe() : nil
        switch stderr {
        case .inherit: break
        case .merged: process.standardError = outPipe ?? FileHandle.nullDevice
        default: process.standardError = errPipe ?? FileHandle.nullDevice
        }
        let exited = self.exited
        process.terminationHandler = { _ in exited.set(()) }
        self.process = process
        self.stdout = OneShot()
        self.stderr = OneShot()
        try process.run()  // closes the parent's copies of the child's ends: the reads below end with the child's
        Self.collect(stdout == .lines ? nil : outPipe, into: self.stdout)
        Self.collect(errPipe, into: self.stderr)
        if case .bytes(let bytes) = input, let pipe = inputPipe {
            Thread.detachNewThread {
                try? pipe.fileHandleForWriting.write(contentsOf: Data(bytes))
                try? pipe.fileHandleForWriting.close()
            }
        }
    }

    /// Runs `executable ARGUMENTS` to its end (see `finish`).
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                           input: [UInt8]? = nil, stdout: Output = .capture, stderr: Output = .capture,
                           timeout: Duration? = nil) async throws -> Result {
        try await ChildProcess(executable, arguments, environment: environment, input: input.map { .bytes($0) } ?? .none,
                               stdout: stdout, stderr: stderr).finish(timeout: timeout)
    }

    public var processIdentifier: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }

    /// Writes to its standard input (`.pipe`), on a thread of its own (the write waits while the pipe is
    /// full); false once it stopped reading.
    @discardableResult
    public func feed(_ bytes: [UInt8]) async -> Bool {
        guard let handle = fedInput else { return false }
        return await onOwnThread { (try? handle.write(contentsOf: Data(bytes))) != nil }
    }

    /// Closes its standard input (`.pipe`): it reads end of file.
    public func closeInput() {
        let first = closingInput.withLock { closed in
            defer { closed = true }
            return !closed
        }
        if first { try? fedInput?.close() }
    }

    private let closingInput = Mutex(false)

    public func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    /// The next line it printed on standard output (`.lines`), without its newline; what came before
    /// end of file if no newline did. Read on a thread of its own.
    public func readLine() async -> String {
        guard let fd = linesPipe?.fileHandleForReading.fileDescriptor else { return "" }
        return await onOwnThread { String(decoding: PipeReading.readLine(fd), as: UTF8.self) }
    }

    /// Closes its input (`.pipe`: it reads end of file), waits for it to exit and for the end of its
    /// output. With a `timeout`, a child still running then is killed (SIGKILL) and the result says so.
    public func finish(timeout: Duration? = nil) async -> Result {
        closeInput()
        var timedOut = false
        if let timeout {
            timedOut = await withTaskGroup(of: Bool.self) { group in
                group.addTask { [exited] in await exited.value; return false }
                group.addTask {
                    do { try await Task.sleep(for: timeout) } catch { return false }
                    return true
                }
                let late = await group.next() ?? false
                if late { kill(process.processIdentifier, SIGKILL) }
                group.cancelAll()
                return late
            }
        }
        await exited.value
        return Result(status: process.terminationStatus, reason: process.terminationReason,
                      stdout: await stdout.value, stderr: await stderr.value, timedOut: timedOut)
    }

    deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }

    /// Reads `pipe` to its end on a thread of its own, then closes it; nothing (at once) for no pipe.
    /// Closed here rather than when the `Process` goes: a suite runs thousands of children, and
    /// descriptors past 1024 break whatever in the process still uses select() (FoundationNetworking).
    private static func collect(_ pipe: Pipe?, into result: OneShot<[UInt8]>) {
        guard let pipe else { return result.set([]) }
        Thread.detachNewThread {
            let bytes = PipeReading.readAll(pipe.fileHandleForReading.fileDescriptor)
            try? pipe.fileHandleForReading.close()
            result.set(bytes)
        }
    }
}

/// Runs `body` on a thread of its own and awaits its result: a blocking read or wait in a test then
/// holds that thread, never one of the cooperative pool's.
public func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread.detachNewThread { continuation.resume(returning: body()) }
    }
}

/// A value set once and awaited by any number of tasks.
final class OneShot<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var result: Value?
    private var waiters: [CheckedContinuation<Value, Never>] = []

    func set(_ value: Value) {
        let waiting = lock.withLock {
            result = value
            defer { waiters = [] }
            return waiters
        }
        for waiter in waiting { waiter.resume(returning: value) }
    }

    var value: Value {
        get async {
            await withCheckedContinuation { continuation in
                let ready: Value? = lock.withLock {
                    if let result { return result }
                    waiters.append(continuation)
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        }
    }
}

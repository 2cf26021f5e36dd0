import BackendTesting
import ChunkStore
import Foundation
import Testing

/// Runs the built `a67` binary with its own $A67_HOME, as a user would.
final class CLI: @unchecked Sendable {
    let home: String
    let scratch: String
    var environment: [String: String]

    static let binary: String = {
        if let path = ProcessInfo.processInfo.environment["A67_BIN"] { return path }
        // .build/debug/<tests>.xctest -> .build/debug/a67
        let tests = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let beside = tests.appendingPathComponent("a67").path
        if FileManager.default.isExecutableFile(atPath: beside) { return beside }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".build/debug/a67").path
    }()

    /// a67 may exit before reading the input a test feeds it (bad-input cases do): the write must then
    /// fail with EPIPE, not kill the test process with SIGPIPE.
    private static let pipesMayClose: Void = { signal(SIGPIPE, SIG_IGN) }()

    init() throws {
        Self.pipesMayClose
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("a67-cli-\(UUID().uuidString)").path
        home = scratch + "/home"
        try FileManager.default.createDirectory(atPath: scratch + "/providers", withIntermediateDirectories: true)
        environment = ["A67_HOME": home, "A67_PASSPHRASE": "test passphrase", "PATH": "/usr/bin:/bin"]
    }

    deinit { try? FileManager.default.removeItem(atPath: scratch) }

    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
        let stdoutBytes: [UInt8]
    }

    /// Runs `a67 ARGS`, feeding `input` to standard input. `detached` runs it in a session of its own,
    /// with no controlling terminal, whether or not the tests themselves run on one.
    @discardableResult
    func run(_ arguments: [String], input: [UInt8]? = nil, environment extra: [String: String] = [:],
             detached: Bool = false) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: detached ? "/usr/bin/setsid" : Self.binary)
        process.arguments = detached ? ["--wait", Self.binary] + arguments : arguments
        process.environment = environment.merging(extra) { $1 }
        let out = Pipe(), err = Pipe(), inPipe = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input == nil ? FileHandle.nullDevice : inPipe
        try process.run()
        if let input {
            DispatchQueue.global().async {
                try? inPipe.fileHandleForWriting.write(contentsOf: Data(input))
                try? inPipe.fileHandleForWriting.close()
            }
        }
        let collected = Self.collect(out, err)
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: String(decoding: collected.0, as: UTF8.self),
                      stderr: String(decoding: collected.1, as: UTF8.self), stdoutBytes: collected.0)
    }

    /// A running `a67` whose standard input the test feeds piece by piece (to act in the middle of a put).
    final class Running: @unchecked Sendable {
        let process: Process
        let input: FileHandle
        private let out = Pipe(), err = Pipe()
        private var collected: (stdout: [UInt8], stderr: [UInt8])?
        private let done = DispatchSemaphore(value: 0)

        init(_ cli: CLI, _ arguments: [String]) throws {
            process = Process()
            process.executableURL = URL(fileURLWithPath: CLI.binary)
            process.arguments = arguments
            process.environment = cli.environment
            let inPipe = Pipe()
            process.standardOutput = out
            process.standardError = err
            process.standardInput = inPipe
            input = inPipe.fileHandleForWriting
            try process.run()
            let out = self.out, err = self.err
            DispatchQueue.global().async { [self] in
                collected = CLI.collect(out, err)
                done.signal()
            }
        }

        /// Writes to its standard input; false once it stopped reading.
        @discardableResult
        func feed(_ bytes: [UInt8]) -> Bool { (try? input.write(contentsOf: Data(bytes))) != nil }

        /// Closes its input and waits for it to exit.
        func finish() -> Result {
            try? input.close()
            process.waitUntilExit()
            done.wait()
            return Result(status: process.terminationStatus, stdout: String(decoding: collected!.stdout, as: UTF8.self),
                          stderr: String(decoding: collected!.stderr, as: UTF8.self), stdoutBytes: collected!.stdout)
        }

        func killHard() { kill(process.processIdentifier, SIGKILL) }
    }

    func start(_ arguments: [String]) throws -> Running { try Running(self, arguments) }

    /// Waits until `condition` holds (polling every 10 ms), for at most `seconds`; false if it never did.
    func waitUntil(seconds: Double = 120, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(10_000)
        }
        return condition()
    }

    /// Runs and expects success.
    @discardableResult
    func ok(_ arguments: [String], input: [UInt8]? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws -> Result {
        let result = try run(arguments, input: input)
        #expect(result.status == 0, "a67 \(arguments.joined(separator: " ")) failed: \(result.stderr)", sourceLocation: sourceLocation)
        return result
    }

    /// Runs and expects exit `status` with a message on standard error containing `message`.
    @discardableResult
    func fails(_ arguments: [String], status: Int32, message: String? = nil, input: [UInt8]? = nil,
               environment extra: [String: String] = [:], detached: Bool = false,
               sourceLocation: SourceLocation = #_sourceLocation) throws -> Result {
        let result = try run(arguments, input: input, environment: extra, detached: detached)
        #expect(result.status == status, "a67 \(arguments.joined(separator: " ")) exited \(result.status), stderr: \(result.stderr)",
                sourceLocation: sourceLocation)
        if let message {
            #expect(result.stderr.contains(message), "stderr was: \(result.stderr)", sourceLocation: sourceLocation)
        }
        return result
    }

    /// init, `count` directory providers and a bucket.
    func setUp(providers count: Int = 2, bucket: String = "test-bucket", replicas: Int = 1) throws {
        try ok(["init"])
        for i in 1...count { try ok(["provider", "add", "p\(i)", "--dir", provider(i)]) }
        try ok(["bucket", "create", bucket, "--replicas", String(replicas)])
    }

    func provider(_ i: Int) -> String { scratch + "/providers/p\(i)" }

    func file(_ name: String, _ bytes: [UInt8]) -> String {
        let path = scratch + "/" + name
        overwrite(path, bytes)
        return path
    }

    func read(_ path: String) -> [UInt8]? { FileManager.default.contents(atPath: path).map { [UInt8]($0) } }

    /// Chunk files on a provider, by path.
    /// The files of the chunks the catalog records on provider `i` (not the catalog snapshot's own).
    func chunkFiles(_ i: Int) -> [String] {
        let root = provider(i) + "/data"
        let recorded = Set(((try? Catalog(path: home + "/catalog.db").chunks.allLocations()) ?? []).map(\.chunk.hex))
        let enumerator = FileManager.default.enumerator(atPath: root)
        var files: [String] = []
        while let name = enumerator?.nextObject() as? String {
            if name.contains("/"), recorded.contains(String(name.split(separator: "/").last!)) { files.append(root + "/" + name) }
        }
        return files.sorted()
    }

    /// Every chunk file on provider `i`, the catalog snapshot's included.
    func allChunkFiles(_ i: Int) -> [String] {
        let root = provider(i) + "/data"
        let enumerator = FileManager.default.enumerator(atPath: root)
        var files: [String] = []
        while let name = enumerator?.nextObject() as? String {
            if name.contains("/") { files.append(root + "/" + name) }
        }
        return files.sorted()
    }

    /// Every chunk location the catalog records is a file on that provider.
    func everyRecordedChunkExists() throws -> Bool {
        let catalog = try Catalog(path: home + "/catalog.db")
        let roots = Dictionary(uniqueKeysWithValues: try catalog.providers.all().map { provider in
            let config = try? JSONSerialization.jsonObject(with: Data(provider.config.utf8)) as? [String: String]
            return (provider.id, config?["path"] ?? "")
        })
        return try catalog.chunks.allLocations().allSatisfy { FileManager.default.fileExists(atPath: roots[$0.provider]! + "/" + $0.chunk.objectName) }
    }

    func json(_ arguments: [String]) throws -> Any {
        let result = try ok(arguments + ["--json"])
        return try JSONSerialization.jsonObject(with: Data(result.stdoutBytes))
    }

    static func collect(_ out: Pipe, _ err: Pipe) -> ([UInt8], [UInt8]) {
        let group = DispatchGroup()
        nonisolated(unsafe) var errBytes: [UInt8] = []
        group.enter()
        DispatchQueue.global().async {
            errBytes = PipeReading.readAll(err.fileHandleForReading.fileDescriptor)
            group.leave()
        }
        let outBytes = PipeReading.readAll(out.fileHandleForReading.fileDescriptor)
        group.wait()
        return (outBytes, errBytes)
    }
}

func randomBytes(_ count: Int) -> [UInt8] { Crypto.randomBytes(count) }

func textBytes(_ count: Int) -> [UInt8] {
    var out: [UInt8] = []
    var i = 0
    while out.count < count {
        out += Array("line \(i) of some very ordinary text that compresses well\n".utf8)
        i += 1
    }
    return Array(out.prefix(count))
}

/// Writes a whole file; a test that cannot write its own fixtures stops here.
func overwrite(_ path: String, _ bytes: [UInt8]) {
    precondition(FileManager.default.createFile(atPath: path, contents: Data(bytes)), "cannot write \(path)")
}

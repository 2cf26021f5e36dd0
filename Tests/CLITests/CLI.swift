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

    init() throws {
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

        init(_ result: ChildProcess.Result) {
            status = result.status
            stdout = result.stdoutText
            stderr = result.stderrText
            stdoutBytes = result.stdout
        }
    }

    /// How long one a67 command may run before the test kills it and fails: a hang then names its command.
    static let timeout: Duration = .seconds(600)

    /// Runs `a67 ARGS`, feeding `input` to standard input. `detached` runs it in a session of its own,
    /// with no controlling terminal, whether or not the tests themselves run on one.
    @discardableResult
    func run(_ arguments: [String], input: [UInt8]? = nil, environment extra: [String: String] = [:],
             detached: Bool = false, sourceLocation: SourceLocation = #_sourceLocation) async throws -> Result {
        let result = try await ChildProcess.run(detached ? "/usr/bin/setsid" : Self.binary,
                                                detached ? ["--wait", Self.binary] + arguments : arguments,
                                                environment: environment.merging(extra) { $1 }, input: input, timeout: Self.timeout)
        #expect(!result.timedOut, "a67 \(arguments.joined(separator: " ")) did not exit within \(Self.timeout)",
                sourceLocation: sourceLocation)
        return Result(result)
    }

    /// A running `a67` whose standard input the test feeds piece by piece (to act in the middle of a put).
    final class Running: Sendable {
        let child: ChildProcess

        init(_ cli: CLI, _ arguments: [String]) throws {
            child = try ChildProcess(CLI.binary, arguments, environment: cli.environment, input: .pipe)
        }

        var isRunning: Bool { child.isRunning }

        /// Writes to its standard input; false once it stopped reading.
        @discardableResult
        func feed(_ bytes: [UInt8]) async -> Bool { await child.feed(bytes) }

        /// Closes its input and waits for it to exit.
        func finish() async -> Result {
            Result(await child.finish(timeout: CLI.timeout))
        }

        func killHard() { child.signal(SIGKILL) }
    }

    func start(_ arguments: [String]) throws -> Running { try Running(self, arguments) }

    /// A TCP socket listening on a loopback port the kernel chose, and that port; nil if none could be had.
    /// Closed at once, the port is one no other process listens on (for a server the test starts).
    static func listeningLoopbackSocket() -> (fd: Int32, port: Int)? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                bind(fd, raw, length) == 0 && listen(fd, 1) == 0 && getsockname(fd, raw, &length) == 0
            }
        }
        guard bound else { close(fd); return nil }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }

    /// Waits until `condition` holds (polling every 10 ms), for at most `seconds`; false if it never did.
    func waitUntil(seconds: Double = 120, _ condition: () -> Bool) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return condition()
    }

    /// Runs and expects success.
    @discardableResult
    func ok(_ arguments: [String], input: [UInt8]? = nil, sourceLocation: SourceLocation = #_sourceLocation) async throws -> Result {
        let result = try await run(arguments, input: input, sourceLocation: sourceLocation)
        #expect(result.status == 0, "a67 \(arguments.joined(separator: " ")) failed: \(result.stderr)", sourceLocation: sourceLocation)
        return result
    }

    /// Runs and expects exit `status` with a message on standard error containing `message`.
    @discardableResult
    func fails(_ arguments: [String], status: Int32, message: String? = nil, input: [UInt8]? = nil,
               environment extra: [String: String] = [:], detached: Bool = false,
               sourceLocation: SourceLocation = #_sourceLocation) async throws -> Result {
        let result = try await run(arguments, input: input, environment: extra, detached: detached, sourceLocation: sourceLocation)
        #expect(result.status == status, "a67 \(arguments.joined(separator: " ")) exited \(result.status), stderr: \(result.stderr)",
                sourceLocation: sourceLocation)
        if let message {
            #expect(result.stderr.contains(message), "stderr was: \(result.stderr)", sourceLocation: sourceLocation)
        }
        return result
    }

    /// init, `count` directory providers and a bucket.
    func setUp(providers count: Int = 2, bucket: String = "test-bucket", replicas: Int = 1) async throws {
        try await ok(["init"])
        for i in 1...count { try await ok(["provider", "add", "p\(i)", "--dir", provider(i)]) }
        try await ok(["bucket", "create", bucket, "--replicas", String(replicas)])
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

    func json(_ arguments: [String]) async throws -> Any {
        let result = try await ok(arguments + ["--json"])
        return try JSONSerialization.jsonObject(with: Data(result.stdoutBytes))
    }
}

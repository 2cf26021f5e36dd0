import BackendTesting
import ChunkStore
import Foundation

/// faultproxy.py (beside this file) between our client and a real server: it forwards HTTP both
/// ways and injects one kind of fault (see the script for the modes). One proxy per test.
final class FaultProxy: Sendable {
    let port: Int
    let logPath: String
    private let process: Process

    init(mode: String, upstream: String) throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("faultproxy.py").path
        let upstreamAuthority = URLComponents(string: upstream).map { "\($0.host ?? "127.0.0.1"):\($0.port ?? 80)" } ?? upstream
        logPath = NSTemporaryDirectory() + "a67-faultproxy-\(Hex.encode(Crypto.randomBytes(6))).log"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, "--upstream", upstreamAuthority, "--mode", mode, "--log", logPath]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        // The proxy prints its port once it listens.
        let line = PipeReading.readLine(out.fileHandleForReading.fileDescriptor)
        guard let port = Int(String(decoding: line, as: UTF8.self)) else {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "faultproxy.py did not start (mode \(mode))"])
        }
        self.port = port
        self.process = process
    }

    var url: String { "http://127.0.0.1:\(port)" }

    /// One entry per request the proxy saw: "METHOD PATH STATUS".
    var log: [String] {
        ((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    /// Kills the proxy (SIGKILL: it keeps no state worth a clean exit, and a test process may
    /// have SIGTERM blocked, which children inherit).
    func stop() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: logPath)
    }

    deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
}

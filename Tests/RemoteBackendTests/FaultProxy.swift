import BackendTesting
import ChunkStore
import Foundation

/// faultproxy.py (beside this file) between our client and a real server: it forwards HTTP both
/// ways and injects one kind of fault (see the script for the modes). One proxy per test.
final class FaultProxy: Sendable {
    let port: Int
    let logPath: String
    private let child: ChildProcess

    init(mode: String, upstream: String) async throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("faultproxy.py").path
        let upstreamAuthority = URLComponents(string: upstream).map { "\($0.host ?? "127.0.0.1"):\($0.port ?? 80)" } ?? upstream
        logPath = NSTemporaryDirectory() + "a67-faultproxy-\(Hex.encode(Crypto.randomBytes(6))).log"
        let child = try ChildProcess("/usr/bin/env", ["python3", script, "--upstream", upstreamAuthority, "--mode", mode, "--log", logPath],
                                     stdout: .lines, stderr: .inherit)
        // The proxy prints its port once it listens.
        guard let port = Int(await child.readLine()) else {
            child.signal(SIGKILL)
            _ = await child.finish()
            throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "faultproxy.py did not start (mode \(mode))"])
        }
        self.port = port
        self.child = child
    }

    var url: String { "http://127.0.0.1:\(port)" }

    /// One entry per request the proxy saw: "METHOD PATH STATUS".
    var log: [String] {
        ((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    /// Kills the proxy (SIGKILL: it keeps no state worth a clean exit, and a test process may
    /// have SIGTERM blocked, which children inherit). Its exit follows within moments; `stopped`
    /// waits for it.
    func stop() {
        child.signal(SIGKILL)
        try? FileManager.default.removeItem(atPath: logPath)
    }

    /// Kills the proxy and waits until it has exited: its port refuses connections from then on.
    func stopped() async {
        stop()
        _ = await child.finish()
    }
}

import ChunkStore
import Compute
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import Agent

/// A temporary folder for one test: its bundle folder (scripts) and the supervisor's data folder.
struct Sandbox {
    let root: String
    var bundle: String { root + "/bundle" }
    var data: String { root + "/data" }

    init() throws {
        root = FileManager.default.temporaryDirectory.path + "/a67-agent-" + UUID().uuidString.prefix(8).lowercased()
        for folder in [root, root + "/bundle", root + "/data"] {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            // Reachable by the unprivileged user instances run as when the tests run as root.
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: folder)
        }
    }

    /// Writes `text` to bundle/NAME (executable).
    func script(_ name: String, _ text: String) throws {
        let path = bundle + "/" + name
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path)
    }

    func read(_ name: String) -> String? { try? String(contentsOfFile: bundle + "/" + name, encoding: .utf8) }

    func spec(_ id: String, _ command: [String], health: HealthCheck = HealthCheck(), environment: [String: String] = [:],
              resources: Resources = AppManifest.defaultResources, stopGrace: Duration = .milliseconds(300)) -> InstanceSpec {
        InstanceSpec(allocationID: id, app: "web", version: 1,
                     manifest: AppManifest(name: "web", command: command, environment: environment, health: health,
                                           resources: resources, stopGrace: stopGrace),
                     directory: bundle)
    }

    /// Removes the folder, after killing whatever still runs in it: instances a failed test left
    /// behind (they run in their own sessions, so the test process's end would not take them along).
    func remove() {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(name),
                  let cwd = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(name)/cwd"),
                  cwd.hasPrefix(root) else { continue }
            kill(pid, SIGKILL)
        }
        try? FileManager.default.removeItem(atPath: root)
    }
}

/// Options for fast tests: short polls and waits, the agent's own user, no cgroups, a port range of
/// the test's own (so that tests running at once do not race for the same free port).
func fastOptions(ports: ClosedRange<Int>, runAs: RunAs = .agent, cgroups: CgroupHierarchy? = CgroupHierarchy.none,
                 logLimit: Int = 512 << 10) -> Supervisor.Options {
    Supervisor.Options(portRange: ports, backoff: RestartBackoff(base: .milliseconds(50), cap: .milliseconds(400), resetAfter: .seconds(60)),
                       pollInterval: .milliseconds(20), logLimitBytes: logLimit, runAs: runAs, cgroups: cgroups)
}

/// Waits until `condition` holds, looking every 20 ms, for at most `seconds`: a wait for an event,
/// not a timing assertion (the limit only keeps a broken feature from hanging the suite; it is
/// generous because the whole suite runs in parallel on two cores, where a child may take seconds).
func eventually(_ what: Comment, seconds: Double = 120, _ condition: () async throws -> Bool) async rethrows {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try? await Task.sleep(for: .milliseconds(20))
    }
    Issue.record("never happened: \(what)")
}

extension Supervisor {
    func report(_ id: String) -> InstanceReport? { reports().first { $0.allocationID == id } }
}

/// A small HTTP server in Python: answers /health with the status in the file `status` (200 when
/// there is none), anything else with 200 and GREETING; writes its port, cwd and GREETING to `started`.
let pythonServer = """
import http.server, os, socketserver
port = int(os.environ["PORT"])
with open("started", "w") as f:
    f.write("%d %s %s" % (port, os.getcwd(), os.environ.get("GREETING", "")))
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        status = 200
        if self.path == "/health" and os.path.exists("status"):
            status = int(open("status").read())
        body = os.environ.get("GREETING", "").encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
socketserver.TCPServer.allow_reuse_address = True
with socketserver.TCPServer(("127.0.0.1", port), Handler) as server:
    server.serve_forever()
"""

/// The uid of process `pid` (its real uid, from /proc/PID/status).
func uid(of pid: Int32) -> UInt32? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Uid:") }) else { return nil }
    return line.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().first.flatMap { UInt32($0) }
}

import ChunkStore
import Compute
import Controller
import Foundation
import Orchestrator
import Replicator

/// The demo app of `a67 up --serve`: a small Python web page, written to HOME/demo-app and deployed
/// like any app (its folder stored as a bundle, its instance placed on the local node and reached
/// through the proxy). Deployed once: a later run finds it deployed and leaves it as the user left it
/// (scaled, stopped, removed and deployed again).
enum DemoApp {
    static let name = "hello"

    static let files: [(name: String, text: String)] = [
        ("a67app.toml", """
            # The demo app of a67 up --serve. Change server.py, then: a67 app deploy \(folderPlaceholder)
            name = "\(name)"
            command = ["python3", "server.py"]
            instances = 1

            [health]
            http = "/health"
            interval = "1s"

            [resources]
            memory = "64M"
            cpu = 0.1

            """),
        ("server.py", """
            \"\"\"The demo app of a67 up --serve: a page on $PORT that says where it runs, and /health.\"\"\"
            import os
            import socket
            from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


            class Handler(BaseHTTPRequestHandler):
                def do_GET(self):
                    if self.path == "/health":
                        body = b"ok\\n"
                    else:
                        body = (f"Hello from Automator67: app hello runs on "
                                f"{socket.gethostname()}, port {os.environ['PORT']}, from a bundle in the store.\\n").encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain; charset=utf-8")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

                def log_message(self, format, *args):
                    print(self.command, self.path, flush=True)


            ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()

            """),
    ]
    static let folderPlaceholder = "FOLDER"

    /// Where the demo app's folder goes.
    static func folder(home: String) -> String { home + "/demo-app" }

    /// Writes the demo app's folder and deploys it, unless app `hello` has a version already (then
    /// nil). The version deployed otherwise.
    static func deployIfNew(home: String, repository: Repository) async throws -> Int? {
        let store = ControllerStore(catalog: repository.catalog)
        if let versions = try? store.versions(app: name), !versions.isEmpty { return nil }  // (it throws for no such app)
        let folder = folder(home: home)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for file in files {
            let text = file.text.replacingOccurrences(of: folderPlaceholder, with: folder)
            try LocalFile.write(Array(text.utf8), to: folder + "/" + file.name, mode: 0o644)
        }
        let stored = try await AppBundles.store(folder: folder, repository: repository)
        _ = try store.deploy(app: name, version: stored.version, now: Catalog.now())
        return stored.version
    }

    /// Whether python3, which the demo app runs, is on PATH.
    static func runtimeInstalled() -> Bool {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        return path.split(separator: ":").contains { FileManager.default.isExecutableFile(atPath: "\($0)/python3") }
    }
}

import AsyncHTTPClient
import BackendTesting
import ChunkStore
import Compute
import Foundation
import NIOCore
import NIOHTTP1
import Replicator
import Server
@testable import AppProxy

/// A test app instance: Python's http.server on 127.0.0.1 (a port of its own choosing, printed
/// first), answering with its version. Routes: /health; /hold/NAME (5 bytes, then 5 more once
/// /release/NAME is asked; chunked); /download/SIZE (1 MiB, then the rest once /release/download is asked);
/// PUT /upload (counts and hashes the body as it arrives); /progress/N (answers once N bytes of
/// uploads arrived); /silent/NAME (answers only once /release/NAME is asked); /vanish (closes the connection without an answer; /vanished says how often);
/// /cut (a head announcing 10 bytes, then the connection closed without them);
/// HEAD (Content-Length 42, no body); anything else echoes method, path, headers and body length as JSON.
final class Backend: Sendable {
    static let script = #"""
import hashlib, json, sys, threading
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
VERSION = sys.argv[1]
events, lock, received, progress, vanished = {}, threading.Lock(), [0], threading.Condition(), [0]
def event(name):
    with lock:
        return events.setdefault(name, threading.Event())
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args): pass
    def answer(self, status, body, kind="text/plain"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Version", VERSION)
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        path = self.path
        if path == "/health": return self.answer(200, "ok")
        if path == "/vanished": return self.answer(200, str(vanished[0]))
        if path == "/vanish":
            with lock:
                vanished[0] += 1
            self.close_connection = True
            return
        if path == "/cut":
            self.send_response(200)
            self.send_header("Content-Length", "10")
            self.end_headers()
            self.wfile.flush()
            self.close_connection = True
            return
        if path.startswith("/release/"):
            event(path[9:]).set()
            return self.answer(200, "released")
        if path.startswith("/progress/"):
            with progress:
                ok = progress.wait_for(lambda: received[0] >= int(path[10:]), 60)
            return self.answer(200 if ok else 504, str(received[0]))
        if path.startswith("/silent/"):
            event(path[8:]).wait(60)
            return self.answer(200, "late")
        if path.startswith("/hold/"):  # chunked: its end reaches the client only when the proxy ends it
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"5\r\nfirst\r\n")
            self.wfile.flush()
            self.wfile.write(b"5\r\n-last\r\n0\r\n\r\n" if event(path[6:]).wait(60) else b"5\r\n-none\r\n0\r\n\r\n")
            return
        if path.startswith("/download/"):
            size, block, sent = int(path[10:]), bytes(range(256)) * 4096, 0
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            while sent < size:
                count = min(len(block), size - sent)
                self.wfile.write(block[:count])
                if sent == 0:
                    self.wfile.flush()
                    if not event("download").wait(60): return
                sent += count
            return
        self.echo()
    def echo(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.answer(200, json.dumps({"version": VERSION, "method": self.command, "path": self.path, "body": len(body),
                                     "headers": {k.lower(): v for k, v in self.headers.items()}}), "application/json")
    def do_PUT(self):
        if self.path != "/upload": return self.echo()
        left, digest, count = int(self.headers["Content-Length"]), hashlib.sha256(), 0
        while left > 0:
            piece = self.rfile.read(min(left, 65536))
            if not piece: break
            left -= len(piece); count += len(piece); digest.update(piece)
            with progress:
                received[0] += len(piece)
                progress.notify_all()
        self.answer(200, "%d %s" % (count, digest.hexdigest()))
    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Length", "42")
        self.end_headers()
    do_POST = do_DELETE = do_OPTIONS = do_PATCH = do_PROPFIND = echo
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
"""#

    let child: ChildProcess
    let port: Int
    let version: String

    private init(child: ChildProcess, port: Int, version: String) {
        self.child = child
        self.port = port
        self.version = version
    }

    /// Starts an instance answering with `version`; its script lives in `folder`.
    static func start(_ version: String, in folder: String) async throws -> Backend {
        let path = folder + "/backend.py"
        if !FileManager.default.fileExists(atPath: path) { try script.write(toFile: path, atomically: true, encoding: .utf8) }
        let child = try ChildProcess("/usr/bin/env", ["python3", path, version], stdout: .lines, stderr: .inherit)
        let line = await child.readLine()
        guard let port = Int(line) else { throw ProxyTestError("backend \(version) did not start: \(line)") }
        return Backend(child: child, port: port, version: version)
    }

    /// Where the proxy finds it, as the controller would publish it.
    func endpoint(_ app: String = "web") -> AppEndpoint {
        AppEndpoint(allocationID: "alloc-\(version)", app: app, host: "127.0.0.1", port: port)
    }

    func stop() async {
        child.signal(SIGKILL)  // not SIGTERM: the server's signal handling leaves it ignored in children
        _ = await child.finish()
    }
}

struct ProxyTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A real `a67 serve` (BlobServer on a port of its own, a repository in a temporary folder) with the
/// proxy attached, a route table the test fills as the controller would, and an HTTP client.
struct ProxyHarness: Sendable {
    let folder: TemporaryDirectory
    let server: BlobServer
    let routes: AppRouteTable
    let proxy: AppProxy
    let port: Int
    let client: HTTPClient
    let serving: Task<Void, any Error>

    static func start(_ settings: AppProxy.Settings = AppProxy.Settings()) async throws -> ProxyHarness {
        let folder = try TemporaryDirectory()
        var repositorySettings = Repository.Settings()
        repositorySettings.scryptLogN = 10
        let repository = try Repository.initialize(home: folder.path + "/home", backends: DirectoryBackendFactory(),
                                                   passphrase: Passphrase("p"), settings: repositorySettings)
        var serverSettings = BlobServer.Settings()
        serverSettings.port = 0
        let server = BlobServer(repository: repository, settings: serverSettings)
        let routes = AppRouteTable()
        let proxy = AppProxy(routes: routes, settings: settings)
        let (addresses, ready) = AsyncStream.makeStream(of: String.self)
        let serving = Task {
            defer { ready.finish() }
            try await server.run(modules: [ControlAPI(server: server)], fronts: [proxy], services: [proxy]) { ready.yield($0) }
        }
        var port: Int?
        for await address in addresses {
            port = address.split(separator: ":").last.flatMap { Int($0) }
            break
        }
        guard let port else {
            try await serving.value
            throw ProxyTestError("the server did not start")
        }
        return ProxyHarness(folder: folder, server: server, routes: routes, proxy: proxy, port: port,
                            client: HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: .init(redirectConfiguration: .disallow)),
                            serving: serving)
    }

    func stop() async {
        try? await client.shutdown()
        serving.cancel()
        _ = try? await serving.value
    }

    /// A request to the server, its answer's head (the body left to stream).
    func send(_ path: String, host: String? = nil, method: HTTPMethod = .GET, headers: [(String, String)] = [],
              body: HTTPClientRequest.Body? = nil) async throws -> HTTPClientResponse {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.method = method
        if let host { request.headers.add(name: "Host", value: host) }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = body
        return try await client.execute(request, timeout: .seconds(60))
    }

    /// A request and its whole (small) answer.
    func fetch(_ path: String, host: String? = nil, method: HTTPMethod = .GET, headers: [(String, String)] = [],
               body: String? = nil) async throws -> (status: Int, headers: HTTPHeaders, text: String) {
        let response = try await send(path, host: host, method: method, headers: headers,
                                      body: body.map { .bytes(ByteBuffer(string: $0)) })
        let text = String(buffer: try await response.body.collect(upTo: 1 << 20))
        return (Int(response.status.code), response.headers, text)
    }

    /// A request straight to an instance (not through the proxy).
    func direct(_ backend: Backend, _ path: String) async throws -> String {
        let response = try await client.execute(HTTPClientRequest(url: "http://127.0.0.1:\(backend.port)\(path)"), timeout: .seconds(90))
        return String(buffer: try await response.body.collect(upTo: 1 << 20))
    }
}

/// The JSON an echoing instance answers.
struct Echo: Decodable {
    let version: String
    let method: String
    let path: String
    let body: Int
    let headers: [String: String]

    init(_ text: String) throws { self = try JSONDecoder().decode(Echo.self, from: Data(text.utf8)) }
}

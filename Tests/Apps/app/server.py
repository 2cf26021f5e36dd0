"""The test app: a small HTTP server on $PORT that says who it is.

GET /         "VERSION GREETING INSTANCE" (VERSION from version.txt beside this file)
GET /health   200, or 500 when the file `unhealthy` sits beside this file (a bad version)
GET /slow?ms=&mark= answers after that many milliseconds (to hold a request in flight); writes its
              instance's name into the file `mark` when the request arrives
POST /echo    echoes the request body
"""
import http.server
import os
import pathlib
import socketserver
import time
import urllib.parse

HERE = pathlib.Path(__file__).resolve().parent
VERSION = (HERE / "version.txt").read_text().strip()
INSTANCE = os.environ.get("A67_ALLOCATION", str(os.getpid()))


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        print("%s %s" % (self.command, self.path), flush=True)

    def reply(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        if url.path == "/health":
            healthy = not (HERE / "unhealthy").exists()
            self.reply(200 if healthy else 500, b"ok\n" if healthy else b"unhealthy\n")
        elif url.path == "/slow":
            query = urllib.parse.parse_qs(url.query)
            ms = int(query.get("ms", ["500"])[0])
            if "mark" in query:  # says it arrived, and where: the file gets this instance's name
                pathlib.Path(query["mark"][0]).write_text(INSTANCE)
            time.sleep(ms / 1000)
            self.reply(200, ("%s slow\n" % VERSION).encode())
        else:
            self.reply(200, ("%s %s %s %s\n" % (VERSION, os.environ.get("GREETING", ""), INSTANCE, url.path)).encode())

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        self.reply(200, self.rfile.read(length))


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


if __name__ == "__main__":
    print("test app %s on port %s" % (VERSION, os.environ["PORT"]), flush=True)
    Server(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()

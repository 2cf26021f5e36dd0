#!/usr/bin/env python3
"""An HTTP/1.1 reverse proxy that injects faults between an S3 (or WebDAV) client and a real server.

  python3 faultproxy.py --upstream 127.0.0.1:PORT --mode MODE --log LOGFILE

Binds 127.0.0.1 on a free port, prints that port and a newline to stdout, then serves until it is
killed. Requests go upstream unchanged (request line, headers including Host, body), responses come
back with keep-alive on both sides; a chunked upstream response is sent on with a Content-Length.
Every request appends `METHOD TARGET STATUS` to LOGFILE (TARGET as the client sent it, query
included; STATUS is what the client was sent, or DROP / STALL / TRUNC).

Modes (counts are across all connections, from 1):
  pass                forward everything
  fail-every-third    requests 3, 6, 9, ... get 500 with an S3 InternalError body (not forwarded)
  drop-upload-once    the first PUT: read about half its body, then reset the connection
  drop-upload-always  every PUT is dropped that way
  stall               read each request, then send nothing and keep the connection open
  trickle             forward, then send the whole response (status line, headers, body) at 1 byte/s
  trickle-body        forward, send the status line and headers at once, then the body at 1 byte/s
  truncate-get-once   the first 200 GET of an object (no query string, so not a listing) with a
                      body: full headers and Content-Length, half the body, then close
  replay-get          remember the first non-empty 200 body of a GET without a query string; every
                      later such GET of another path gets that body instead (its own Content-Length);
                      listings (GETs with a query string) pass unchanged
  status-403          every request gets 403 SignatureDoesNotMatch (not forwarded)
  status-429-once     the first request gets 429 with Retry-After: 1; later ones are forwarded
  no-accept           not a proxy: a listening socket whose accept queue is kept full, so that
                      connects hang in SYN (for connect time-outs); --upstream is not needed
Standard library only.
"""

import argparse
import os
import socket
import struct
import sys
import threading
import time

MODES = ("pass", "fail-every-third", "drop-upload-once", "drop-upload-always", "stall", "trickle",
         "trickle-body", "truncate-get-once", "replay-get", "status-403", "status-429-once",
         "no-accept")
MAX_HEAD = 64 * 1024


class ClientGone(Exception):
    pass


class Upstream:
    def __init__(self, address):
        self.sock = socket.create_connection(address, timeout=300)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb")

    def close(self):
        for thing in (self.reader, self.sock):
            try:
                thing.close()
            except OSError:
                pass


class Proxy:
    def __init__(self, upstream, mode, log_path):
        host, _, port = upstream.rpartition(":")
        self.upstream = (host or "127.0.0.1", int(port))
        self.mode = mode
        self.lock = threading.Lock()
        self.count = 0
        self.once_used = False
        self.replay = None  # (path, body)
        self.log_file = open(log_path, "a", buffering=1)

    # ------------------------------------------------------------ bookkeeping

    def log(self, method, target, status):
        with self.lock:
            self.log_file.write(f"{method} {target} {status}\n")
            self.log_file.flush()

    def next_number(self):
        with self.lock:
            self.count += 1
            return self.count

    def take_once(self):
        """True for the first caller only."""
        with self.lock:
            if self.once_used:
                return False
            self.once_used = True
            return True

    # ------------------------------------------------------------ connections

    def serve_client(self, conn):
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = conn.makefile("rb")
        upstream = None
        try:
            while True:
                request = read_request(reader)
                if request is None:
                    return
                method, target, version, headers, raw_head = request
                if header(headers, "expect", "").lower() == "100-continue":
                    conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                keep_open = wants_keep_alive(version, headers)
                number = self.next_number()
                mode = self.mode

                if method == "PUT" and (mode == "drop-upload-always" or
                                        (mode == "drop-upload-once" and self.take_once())):
                    read_half_body(reader, headers)
                    self.log(method, target, "DROP")
                    reset(conn)
                    return

                body = read_body(reader, headers)

                if mode == "stall":
                    self.log(method, target, "STALL")
                    # keep the connection open, answer nothing; end when the client goes away
                    while conn.recv(65536):
                        pass
                    return
                if mode == "status-403":
                    self.send_error(conn, method, target, 403, "Forbidden", "SignatureDoesNotMatch",
                                    "The request signature we calculated does not match the "
                                    "signature you provided. Check your key and signing method.")
                    if not keep_open:
                        return
                    continue
                if mode == "fail-every-third" and number % 3 == 0:
                    self.send_error(conn, method, target, 500, "Internal Server Error",
                                    "InternalError",
                                    "We encountered an internal error. Please try again.")
                    if not keep_open:
                        return
                    continue
                if mode == "status-429-once" and self.take_once():
                    self.send_error(conn, method, target, 429, "Too Many Requests",
                                    "SlowDown", "Please reduce your request rate.",
                                    extra=[("Retry-After", "1")])
                    if not keep_open:
                        return
                    continue

                try:
                    upstream, response = self.forward(upstream, method, raw_head, body)
                except OSError as e:
                    if upstream is not None:
                        upstream.close()
                        upstream = None
                    self.send_error(conn, method, target, 502, "Bad Gateway", "BadGateway",
                                    f"faultproxy could not reach the upstream: {e}")
                    if not keep_open:
                        return
                    continue
                status_line, resp_headers, resp_body, upstream_closes = response
                if upstream_closes:
                    upstream.close()
                    upstream = None
                status = int(status_line.split(b" ", 2)[1])
                no_body = method == "HEAD" or status in (204, 304)

                if (mode == "truncate-get-once" and method == "GET" and status == 200
                        and "?" not in target and resp_body and self.take_once()):
                    head = build_head(status_line, resp_headers, len(resp_body), no_body)
                    conn.sendall(head + resp_body[:len(resp_body) // 2])
                    self.log(method, target, "TRUNC")
                    conn.shutdown(socket.SHUT_RDWR)
                    return

                if mode == "replay-get" and method == "GET" and status == 200 and "?" not in target:
                    with self.lock:
                        if self.replay is None and resp_body:
                            self.replay = (target, resp_body)
                        elif self.replay is not None and self.replay[0] != target:
                            resp_body = self.replay[1]

                head = build_head(status_line, resp_headers, len(resp_body), no_body)
                self.log(method, target, status)
                if mode == "trickle":
                    trickle(conn, head + (b"" if no_body else resp_body))
                elif mode == "trickle-body":
                    conn.sendall(head)
                    if not no_body:
                        trickle(conn, resp_body)
                else:
                    conn.sendall(head + (b"" if no_body else resp_body))
                if not keep_open or connection_close(resp_headers):
                    return
        except (OSError, ClientGone, ValueError):
            return
        finally:
            if upstream is not None:
                upstream.close()
            try:
                reader.close()
                conn.close()
            except OSError:
                pass

    def forward(self, upstream, method, raw_head, body):
        """Sends the request upstream (reconnecting once if a kept-alive connection went stale)
        and returns (connection, (status line, headers, body, upstream closes))."""
        for attempt in (1, 2):
            fresh = upstream is None
            if fresh:
                upstream = Upstream(self.upstream)
            try:
                upstream.sock.sendall(raw_head + body)
                return upstream, read_response(upstream.reader, method)
            except (OSError, ClientGone):
                upstream.close()
                upstream = None
                if fresh or attempt == 2:
                    raise OSError("upstream closed the connection")
        raise AssertionError("unreachable")

    def send_error(self, conn, method, target, status, reason, code, message, extra=()):
        resource = target.split("?", 1)[0]
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                f"<Error><Code>{code}</Code><Message>{message}</Message>"
                f"<Resource>{xml_escape(resource)}</Resource>"
                f"<RequestId>faultproxy-{self.count}</RequestId></Error>").encode()
        lines = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/xml",
                 f"Content-Length: {0 if method == 'HEAD' else len(body)}"]
        lines += [f"{k}: {v}" for k, v in extra]
        self.log(method, target, status)
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + (b"" if method == "HEAD" else body))


# ---------------------------------------------------------------- HTTP parsing

def read_line(reader):
    line = reader.readline(MAX_HEAD + 1)
    if len(line) > MAX_HEAD:
        raise ValueError("header line too long")
    return line


def read_headers(reader):
    raw, headers = [], []
    while True:
        line = read_line(reader)
        if not line:
            raise ClientGone()
        raw.append(line)
        if line in (b"\r\n", b"\n"):
            return headers, b"".join(raw)
        name, _, value = line.decode("latin-1").partition(":")
        headers.append((name.strip(), value.strip()))


def read_request(reader):
    """(method, target, version, headers, raw head bytes), or None when the client closed."""
    line = read_line(reader)
    while line in (b"\r\n", b"\n"):  # tolerate stray blank lines between requests
        line = read_line(reader)
    if not line:
        return None
    parts = line.decode("latin-1").split()
    if len(parts) != 3:
        raise ValueError(f"bad request line {line!r}")
    headers, raw = read_headers(reader)
    return parts[0], parts[1], parts[2], headers, line + raw


def header(headers, name, default=None):
    for k, v in headers:
        if k.lower() == name:
            return v
    return default


def is_chunked(headers):
    return "chunked" in header(headers, "transfer-encoding", "").lower()


def wants_keep_alive(version, headers):
    value = header(headers, "connection", "").lower()
    if version == "HTTP/1.0":
        return "keep-alive" in value
    return "close" not in value


def connection_close(headers):
    return "close" in header(headers, "connection", "").lower()


def read_exact(reader, n):
    data = reader.read(n)
    if len(data) != n:
        raise ClientGone()
    return data


def read_chunked(reader, raw):
    """Reads a chunked body; returns the raw bytes (raw=True) or the de-chunked data."""
    out = []
    while True:
        size_line = read_line(reader)
        if not size_line:
            raise ClientGone()
        size = int(size_line.split(b";")[0].strip(), 16)
        if raw:
            out.append(size_line)
        if size == 0:
            while True:  # trailers, up to the blank line
                trailer = read_line(reader)
                if not trailer:
                    raise ClientGone()
                if raw:
                    out.append(trailer)
                if trailer in (b"\r\n", b"\n"):
                    return b"".join(out)
        chunk = read_exact(reader, size + 2)
        out.append(chunk if raw else chunk[:size])


def read_body(reader, headers):
    if is_chunked(headers):
        return read_chunked(reader, raw=True)
    length = int(header(headers, "content-length", "0") or 0)
    return read_exact(reader, length) if length else b""


def read_half_body(reader, headers):
    if is_chunked(headers):
        reader.read1(65536)
        return
    length = int(header(headers, "content-length", "0") or 0)
    if length:
        read_exact(reader, max(1, length // 2))


def read_response(reader, method):
    """(status line, headers, de-chunked body, whether the upstream closes the connection)."""
    while True:
        status_line = read_line(reader)
        if not status_line:
            raise ClientGone()
        headers, _ = read_headers(reader)
        status = int(status_line.split(b" ", 2)[1])
        if status >= 200 or status == 101:
            break  # skip interim 1xx responses (100 Continue)
    closes = connection_close(headers) or status_line.startswith(b"HTTP/1.0")
    if method == "HEAD" or status in (204, 304):
        return status_line, headers, b"", closes
    if is_chunked(headers):
        return status_line, headers, read_chunked(reader, raw=False), closes
    length = header(headers, "content-length")
    if length is not None:
        return status_line, headers, read_exact(reader, int(length)), closes
    return status_line, headers, reader.read(), True  # body ends when the connection does


def build_head(status_line, headers, length, no_body):
    lines = [status_line.rstrip(b"\r\n")]
    for k, v in headers:
        low = k.lower()
        if low == "transfer-encoding":
            continue
        if low == "content-length" and not no_body:
            continue
        lines.append(f"{k}: {v}".encode("latin-1"))
    if not no_body:
        lines.append(f"Content-Length: {length}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n"


def xml_escape(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def trickle(conn, data):
    for i in range(len(data)):
        conn.sendall(data[i:i + 1])
        if i + 1 < len(data):
            time.sleep(1)


def reset(conn):
    """Closes with an RST instead of a FIN: the client sees its connection torn down."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


# ---------------------------------------------------------------- modes that are not a proxy

def no_accept():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    # Linux queues backlog+1 connections; fill the queue with our own connections so that later
    # SYNs are dropped and connects hang (a time-out, not a refusal).
    fillers = []
    for _ in range(4):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        fillers.append(s)
    time.sleep(0.2)
    print(port, flush=True)
    while True:
        time.sleep(3600)


def exit_with_parent():
    """Exits when the test process that started this proxy is gone, however it ended (a crash
    skips its cleanup): an orphaned proxy would hold the test runner's output pipe open forever."""
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def main():
    exit_with_parent()
    parser = argparse.ArgumentParser(description="HTTP/1.1 fault-injecting reverse proxy")
    parser.add_argument("--upstream", help="HOST:PORT of the real server")
    parser.add_argument("--mode", required=True, choices=MODES)
    parser.add_argument("--log", required=True, help="file that gets one line per request")
    args = parser.parse_args()
    if args.mode == "no-accept":
        open(args.log, "a").close()
        no_accept()
        return
    if not args.upstream:
        parser.error("--upstream is needed for this mode")
    proxy = Proxy(args.upstream, args.mode, args.log)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    print(listener.getsockname()[1], flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=proxy.serve_client, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)

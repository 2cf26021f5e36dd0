#!/usr/bin/env python3
"""tools/s3load.py: PUT and GET load on an S3-compatible server, from its own process.

  s3load.py --endpoint http://127.0.0.1:PORT --access-key-file KEY.json --bucket B
            [--op put|get|put,get] [--clients 64] [--size 1MiB] [--rate 300] [--duration 20]
            [--keys-out F] [--keys-from F] [--server-pid PID] [--create-bucket] [--json]
  s3load.py --self-test           checks the SigV4 signer against AWS's published example

KEY.json holds {"accessKeyId": ..., "secretAccessKey": ...}: secrets never go on the command line.

Open loop (--rate N): requests are due at a fixed schedule of N per second, whatever the server
does, and go out over --clients persistent HTTP/1.1 connections (one request in flight on each);
a request waits for a free connection when all are busy. Latency runs from the time a request was
due, not from when it went out, so a server that falls behind is charged for the queue it causes
(no coordinated omission). Closed loop (--rate 0): every connection sends back to back for
--duration seconds: the maximum the server sustains.

Every PUT body is distinct (the server deduplicates identical content): a pool of random bodies is
made once from a seed, and each request stamps its run and sequence number into the first 16 bytes
of every MiB; the bodies go out with sendmsg straight from the pool (no per-request copy in
Python). GET reads keys a PUT phase wrote (the same run with --op put,get, or --keys-from the file
--keys-out wrote), and checks each body byte for byte against the pool (--no-verify skips it).
Requests are signed with SigV4 (header auth, UNSIGNED-PAYLOAD, region us-east-1, path-style).

With --server-pid, the server's VmRSS is sampled every 100 ms from /proc and its maximum reported,
with VmHWM (peak since the server started) at the end.

Exit status: 0; 1 when more than 1% of the requests of any phase failed (or the server could not be
reached at all); 2 on usage errors. Python 3.11 standard library only.
"""
import argparse, hashlib, itertools, json, math, os, random, re, socket, struct, sys, threading, time
import urllib.parse
from datetime import datetime, timezone

UNSIGNED = "UNSIGNED-PAYLOAD"
STAMP = 16                 # bytes stamped into each body at every stamp offset
POOL_BYTES = 256 << 20     # the pool of bodies holds at most this much
MAX_FAILED = 0.01          # more failed requests than this fraction of a phase: exit 1


# ---------------------------------------------------------------- SigV4

# The signer is tools/sigv4.py (beside this file), shared with tools/servers and the S3 client suite.
from sigv4 import Signer, uri_encode  # noqa: E402  (bench.py uses s3load.Signer)
import sigv4  # noqa: E402


def self_test():
    """The GET Object example of AWS's SigV4 documentation for S3 (header authorization)."""
    passed, got, want = sigv4.self_test()
    if not passed:
        print(f"SigV4 self-test FAILED:\n  got  {got}\n  want {want}", file=sys.stderr)
        return 1
    print("SigV4 self-test passed (AWS's GET Object example)")
    return 0


# ---------------------------------------------------------------- HTTP/1.1 on a raw socket

class HTTPError(Exception):
    pass


class Connection:
    """One persistent HTTP/1.1 connection; request() sends a head and body parts with sendmsg and reads
    the response body into a caller's buffer when it fits (recv_into: no copy), else into bytes."""

    def __init__(self, host, port, timeout):
        self.host, self.port, self.timeout = host, port, timeout
        self.sock = None
        self.pending = bytearray()  # bytes received beyond the last response (none, normally)
        self.reconnects = -1         # the first connect is not a reconnect

    def connect(self):
        self.close()
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.pending = sock, bytearray()
        self.reconnects += 1

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def request(self, head, parts=(), sink=None, expect_body=True):
        """Returns (status, body length, body bytes or None when it went into sink). Retries once on a
        new connection when a reused one fails before any byte of the response arrived."""
        reused = self.sock is not None
        if not reused:
            self.connect()
        try:
            self._send([head, *parts])
            got = self._head()
        except (OSError, HTTPError) as e:
            # a timeout is not retried; nor is a failure after part of the response arrived
            if not reused or isinstance(e, TimeoutError) or getattr(e, "partial", False):
                self.close()
                raise
            self.connect()
            self._send([head, *parts])
            got = self._head()
        try:
            status, length, chunked, close = got
            if not expect_body or status in (204, 304) or 100 <= status < 200:
                length = 0
            if chunked:
                body = self._chunked()
                length, data = len(body), bytes(body)
            elif length is None:  # no length and not chunked: the body runs to the end of the connection
                data = self._to_end()
                length, close = len(data), True
            elif sink is not None and length <= len(sink):
                self._read_into(memoryview(sink)[:length])
                data = None
            else:
                data = self._read(length)
            if close:
                self.close()
            return status, length, data
        except BaseException:
            self.close()
            raise

    def _send(self, parts):
        views = [memoryview(p) for p in parts if len(p)]
        while views:
            n = self.sock.sendmsg(views)
            while n:
                if n >= len(views[0]):
                    n -= len(views[0])
                    views.pop(0)
                else:
                    views[0] = views[0][n:]
                    n = 0

    def _fill(self):
        try:
            chunk = self.sock.recv(65536)
        except OSError as e:
            e.partial = bool(self.pending)
            raise
        if not chunk:
            e = HTTPError("the server closed the connection")
            e.partial = bool(self.pending)
            raise e
        self.pending += chunk

    def _head(self):
        while True:
            while (end := self.pending.find(b"\r\n\r\n")) < 0:
                self._fill()
                if len(self.pending) > 1 << 20:
                    raise HTTPError("response head over 1 MiB")
            lines = bytes(self.pending[:end]).decode("latin-1").split("\r\n")
            del self.pending[:end + 4]
            m = re.match(r"HTTP/1\.([01]) (\d{3})", lines[0])
            if not m:
                e = HTTPError(f"not an HTTP response: {lines[0][:80]!r}")
                e.partial = True
                raise e
            status = int(m.group(2))
            if 100 <= status < 200 and status != 101:
                continue  # 100 Continue and friends: the real response follows
            length, chunked, close = None, False, m.group(1) == "0"
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name, value = name.strip().lower(), value.strip()
                if name == "content-length":
                    length = int(value)
                elif name == "transfer-encoding" and "chunked" in value.lower():
                    chunked = True
                elif name == "connection":
                    close = "close" in value.lower() if m.group(1) == "1" else "keep-alive" not in value.lower()
            return status, length, chunked, close

    def _read_into(self, view):
        k = min(len(self.pending), len(view))
        if k:
            view[:k] = self.pending[:k]
            del self.pending[:k]
        while k < len(view):
            n = self.sock.recv_into(view[k:])
            if not n:
                raise HTTPError("the server closed the connection in the middle of a body")
            k += n

    def _read(self, n):
        out = bytearray(n)
        self._read_into(memoryview(out))
        return bytes(out)

    def _line(self):
        while (end := self.pending.find(b"\r\n")) < 0:
            self._fill()
        line = bytes(self.pending[:end])
        del self.pending[:end + 2]
        return line

    def _chunked(self):
        body = bytearray()
        while True:
            size = int(self._line().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self._line():  # trailers, then the empty line
                    pass
                return body
            body += self._read(size)
            self._line()

    def _to_end(self):
        data = bytes(self.pending)
        self.pending = bytearray()
        while chunk := self.sock.recv(65536):
            data += chunk
        return data


# ---------------------------------------------------------------- bodies

def parse_size(text):
    m = re.fullmatch(r"\s*(\d+)\s*([KMG]?)(i?B)?\s*", text, re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"cannot read {text!r} as a size: write 4KiB, 1MiB or 1048576")
    unit = m.group(2).upper()
    base = 1000 if (m.group(3) or "").lower() == "b" and unit else 1024
    return int(m.group(1)) * base ** " KMG".index(unit or " ")


class Bodies:
    """A pool of random bodies made from a seed (so that a later process can check what a GET returns),
    and the stamp that makes request i's body distinct: its run and sequence number, written over the
    first STAMP bytes of every `stride` bytes of pool body i % len(pool)."""

    def __init__(self, size, seed, pool):
        self.size, self.seed = size, seed
        count = max(1, min(pool, POOL_BYTES // max(size, 1)))
        rng = random.Random(seed)
        self.pool = [rng.randbytes(size) for _ in range(count)]
        # at most 256 stamps a body (sendmsg takes up to 1024 parts), one a MiB for smaller ones
        self.stride = max(1 << 20, -(-size // 256))
        self.offsets = [o for o in range(0, size, self.stride) if o + STAMP <= size]

    def stamp(self, run, i):
        return struct.pack(">QQ", run, i)

    def parts(self, run, i):
        """The body of request i as buffers for sendmsg, none of them a copy of the pool."""
        body = memoryview(self.pool[i % len(self.pool)])
        if not self.offsets:
            return [body]
        stamp = self.stamp(run, i)
        parts, at = [], 0
        for offset in self.offsets:
            parts += [body[at:offset], stamp]
            at = offset + STAMP
        parts.append(body[at:])
        return [p for p in parts if len(p)]

    def matches(self, buf, run, i):
        """Whether buf (a bytearray of exactly self.size bytes) is request i's body. Overwrites the
        stamps in buf with the pool's bytes, then compares with one memcmp (bytearray == bytes)."""
        body = self.pool[i % len(self.pool)]
        stamp = self.stamp(run, i)
        for offset in self.offsets:
            if buf[offset:offset + STAMP] != stamp:
                return False
            buf[offset:offset + STAMP] = body[offset:offset + STAMP]
        return buf == body


# ---------------------------------------------------------------- load

class Target:
    def __init__(self, endpoint, bucket, signer, timeout):
        url = urllib.parse.urlsplit(endpoint)
        if url.scheme != "http" or not url.hostname:
            raise SystemExit(f"s3load: --endpoint must be http://HOST:PORT (got {endpoint!r})")
        self.host, self.port = url.hostname, url.port or 80
        self.netloc = url.netloc
        self.base = url.path.rstrip("/")
        self.bucket, self.signer, self.timeout = bucket, signer, timeout
        self._date_second, self._amz_date = None, None

    def amz_date(self):
        second = int(time.time())
        if second != self._date_second:  # a benign race: both threads compute the same text
            self._amz_date = datetime.fromtimestamp(second, timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            self._date_second = second
        return self._amz_date

    def head(self, method, key, length=None):
        path = f"{self.base}/{self.bucket}" + (f"/{key}" if key else "")
        amz_date = self.amz_date()
        headers = {"host": self.netloc, "x-amz-content-sha256": UNSIGNED, "x-amz-date": amz_date}
        target = uri_encode(path, True)
        auth = self.signer.authorization(method, target, [], headers, UNSIGNED, amz_date)
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.netloc}",
                 f"x-amz-content-sha256: {UNSIGNED}", f"x-amz-date: {amz_date}", f"Authorization: {auth}"]
        if length is not None:
            lines += [f"Content-Length: {length}", "Content-Type: application/octet-stream"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def connection(self):
        return Connection(self.host, self.port, self.timeout)


def percentile(ordered, fraction):
    """Nearest rank: the smallest value at or above `fraction` of the sorted values."""
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, math.ceil(round(fraction * len(ordered), 6)) - 1))]


class RSSSampler(threading.Thread):
    def __init__(self, pid, every=0.1):
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.max_rss_kb, self.hwm_kb, self.samples, self.gone = 0, 0, 0, False
        self.halt = threading.Event()

    def read(self):
        try:
            with open(f"/proc/{self.pid}/status") as f:
                text = f.read()
        except OSError:
            self.gone = True
            return
        for line in text.splitlines():
            if line.startswith("VmRSS:"):
                self.max_rss_kb = max(self.max_rss_kb, int(line.split()[1]))
                self.samples += 1
            elif line.startswith("VmHWM:"):
                self.hwm_kb = max(self.hwm_kb, int(line.split()[1]))

    def run(self):
        while not self.halt.is_set() and not self.gone:
            self.read()
            self.halt.wait(self.every)

    def stop(self):
        self.halt.set()
        self.join()
        if not self.gone:
            self.read()
        return {"pid": self.pid, "maxRSSMB": round(self.max_rss_kb / 1024, 1), "hwmMB": round(self.hwm_kb / 1024, 1),
                "samples": self.samples, "exited": self.gone}


def phase(target, connections, bodies, op, run, keys, rate, duration, deadline, verify):
    """One phase: op "put" (keys = sequence numbers written go into `keys`) or "get" (reads `keys`).
    Returns its report."""
    clients = len(connections)
    total = round(rate * duration) if rate else None
    tickets = itertools.count()
    ready = threading.Barrier(clients + 1)
    start = {}
    per_worker = []
    if op == "get" and not keys:
        raise SystemExit("s3load: nothing to GET: the PUT phase wrote no key (or --keys-from was empty)")

    def worker(conn, out):
        latencies, lags, statuses, moved, done = [], [], {}, 0, []
        sink = bytearray(bodies.size) if op == "get" else None
        try:
            if conn.sock is None:
                conn.connect()
        except OSError:
            pass  # counted on the first request
        ready.wait()
        t0 = start["t0"]
        finish = t0 + duration
        if t0 > time.monotonic():
            time.sleep(max(0.0, t0 - time.monotonic()))
        while True:
            i = next(tickets)
            if total is not None:
                if i >= total:
                    break
                due = t0 + i / rate
                now = time.monotonic()
                if due > now:
                    time.sleep(due - now)
                    now = time.monotonic()
                if now > deadline:
                    statuses["not sent"] = statuses.get("not sent", 0) + 1
                    continue
            else:
                due = now = time.monotonic()
                if now >= finish:
                    break
            lags.append(now - due)
            if op == "put":
                seq = i
                key = f"{run['prefix']}{seq:08d}"
                head, parts = target.head("PUT", key, bodies.size), bodies.parts(run["id"], seq)
            else:
                seq = keys[i % len(keys)]
                key = f"{run['prefix']}{seq:08d}"
                head, parts = target.head("GET", key), ()
            try:
                status, length, data = conn.request(head, parts, sink=sink, expect_body=True)
            except Exception as e:  # OSError, HTTPError, a malformed response: counted by kind
                name = "timeout" if isinstance(e, TimeoutError) else type(e).__name__
                statuses[name] = statuses.get(name, 0) + 1
                start["last"] = max(start.get("last", 0.0), time.monotonic())
                continue
            end = time.monotonic()
            outcome = str(status)
            if op == "get" and status == 200:
                if length != bodies.size or data is not None:
                    outcome = "wrong length"
                elif verify and not bodies.matches(sink, run["id"], seq):
                    outcome = "wrong body"
            if op == "put" and status == 200:
                done.append(seq)
            if outcome == "200":
                latencies.append(end - due)
                moved += bodies.size
            statuses[outcome] = statuses.get(outcome, 0) + 1
            start["last"] = max(start.get("last", 0.0), end)
        out.update(latencies=latencies, lags=lags, statuses=statuses, moved=moved, done=done)

    threads = []
    for conn in connections:
        out = {}
        per_worker.append(out)
        threads.append(threading.Thread(target=worker, args=(conn, out), daemon=True))
    reconnects0 = sum(max(0, c.reconnects) for c in connections)
    for t in threads:
        t.start()
    cpu0 = os.times()
    start["t0"] = time.monotonic() + 0.05
    ready.wait()
    for t in threads:
        t.join()
    cpu1 = os.times()
    wall = time.monotonic() - start["t0"]
    t0 = start["t0"]
    seconds = max(start.get("last", t0), t0 + 1e-9) - t0
    latencies = sorted(x for w in per_worker for x in w["latencies"])
    lags = sorted(x for w in per_worker for x in w["lags"])
    statuses = {}
    for w in per_worker:
        for k, v in w["statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
    if op == "put":
        keys.extend(sorted(x for w in per_worker for x in w["done"]))
    requests = sum(statuses.values())
    ok = statuses.get("200", 0)
    errors = {k: v for k, v in statuses.items() if k != "200"}
    ms = lambda v: None if v is None else round(v * 1000, 2)
    client_cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return {
        "op": op, "mode": f"open loop at {rate:g} req/s" if rate else "closed loop",
        "rate": rate, "duration": duration, "clients": clients, "size": bodies.size,
        "requests": requests, "ok": ok, "errors": errors, "failedFraction": round((requests - ok) / requests, 5) if requests else 1.0,
        "seconds": round(seconds, 3), "reqPerSec": round(ok / seconds, 1), "MBps": round(sum(w["moved"] for w in per_worker) / seconds / 1e6, 1),
        "latencyMs": {"p50": ms(percentile(latencies, 0.50)), "p90": ms(percentile(latencies, 0.90)),
                      "p99": ms(percentile(latencies, 0.99)), "max": ms(latencies[-1] if latencies else None),
                      "mean": ms(sum(latencies) / len(latencies) if latencies else None)},
        "startLagMs": {"p50": ms(percentile(lags, 0.50)), "p99": ms(percentile(lags, 0.99)), "max": ms(lags[-1] if lags else None)},
        "clientCPUSeconds": round(client_cpu, 2), "clientCPUPercent": round(100 * client_cpu / max(wall, 1e-3), 1),
        "reconnects": sum(max(0, c.reconnects) for c in connections) - reconnects0,
    }


def describe(r, server):
    lat, lag = r["latencyMs"], r["startLagMs"]
    size = r["size"]
    human = f"{size >> 20} MiB" if size >= 1 << 20 and size % (1 << 20) == 0 else (
        f"{size >> 10} KiB" if size % 1024 == 0 and size >= 1024 else f"{size} B")
    errors = ", ".join(f"{v} x {k}" for k, v in sorted(r["errors"].items())) or "none"
    lines = [f"{r['op']} {human}, {r['clients']} clients, {r['mode']} for {r['duration']:g} s: "
             f"{r['requests']} requests, {r['ok']} ok, errors: {errors}",
             f"  achieved {r['reqPerSec']:.1f} req/s, {r['MBps']:.1f} MB/s over {r['seconds']:.1f} s; latency ms "
             f"p50 {lat['p50']} p90 {lat['p90']} p99 {lat['p99']} max {lat['max']} (from the time each was due)",
             f"  start lag ms p50 {lag['p50']} p99 {lag['p99']}; client CPU {r['clientCPUSeconds']:.1f} s "
             f"({r['clientCPUPercent']:.0f}% of one core); reconnects {r['reconnects']}"]
    if server:
        lines.append(f"  server RSS max {server['maxRSSMB']:.0f} MB over {server['samples']} samples, "
                     f"VmHWM {server['hwmMB']:.0f} MB" + (" (the server EXITED)" if server["exited"] else ""))
    return "\n".join(lines)


def create_bucket(target):
    conn = target.connection()
    try:
        status, _, data = conn.request(target.head("PUT", None, 0))
    finally:
        conn.close()
    text = (data or b"").decode("utf-8", "replace")
    if status == 200 or (status == 409 and "BucketAlreadyOwnedByYou" in text):
        return status
    raise SystemExit(f"s3load: creating bucket {target.bucket} failed: HTTP {status} {text[:300]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--self-test", action="store_true", help="check the SigV4 signer against AWS's example and exit")
    parser.add_argument("--endpoint", help="http://HOST:PORT of the S3 server")
    parser.add_argument("--access-key-file", help='JSON file {"accessKeyId": ..., "secretAccessKey": ...}')
    parser.add_argument("--bucket")
    parser.add_argument("--op", default="put,get", help="put, get, or put,get: a PUT phase then a GET phase of its keys (default)")
    parser.add_argument("--clients", type=int, default=64, help="persistent connections (default 64)")
    parser.add_argument("--size", type=parse_size, default=1 << 20, help="body size: 4KiB, 1MiB, ... (default 1MiB)")
    parser.add_argument("--rate", type=float, default=300, help="requests per second due (default 300); 0: closed loop")
    parser.add_argument("--duration", type=float, default=20, help="seconds of each phase (default 20)")
    parser.add_argument("--deadline", type=float, help="seconds after a phase's start past which requests still due "
                        "are not sent and count as failed (default 3 x duration + 30)")
    parser.add_argument("--timeout", type=float, default=60, help="socket timeout per send or receive, seconds (default 60)")
    parser.add_argument("--pool", type=int, default=64, help="distinct random bodies generated up front (default 64, at most 256 MiB)")
    parser.add_argument("--seed", type=int, help="seed of the pool of bodies (default random; --keys-from takes the file's)")
    parser.add_argument("--prefix", help="key prefix (default s3load/RUN/)")
    parser.add_argument("--keys-out", help="after the PUT phase, write the keys it wrote (and the seed) to this file")
    parser.add_argument("--keys-from", help="GET the keys a PUT phase wrote to this file (--keys-out)")
    parser.add_argument("--no-verify", action="store_true", help="do not compare GET bodies with what was put")
    parser.add_argument("--server-pid", type=int, help="sample this process's VmRSS every 100 ms; report the maximum")
    parser.add_argument("--create-bucket", action="store_true", help="create the bucket first (a signed PUT /BUCKET)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args()
    if args.self_test:
        return self_test()
    for name in ("endpoint", "access_key_file", "bucket"):
        if not getattr(args, name):
            parser.error(f"--{name.replace('_', '-')} is needed")
    ops = [o.strip() for o in args.op.split(",")]
    if ops not in (["put"], ["get"], ["put", "get"]):
        parser.error("--op is put, get or put,get")
    if args.clients < 1 or args.rate < 0 or args.duration <= 0 or args.size < STAMP:
        parser.error(f"--clients must be at least 1, --size at least {STAMP} B, --rate at least 0, --duration above 0")
    if ops == ["get"] and not args.keys_from:
        parser.error("--op get needs --keys-from (a file --keys-out of a PUT phase wrote)")
    if args.keys_from and ops != ["get"]:
        parser.error("--keys-from goes with --op get")
    try:
        with open(args.access_key_file) as f:
            credentials = json.load(f)
        signer = Signer(credentials["accessKeyId"], credentials["secretAccessKey"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        parser.error(f"cannot read the key from {args.access_key_file}: {e!r}")

    keys, run = [], {}
    if args.keys_from:
        try:
            with open(args.keys_from) as f:
                saved = json.load(f)
            seed, size, keys, run = saved["seed"], saved["size"], saved["keys"], {"id": saved["run"], "prefix": saved["prefix"]}
        except (OSError, ValueError, KeyError) as e:
            parser.error(f"cannot read the keys from {args.keys_from}: {e!r}")
        if saved["bucket"] != args.bucket:
            parser.error(f"{args.keys_from} lists keys of bucket {saved['bucket']}, not {args.bucket}")
        args.size, args.pool = size, saved["pool"]
    else:
        seed = args.seed if args.seed is not None else random.getrandbits(63)
        run_id = random.getrandbits(63)
        run = {"id": run_id, "prefix": args.prefix if args.prefix is not None else f"s3load/{run_id:016x}/"}

    sys.setswitchinterval(0.001)  # a thread woken by its socket waits less for the GIL
    threading.stack_size(512 << 10)
    target = Target(args.endpoint, args.bucket, signer, args.timeout)
    bodies = Bodies(args.size, seed, args.pool)
    if args.create_bucket:
        create_bucket(target)
    connections = [target.connection() for _ in range(args.clients)]
    report = {"endpoint": args.endpoint, "bucket": args.bucket, "size": args.size, "clients": args.clients,
              "rate": args.rate, "duration": args.duration, "pool": len(bodies.pool), "seed": seed,
              "prefix": run["prefix"], "phases": {}}
    failed = False
    whole = RSSSampler(args.server_pid) if args.server_pid else None
    if whole:
        whole.start()
    try:
        for op in ops:
            sampler = RSSSampler(args.server_pid) if args.server_pid else None
            if sampler:
                sampler.start()
            deadline = time.monotonic() + (args.deadline if args.deadline is not None else 3 * args.duration + 30)
            result = phase(target, connections, bodies, op, run, keys, args.rate, args.duration, deadline,
                           not args.no_verify)
            server = sampler.stop() if sampler else None
            if server:
                result["server"] = server
            report["phases"][op] = result
            failed |= result["failedFraction"] > MAX_FAILED
            if not args.json:
                print(describe(result, server), flush=True)
            if op == "put" and args.keys_out:
                tmp = args.keys_out + ".tmp"
                with open(tmp, "w") as f:
                    json.dump({"bucket": args.bucket, "seed": seed, "size": args.size, "pool": args.pool,
                               "run": run["id"], "prefix": run["prefix"], "keys": keys}, f)
                os.replace(tmp, args.keys_out)
    finally:
        for c in connections:
            c.close()
        if whole:
            report["server"] = whole.stop()
    if args.json:
        print(json.dumps(report, indent=1))
    elif whole:
        s = report["server"]
        print(f"server (pid {s['pid']}): RSS max {s['maxRSSMB']:.0f} MB, VmHWM {s['hwmMB']:.0f} MB")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

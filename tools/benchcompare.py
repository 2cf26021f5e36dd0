"""tools/bench --compare REV: this tree's a67 against the a67 of an earlier commit, measured interleaved
in one run (rounds alternate which binary goes first), so that a restructuring can show it cost
nothing beyond noise on this shared machine. Per round and binary, each on a fresh repository of
directory providers in --dir:

- put and get of one --compare-size random file (one provider, replicas 1), MB/s;
- a67 serve under a closed-loop S3 load of 1 MiB objects (tools/s3load.py, 16 connections,
  --compare-seconds each), PUT then GET, requests/s;
- a67 mount (two providers, replicas 2): fio sequential write of --compare-size, sequential read after
  a remount with the page cache dropped, then 4 KiB random reads for --compare-seconds, MB/s and IOPS.

Then S3 PUT once more, paired (`s3_paired`): both servers up at once, short PUT bursts alternating
between them (A B B A ...), the ratio taken within each pair and the server's CPU time per request
read from /proc. Whole rounds swing by +-30% here; neighbouring bursts share the machine's load.

Reported: the median of each figure per binary and the ratio this tree / REV (above 1 is faster),
every round, and the paired PUT ratios with their median.
"""
import json, os, shutil, statistics, subprocess, sys

import bench  # tools/bench.py: its helpers (run, random_file, FuseDaemon, fio, drop_caches, ...)


def build_base(rev, work):
    """The release a67 of `rev`, built once in a worktree under `work` and kept by commit."""
    sha = subprocess.run(["git", "-C", bench.ROOT, "rev-parse", "--verify", f"{rev}^{{commit}}"], capture_output=True,
                         text=True)
    if sha.returncode != 0:
        raise SystemExit(f"--compare {rev}: not a commit of this repository ({sha.stderr.strip()})")
    sha = sha.stdout.strip()
    tree = os.path.join(work, f"base-{sha[:12]}")
    binary = os.path.join(tree, ".build/release/a67")
    if not os.access(binary, os.X_OK):
        if not os.path.isdir(tree):
            subprocess.run(["git", "-C", bench.ROOT, "worktree", "add", "--detach", tree, sha], check=True,
                           capture_output=True)
        print(f"compare: building a67 of {sha[:12]} (release) in {tree}...", file=sys.stderr)
        p = subprocess.run(["swift", "build", "-c", "release", "--product", "a67"], cwd=tree, capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(f"the release build of {sha[:12]} failed:\n{p.stdout[-3000:]}{p.stderr[-2000:]}")
    return sha, binary


def a67(binary, env, *argv):
    p = subprocess.run([binary, *argv], env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{binary} {' '.join(argv)} failed (exit {p.returncode}):\n{p.stderr}")
    return p.stdout


def repository(binary, place, providers, replicas):
    shutil.rmtree(place, ignore_errors=True)
    os.makedirs(place, mode=0o700)
    passphrase = os.path.join(place, "passphrase")
    bench.write_private(passphrase, "bench passphrase\n")
    env = {k: v for k, v in os.environ.items() if k != "A67_PASSPHRASE"}
    env.update(A67_HOME=os.path.join(place, "home"), A67_PASSPHRASE_FILE=passphrase)
    a67(binary, env, "init")
    for i in range(providers):
        a67(binary, env, "provider", "add", f"p{i}", "--dir", os.path.join(place, f"p{i}"))
    a67(binary, env, "bucket", "create", "bench", "--replicas", str(replicas))
    return env


def put_get(binary, place, source):
    env = repository(binary, place, 1, 1)
    count = os.path.getsize(source)
    seconds, _, _ = bench.run([binary, "put", source, "bench/x"], env)
    put = bench.mbps(count, seconds)
    out = os.path.join(place, "out.bin")
    seconds, _, _ = bench.run([binary, "get", "bench/x", out], env)
    get = bench.mbps(count, seconds)
    os.remove(out)
    return {"putMBps": put, "getMBps": get}


def start_s3_server(binary, place):
    """a67 serve of `binary` on a fresh repository in `place` (two providers, replicas 2), with user bench,
    its key in a file and bucket s3bench; returns (process, port, key file) once it answers."""
    env = repository(binary, place, 2, 2)
    a67(binary, env, "user", "add", "bench")
    key = json.loads(a67(binary, env, "key", "create", "bench", "--json"))
    key_file = os.path.join(place, "key.json")
    bench.write_private(key_file, json.dumps({"accessKeyId": key["accessKeyId"], "secretAccessKey": key["secretAccessKey"]}))
    a67(binary, env, "bucket", "create", "s3bench", "--owner", "bench")
    port = bench.free_port()
    log_path = os.path.join(place, "serve.log")
    with open(log_path, "wb") as log:
        server = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}"], env=env, stdin=subprocess.DEVNULL,
                                  stdout=log, stderr=subprocess.STDOUT)
    try:
        bench.wait_until_serving(server, port, log_path)
    except BaseException:
        stop(server)
        raise
    return server, port, key_file


def stop(server):
    server.terminate()
    try:
        server.wait(60)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def s3load(port, key_file, op, seconds, *extra):
    """One closed-loop phase of tools/s3load.py (16 clients, 1 MiB objects) against the server on `port`."""
    argv = [sys.executable, bench.S3LOAD, "--endpoint", f"http://127.0.0.1:{port}", "--access-key-file", key_file,
            "--bucket", "s3bench", "--op", op, "--clients", "16", "--size", str(1 << 20), "--rate", "0",
            "--duration", f"{seconds:g}", "--json", *extra]
    p = subprocess.run(argv, capture_output=True, text=True)
    if p.returncode not in (0, 1) or not p.stdout.strip():
        raise SystemExit(f"tools/s3load.py failed (exit {p.returncode}):\n{p.stderr}")
    return json.loads(p.stdout)["phases"][op]


def s3(binary, place, seconds):
    server, port, key_file = start_s3_server(binary, place)
    try:
        keys = os.path.join(place, "keys.json")
        figures = {}
        for op in ("put", "get"):
            os.sync()
            phase = s3load(port, key_file, op, seconds, "--server-pid", str(server.pid),
                           *(["--keys-out", keys] if op == "put" else ["--keys-from", keys]))
            figures[f"s3{op.capitalize()}ReqPerSec"] = phase["reqPerSec"]
        return figures
    finally:
        stop(server)


def cpu_seconds(pid):
    """User plus system CPU seconds of process `pid` so far (/proc/PID/stat)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def s3_paired(binaries, work, seconds, pairs):
    """S3 PUT bursts alternating between both servers, up at once on their own repositories: pair i runs
    base then head, pair i+1 head then base (A B B A), so neighbouring bursts share the machine's load.
    Whole-round medians swing by +-30% on this shared machine (other builds, the one disk), far more than
    a 10% cost; the ratio within each pair does not. Per burst: requests/s and the server's CPU
    milliseconds per request (/proc), which disk stalls barely move."""
    servers = {}
    try:
        for which, binary in binaries.items():
            place = os.path.join(work, f"paired-{which}")
            servers[which] = (*start_s3_server(binary, place), place)
        results = []
        for i in range(pairs):
            row = {"pair": i + 1}
            for which in (("base", "head") if i % 2 == 0 else ("head", "base")):
                server, port, key_file, _ = servers[which]
                before = cpu_seconds(server.pid)
                phase = s3load(port, key_file, "put", seconds)
                row[which] = {"reqPerSec": phase["reqPerSec"],
                              "cpuMsPerReq": 1000 * (cpu_seconds(server.pid) - before) / max(1, phase["ok"])}
            row["ratio"] = row["head"]["reqPerSec"] / row["base"]["reqPerSec"]
            results.append(row)
        return results
    finally:
        for server, _, _, place in servers.values():
            stop(server)
            shutil.rmtree(place, ignore_errors=True)


def mount(binary, place, count, seconds):
    env = repository(binary, place, 2, 2)
    mnt = os.path.join(place, "mnt")
    daemon = bench.FuseDaemon("a67", [binary, "mount", "bench", mnt, "--foreground"], env, mnt,
                              os.path.join(place, "mount.log"), [binary, "umount", mnt])
    cache = os.path.join(env["A67_HOME"], "cache")
    path = os.path.join(mnt, "seq.bin")
    try:
        daemon.start()
        write = bench.fio("a67", "seqwrite", path, "--rw=write", "--bs=1M", f"--size={count}", "--end_fsync=1")
        daemon.stop()
        shutil.rmtree(cache, ignore_errors=True)
        bench.drop_caches()
        daemon.start()
        read = bench.fio("a67", "seqread", path, "--rw=read", "--bs=1M", f"--size={count}")
        rand = bench.fio("a67", "randread", path, "--rw=randread", "--bs=4k", f"--size={count}", "--time_based",
                         f"--runtime={seconds:g}")
        daemon.stop()
        return {"mountWriteMBps": write["MBps"], "mountReadMBps": read["MBps"], "mountRandReadIOPS": rand["iops"]}
    finally:
        daemon.cleanup()


def compare(args):
    work = os.path.join(args.dir, "compare")
    os.makedirs(work, exist_ok=True)
    base_sha, base = build_base(args.compare, args.dir)
    head = bench.A67
    count, seconds = bench.size(args.compare_size), args.compare_seconds
    source = bench.random_file(os.path.join(work, "source.bin"), count)
    binaries = {"head": head, "base": base}
    rounds = []
    for r in range(max(1, args.repeats)):
        order = ("base", "head") if r % 2 == 0 else ("head", "base")
        for which in order:
            print(f"compare: round {r + 1}, {which}...", file=sys.stderr)
            place = os.path.join(work, which)
            figures = {}
            figures.update(put_get(binaries[which], place, source))
            figures.update(s3(binaries[which], place, seconds))
            figures.update(mount(binaries[which], place, count, seconds))
            shutil.rmtree(place, ignore_errors=True)
            rounds.append({"round": r + 1, "binary": which, **figures})
    names = [k for k in rounds[0] if k not in ("round", "binary")]
    summary = {}
    for name in names:
        med = {w: statistics.median(x[name] for x in rounds if x["binary"] == w) for w in ("head", "base")}
        summary[name] = {"head": med["head"], "base": med["base"], "ratio": med["head"] / med["base"] if med["base"] else None}
    print("compare: S3 PUT bursts, both servers up, A B B A...", file=sys.stderr)
    paired = s3_paired(binaries, work, min(seconds, 6), max(12, 4 * args.repeats))
    result = {"base": base_sha, "rounds": rounds, "median": summary, "size": count, "seconds": seconds, "s3Paired": paired}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"## This tree against {base_sha[:12]}, interleaved ({len(rounds) // 2} rounds each, medians)\n")
    print("| Measure | base | this tree | this tree / base |")
    print("|---|---:|---:|---:|")
    for name, m in summary.items():
        print(f"| {name} | {m['base']:.1f} | {m['head']:.1f} | {m['ratio']:.2f} |")
    # Every round, so that the spread (the noise) can be judged beside the medians.
    print("\n| Round | binary | " + " | ".join(names) + " |")
    print("|---|---|" + "---:|" * len(names))
    for x in rounds:
        print(f"| {x['round']} | {x['binary']} | " + " | ".join(f"{x[n]:.1f}" for n in names) + " |")
    ratios = sorted(x["ratio"] for x in paired)
    cpu = {w: statistics.median(x[w]["cpuMsPerReq"] for x in paired) for w in ("base", "head")}
    print(f"\nS3 PUT in alternating bursts ({len(paired)} pairs, A B B A): head/base req/s per pair, median "
          f"{statistics.median(ratios):.2f} (all: {', '.join(f'{r:.2f}' for r in ratios)}); server CPU ms per PUT, "
          f"median base {cpu['base']:.2f}, this tree {cpu['head']:.2f}")

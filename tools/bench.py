"""tools/bench: a67 put/get throughput and peak RSS, beside this machine's ceiling and restic; and
put/get against S3, WebDAV and SFTP servers on loopback, beside `rclone copy` to the same servers.

Everything is measured in the same run, because these machines are shared and noisy: only the
ratios are meaningful. Run it through tools/bench, which installs and builds first.
"""
import argparse, json, os, random, re, shutil, subprocess, sys, time, urllib.parse
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
A67 = os.path.join(ROOT, ".build/release/a67")
CORES = os.cpu_count() or 1


def size(text):
    m = re.fullmatch(r"(\d+)([KMG]?)", text.upper())
    if not m:
        raise SystemExit(f"cannot read {text!r} as a size: write 512M, 1G or 4G")
    return int(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[m.group(2)]


def run(cmd, env=None, stdin=None, stdout=subprocess.PIPE):
    """Runs cmd under /usr/bin/time; returns (seconds, peak RSS in MB, stdout). Dirty pages left by
    the previous step are flushed first, so that no command pays for another's writeback."""
    os.sync()
    start = time.monotonic()
    p = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, env=env, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE,
                       text=True)
    seconds = time.monotonic() - start
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr}")
    rss_kb = int(p.stderr.strip().splitlines()[-1])
    return seconds, rss_kb / 1024, p.stdout


def openssl_speed(algorithm):
    out = subprocess.run(["openssl", "speed", "-evp", algorithm, "-bytes", "1048576", "-seconds", "3"],
                         capture_output=True, text=True).stdout
    value = out.strip().splitlines()[-1].split()[-1]
    return float(value.rstrip("k")) * 1000  # bytes per second


def zstd_speeds(sample, level):
    p = subprocess.run(["zstd", f"-b{level}", "-i3", sample], capture_output=True, text=True)
    # zstd prints progress lines; the last with two rates is the result (stdout when not a terminal).
    lines = [line for line in (p.stdout + p.stderr).replace("\r", "\n").splitlines() if line.count("MB/s") == 2]
    speeds = re.findall(r"([\d.]+) MB/s", lines[-1])
    return float(speeds[0]) * 1e6, float(speeds[1]) * 1e6  # compress, decompress


def disk_write(path):
    target = os.path.join(path, "dd.bin")
    start = time.monotonic()
    subprocess.run(["dd", "if=/dev/zero", f"of={target}", "bs=1M", "count=1024", "conv=fdatasync"],
                   check=True, capture_output=True)
    rate = (1 << 30) / (time.monotonic() - start)
    os.remove(target)
    return rate


def random_file(path, count):
    """`count` random bytes at `path`, kept from an earlier run when the size matches."""
    if not os.path.exists(path) or os.path.getsize(path) != count:
        with open(path, "wb") as f:
            left = count
            while left:
                n = min(left, 64 << 20)
                f.write(os.urandom(n))
                left -= n
    return path


def make_files(work, count):
    rand = random_file(os.path.join(work, "random.bin"), count)
    text = os.path.join(work, "text.bin")
    if not os.path.exists(text) or os.path.getsize(text) != count:
        # Text like logs and source: words from a fixed vocabulary in random order, numbers mixed in.
        rng = random.Random(67)
        vocabulary = ("the a of to and in is for on with storage chunk provider replica encrypt compress "
                      "manifest catalog bucket object stream request error warning info debug user file "
                      "directory time value count total size bytes read write open close sync rename").split()
        with open(text, "w") as f:
            written = 0
            while written < count:
                lines = []
                for _ in range(20000):
                    words = rng.choices(vocabulary, k=rng.randint(6, 14))
                    lines.append(f"{rng.randint(0, 99999):05d} " + " ".join(words) + "\n")
                block = "".join(lines)
                f.write(block[: count - written])
                written += min(len(block), count - written)
    return {"random": rand, "text": text}


def mbps(count, seconds):
    return count / seconds / 1e6


def best(repeats, measure):
    """The fastest of `repeats` runs of measure() -> (seconds, ...): on a shared, noisy machine the
    best run is the closest to what the code can do."""
    return min((measure() for _ in range(repeats)), key=lambda result: result[0])


def fresh_repository(work):
    home, providers = os.path.join(work, "home"), os.path.join(work, "provider")
    for d in (home, providers):
        shutil.rmtree(d, ignore_errors=True)
    env = dict(os.environ, A67_HOME=home, A67_PASSPHRASE="bench passphrase")
    subprocess.run([A67, "init"], env=env, check=True, capture_output=True)
    subprocess.run([A67, "provider", "add", "disk", "--dir", providers], env=env, check=True, capture_output=True)
    subprocess.run([A67, "bucket", "create", "bench", "--replicas", "1"], env=env, check=True, capture_output=True)
    return env, (home, providers)


def replication(work, count, repair_count, repeats):
    """Issue 4's targets: put with R=2 on two directory providers against R=1 on the same two (the
    replicas are written in parallel); scrub throughput of stored data; repair time after losing a
    provider that held about 2 GiB (three providers, R=2)."""
    def repository(providers, replicas, place=work):
        home = os.path.join(work, "rhome")
        for d in [home] + [os.path.join(p, f"rprov{i}") for i in range(1, 4) for p in {work, place}]:
            shutil.rmtree(d, ignore_errors=True)
        env = dict(os.environ, A67_HOME=home, A67_PASSPHRASE="bench passphrase")
        subprocess.run([A67, "init"], env=env, check=True, capture_output=True)
        for i in range(1, providers + 1):
            subprocess.run([A67, "provider", "add", f"p{i}", "--dir", os.path.join(place, f"rprov{i}")], env=env, check=True,
                           capture_output=True)
        subprocess.run([A67, "bucket", "create", "bench", "--replicas", str(replicas)], env=env, check=True, capture_output=True)
        return env

    source = os.path.join(work, "replication.bin")
    random_file(source, count)
    results = {"size": count, "repairSize": repair_count, "disk": max(disk_write(work) for _ in range(repeats))}
    # Two directory providers on this machine's one disk share its write bandwidth, so R=2 writes twice
    # the bytes through one disk; in memory (tmpfs) they do not, which isolates the parallel writing.
    memory = "/dev/shm/a67-bench-replication"
    places = [("disk", work)] + ([("memory", memory)] if os.path.isdir("/dev/shm") else [])
    for label, place in places:
        os.makedirs(place, exist_ok=True)
        for replicas in (1, 2):
            print(f"replication: put with R={replicas} on two providers ({label})...", file=sys.stderr)

            def put():
                env = repository(2, replicas, place)
                seconds, rss, _ = run([A67, "put", source, "bench/x"], env)
                return seconds, rss, env
            seconds, _, env = best(repeats, put)
            results[f"putR{replicas}-{label}"] = mbps(count, seconds)
        if label == "memory":
            shutil.rmtree(memory, ignore_errors=True)
    env = repository(2, 2)
    run([A67, "put", source, "bench/x"], env)
    print("replication: scrub...", file=sys.stderr)
    # env is the R=2 repository: every chunk twice.
    scrubs = [json.loads(run([A67, "scrub", "--json"], env)[2]) for _ in range(repeats)]
    best_scrub = max(scrubs, key=lambda r: r["bytesChecked"] / r["seconds"])
    results["scrub"] = best_scrub["bytesChecked"] / best_scrub["seconds"] / 1e6
    results["scrubBytes"] = best_scrub["bytesChecked"]
    os.remove(source)

    print(f"replication: repair after losing a provider ({repair_count >> 20} MiB put, three providers, R=2)...",
          file=sys.stderr)
    source = os.path.join(work, "repair.bin")
    random_file(source, repair_count)
    timings = []
    for _ in range(repeats):
        env = repository(3, 2)
        run([A67, "put", source, "bench/x"], env)
        lost = max(json.loads(run([A67, "provider", "ls", "--json"], env)[2]), key=lambda p: p["usedBytes"])
        shutil.rmtree(lost["location"])
        seconds, _, out = run([A67, "repair", "--json"], env)
        report = json.loads(out)
        timings.append((seconds, lost["usedBytes"], report["bytesCopied"], report["providersDown"]))
    os.remove(source)
    seconds, held, copied, down = min(timings)
    results.update({"repairSeconds": seconds, "repairHeld": held, "repairCopied": copied, "repairDown": down})
    for d in ["rhome"] + [f"rprov{i}" for i in range(1, 4)]:
        shutil.rmtree(os.path.join(work, d), ignore_errors=True)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="1G", help="size of each test file (default 1G)")
    parser.add_argument("--big", default="4G", help="size of the stream for the RSS growth check (default 4G; 0 skips)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each measurement; the best is kept (default 2)")
    parser.add_argument("--dir", default="/var/tmp/a67-bench", help="working folder (needs 3x --size free)")
    parser.add_argument("--remote-size", default="512M",
                        help="size of the random file put to the loopback servers (default 512M; 0 skips them)")
    parser.add_argument("--only-remote", action="store_true", help="measure only the loopback servers")
    parser.add_argument("--replication-size", default="1G",
                        help="size of the file for the R=2 vs R=1 put and the scrub (default 1G; 0 skips replication)")
    parser.add_argument("--repair-size", default="3G",
                        help="size put to three providers with R=2 before one is lost (default 3G: each holds about 2 GiB)")
    parser.add_argument("--only-replication", action="store_true", help="measure only replication, scrub and repair")
    args = parser.parse_args()
    count, big, repeats = size(args.size), size(args.big), max(1, args.repeats)
    work = args.dir
    os.makedirs(work, exist_ok=True)
    replication_count = size(args.replication_size)
    if args.only_replication:
        report(args, count, {}, {}, {}, None, None, replication(work, replication_count, size(args.repair_size), repeats))
        return
    remote_count = size(args.remote_size)
    remote_results = remote(work, remote_count, repeats) if remote_count else None
    if args.only_remote:
        report(args, count, {}, {}, {}, None, remote_results)
        return
    replication_results = replication(work, replication_count, size(args.repair_size), repeats) if replication_count else None
    files = make_files(work, count)

    ceilings, results, inputs = {}, {}, {}
    for kind, path in files.items():
        # This kind's ceiling, measured just before a67 and restic so that all see the same machine.
        print(f"ceiling for {kind}...", file=sys.stderr)
        sha = max(openssl_speed("sha256") for _ in range(repeats))
        aes = max(openssl_speed("aes-256-gcm") for _ in range(repeats))
        disk = max(disk_write(work) for _ in range(repeats))
        sample = os.path.join(work, f"sample-{kind}.bin")
        with open(path, "rb") as src, open(sample, "wb") as dst:
            dst.write(src.read(64 << 20))
        speeds = [zstd_speeds(sample, 3) for _ in range(repeats)]
        zc, zd = max(z[0] for z in speeds), max(z[1] for z in speeds)
        os.remove(sample)
        cpu_put = CORES / (1 / sha + 1 / zc + 1 / aes)
        cpu_get = CORES / (1 / sha + 1 / aes + 1 / zd)
        inputs[kind] = {"sha": sha, "aes": aes, "disk": disk}
        ceilings[kind] = {"zstdCompress": zc, "zstdDecompress": zd, "cpuPut": cpu_put, "cpuGet": cpu_get,
                          "put": min(cpu_put, disk), "get": min(cpu_get, disk)}

        print(f"a67 and restic on {kind}...", file=sys.stderr)
        out = os.path.join(work, "out.bin")

        def first_put():
            env, _ = fresh_repository(work)
            seconds, rss, _ = run([A67, "put", path, "bench/first"], env)
            return seconds, rss, env

        put_s, put_rss, env = best(repeats, first_put)
        again_s, _, again_out = best(repeats, lambda: run([A67, "put", path, "bench/second", "--json"], env))
        new_chunks = json.loads(again_out)["newChunks"]

        def get():
            if os.path.exists(out):
                os.remove(out)
            return run([A67, "get", "bench/first", out], env)

        get_s, get_rss, _ = best(repeats, get)
        identical = subprocess.run(["cmp", "-s", path, out]).returncode == 0
        os.remove(out)

        repo = os.path.join(work, "restic")
        restore = os.path.join(work, "restore")
        password = os.path.join(work, "restic-password")
        with open(password, "w") as f:
            f.write("bench passphrase\n")
        renv = dict(os.environ, RESTIC_REPOSITORY=repo, RESTIC_PASSWORD_FILE=password,
                    RESTIC_CACHE_DIR=os.path.join(work, "restic-cache"))

        def backup():
            shutil.rmtree(repo, ignore_errors=True)
            subprocess.run(["restic", "init"], env=renv, check=True, capture_output=True)
            return run(["restic", "backup", "--quiet", path], renv)

        def restored():
            shutil.rmtree(restore, ignore_errors=True)
            return run(["restic", "restore", "latest", "--target", restore], renv)

        rb_s = best(repeats, backup)[0]
        rr_s = best(repeats, restored)[0]
        for d in (restore, repo, os.path.join(work, "home"), os.path.join(work, "provider")):
            shutil.rmtree(d, ignore_errors=True)
        results[kind] = {"put": mbps(count, put_s), "putRSS": put_rss, "get": mbps(count, get_s), "getRSS": get_rss,
                         "dedupePutSeconds": again_s, "putSeconds": put_s, "dedupeNewChunks": new_chunks,
                         "identical": identical, "resticBackup": mbps(count, rb_s), "resticRestore": mbps(count, rr_s)}

    growth = None
    if big:
        print(f"peak RSS for a {args.big} stream...", file=sys.stderr)
        env, folders = fresh_repository(work)
        source = subprocess.Popen(["head", "-c", str(big), "/dev/urandom"], stdout=subprocess.PIPE)
        _, big_put_rss, _ = run([A67, "put", "-", "bench/big"], env, stdin=source.stdout)
        source.wait()
        _, big_get_rss, _ = run([A67, "get", "bench/big", "-"], env, stdout=subprocess.DEVNULL)
        for d in folders:
            shutil.rmtree(d, ignore_errors=True)
        growth = {"putRSS": big_put_rss, "getRSS": big_get_rss}

    report(args, count, inputs, ceilings, results, growth, remote_results, replication_results)


def remote(work, count, repeats):
    """a67 put/get against each loopback server (one provider, one replica), and rclone copy of the
    same file to the same server, in the same run."""
    state = os.path.join(work, "servers")
    shutil.rmtree(state, ignore_errors=True)
    os.makedirs(state, mode=0o700)
    print("starting the loopback servers...", file=sys.stderr)
    subprocess.run([os.path.join(ROOT, "tools/servers"), "start", state], check=True)
    try:
        env = {}
        with open(os.path.join(state, "servers.env")) as f:
            for line in f:
                key, _, value = line.strip().partition("=")
                env[key] = value.strip("'")
        source = random_file(os.path.join(work, "remote.bin"), count)
        rclone_config = os.path.join(work, "rclone.conf")
        open(rclone_config, "w").close()
        obscured = lambda secret: subprocess.run(["rclone", "obscure", secret], capture_output=True, text=True,
                                                 check=True).stdout.strip()
        sftp = urllib.parse.urlparse(env["A67_TEST_SFTP_URL"])
        kinds = {
            "S3 (SeaweedFS)": {
                "add": ["--s3", env["A67_TEST_S3_ENDPOINT"], "--bucket", env["A67_TEST_S3_BENCH_BUCKET"],
                        "--region", env["A67_TEST_S3_REGION"], "--path-style", "--access-key-id",
                        env["A67_TEST_S3_ACCESS_KEY"], "--secret-key-file", env["A67_TEST_S3_SECRET_FILE"], "--prefix"],
                "rclone": {"TYPE": "s3", "PROVIDER": "Other", "ENV_AUTH": "false",
                           "ACCESS_KEY_ID": env["A67_TEST_S3_ACCESS_KEY"], "SECRET_ACCESS_KEY": env["A67_TEST_S3_SECRET_KEY"],
                           "REGION": env["A67_TEST_S3_REGION"], "ENDPOINT": env["A67_TEST_S3_ENDPOINT"],
                           "FORCE_PATH_STYLE": "true"},
                "path": lambda run: f"{env['A67_TEST_S3_BENCH_BUCKET']}/rclone-{run}/file",
                "where": lambda run: f"a67-{run}",
            },
            "WebDAV (rclone serve webdav)": {
                "add": ["--user", env["A67_TEST_WEBDAV_USER"], "--password-file", env["A67_TEST_WEBDAV_PASSWORD_FILE"], "--webdav"],
                "rclone": {"TYPE": "webdav", "VENDOR": "other", "URL": env["A67_TEST_WEBDAV_URL"],
                           "USER": env["A67_TEST_WEBDAV_USER"], "PASS": obscured(env["A67_TEST_WEBDAV_PASSWORD"])},
                "path": lambda run: f"rclone-{run}/file",
                "where": lambda run: env["A67_TEST_WEBDAV_URL"] + f"a67-{run}",
            },
            "SFTP (OpenSSH)": {
                "add": ["--key-file", env["A67_TEST_SFTP_KEY_FILE"], "--sftp"],
                "rclone": {"TYPE": "sftp", "HOST": sftp.hostname, "PORT": str(sftp.port), "USER": sftp.username,
                           "KEY_FILE": env["A67_TEST_SFTP_KEY_FILE"], "DISABLE_HASHCHECK": "true"},
                "path": lambda run: f"{sftp.path}/rclone-{run}/file",
                "where": lambda run: env["A67_TEST_SFTP_URL"] + f"/a67-{run}",
            },
        }
        results = {}
        out = os.path.join(work, "remote-out.bin")
        for label, kind in kinds.items():
            print(f"a67 and rclone copy against {label}...", file=sys.stderr)
            renv = dict(os.environ, RCLONE_CONFIG=rclone_config,
                        **{f"RCLONE_CONFIG_BENCH_{k}": v for k, v in kind["rclone"].items()})
            renv.pop("AWS_CA_BUNDLE", None)  # rclone's S3 client refuses it for plain-HTTP endpoints
            state_box = {}

            def a67_put():
                run_id = random.randrange(1 << 40)
                home = os.path.join(work, "remote-home")
                shutil.rmtree(home, ignore_errors=True)
                aenv = dict(os.environ, A67_HOME=home, A67_PASSPHRASE="bench passphrase")
                subprocess.run([A67, "init"], env=aenv, check=True, capture_output=True)
                subprocess.run([A67, "provider", "add", "remote"] + kind["add"] + [kind["where"](run_id)], env=aenv,
                               check=True, capture_output=True)
                subprocess.run([A67, "bucket", "create", "bench", "--replicas", "1"], env=aenv, check=True, capture_output=True)
                state_box["env"] = aenv
                return run([A67, "put", source, "bench/remote"], aenv)

            def a67_get():
                if os.path.exists(out):
                    os.remove(out)
                return run([A67, "get", "bench/remote", out], state_box["env"])

            put_s, put_rss, _ = best(repeats, a67_put)
            get_s, get_rss, _ = best(repeats, a67_get)
            identical = subprocess.run(["cmp", "-s", source, out]).returncode == 0
            os.remove(out)

            def rclone_up():
                state_box["rpath"] = "bench:" + kind["path"](random.randrange(1 << 40))
                return run(["rclone", "copyto", source, state_box["rpath"]], renv)

            def rclone_down():
                if os.path.exists(out):
                    os.remove(out)
                return run(["rclone", "copyto", state_box["rpath"], out], renv)

            up_s = best(repeats, rclone_up)[0]
            down_s = best(repeats, rclone_down)[0]
            os.remove(out)
            results[label] = {"put": mbps(count, put_s), "get": mbps(count, get_s), "putRSS": put_rss, "getRSS": get_rss,
                              "rcloneUp": mbps(count, up_s), "rcloneDown": mbps(count, down_s), "identical": identical}
        shutil.rmtree(os.path.join(work, "remote-home"), ignore_errors=True)
        return {"size": count, "results": results}
    finally:
        print("stopping the loopback servers...", file=sys.stderr)
        subprocess.run([os.path.join(ROOT, "tools/servers"), "stop", state])


def report(args, count, inputs, ceilings, results, growth, remote_results=None, replication_results=None):
    lines = [f"## tools/bench, {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
             "",
             f"Machine: {CORES} cores; files of {args.size}; one directory provider; zstd level 3; "
             f"every figure the best of {args.repeats} runs.",
             ""]
    for kind in results:
        c, r, i = ceilings[kind], results[kind], inputs[kind]
        disk = i["disk"]
        lines += [f"### {kind}", "",
                  f"Ceiling inputs: SHA-256 {i['sha']/1e6:.0f} MB/s, AES-256-GCM {i['aes']/1e6:.0f} MB/s (openssl speed, one core), "
                  f"disk write {disk/1e6:.0f} MB/s (dd conv=fdatasync); "
                  f"zstd -b3: compress {c['zstdCompress']/1e6:.0f} MB/s, decompress {c['zstdDecompress']/1e6:.0f} MB/s (one core). "
                  f"Ceiling put = min({CORES} x hash+compress+encrypt = {c['cpuPut']/1e6:.0f}, disk {disk/1e6:.0f}) = {c['put']/1e6:.0f} MB/s; "
                  f"get = min({CORES} x verify+decrypt+decompress = {c['cpuGet']/1e6:.0f}, disk) = {c['get']/1e6:.0f} MB/s.",
                  "",
                  "| measure | a67 | ceiling | restic | a67 / ceiling | a67 / restic | target |",
                  "|---|---|---|---|---|---|---|",
                  f"| put MB/s | {r['put']:.0f} | {c['put']/1e6:.0f} | {r['resticBackup']:.0f} | {r['put']/(c['put']/1e6):.2f} | {r['put']/r['resticBackup']:.2f} | >= 0.80, >= 3 |",
                  f"| get MB/s | {r['get']:.0f} | {c['get']/1e6:.0f} | {r['resticRestore']:.0f} | {r['get']/(c['get']/1e6):.2f} | {r['get']/r['resticRestore']:.2f} | >= 0.80, >= 1.5 |",
                  f"| peak RSS MB, put / get | {r['putRSS']:.0f} / {r['getRSS']:.0f} | | | | | <= 200 |",
                  f"| same file under a second key: new chunks, time vs first put | {r['dedupeNewChunks']}, {r['dedupePutSeconds']/r['putSeconds']:.2f} | | | | | 0, < 0.25 |",
                  f"| read back identical | {'yes' if r['identical'] else 'NO'} | | | | | yes |",
                  ""]
    if growth:
        lines += [f"Peak RSS for a {args.big} random stream: put {growth['putRSS']:.0f} MB, get {growth['getRSS']:.0f} MB "
                  f"(no growth with size when close to the {args.size} figures).", ""]
    if remote_results:
        lines += [f"### Remote providers on loopback ({remote_results['size'] >> 20} MiB random file, one provider, one replica)", "",
                  "a67 encrypts and verifies; rclone copy moves the plain file. Both talk to the same server in the same run.",
                  "",
                  "| server | a67 put MB/s | rclone copy up | a67 / rclone | a67 get MB/s | rclone copy down | a67 / rclone | peak RSS put / get | identical |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for label, r in remote_results["results"].items():
            lines.append(f"| {label} | {r['put']:.0f} | {r['rcloneUp']:.0f} | {r['put']/r['rcloneUp']:.2f} | {r['get']:.0f} | "
                         f"{r['rcloneDown']:.0f} | {r['get']/r['rcloneDown']:.2f} | {r['putRSS']:.0f} / {r['getRSS']:.0f} MB | "
                         f"{'yes' if r['identical'] else 'NO'} |")
        lines.append("")
    if replication_results:
        r = replication_results
        lines += ["### Replication, scrub, repair (directory providers on this machine's one disk)", "",
                  "| measure | a67 | target |",
                  "|---|---|---|",
                  f"| put MB/s, R=2 on two providers / R=1 on the same two, both on this disk ({r['size'] >> 20} MiB random; "
                  f"disk ceiling {r['disk'] / 1e6:.0f} MB/s, R=2 writes {2 * r['putR2-disk']:.0f} MB/s) | "
                  f"{r['putR2-disk']:.0f} / {r['putR1-disk']:.0f} = {r['putR2-disk'] / r['putR1-disk']:.2f} | >= 0.90 |",
                  ] + ([f"| put MB/s, R=2 / R=1, both providers in memory (tmpfs: no shared disk) | "
                        f"{r['putR2-memory']:.0f} / {r['putR1-memory']:.0f} = {r['putR2-memory'] / r['putR1-memory']:.2f} | >= 0.90 |"]
                       if "putR2-memory" in r else []) + [
                  f"| scrub MB/s of stored data ({r['scrubBytes'] >> 20} MiB: every replica read, decrypted, verified) | "
                  f"{r['scrub']:.0f} | >= 200 |",
                  f"| repair after losing a provider that held {r['repairHeld'] / 2**30:.2f} GiB ({r['repairCopied'] / 2**30:.2f} GiB copied; "
                  f"down: {', '.join(r['repairDown'])}) | {r['repairSeconds']:.1f} s | < 60 s |",
                  ""]
    text = "\n".join(lines)
    print(text)
    os.makedirs(os.path.join(ROOT, "bench-out"), exist_ok=True)
    with open(os.path.join(ROOT, "bench-out", "latest.md"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()

"""tools/bench: a67 put/get throughput and peak RSS, beside this machine's ceiling and restic; and
put/get against S3, WebDAV and SFTP servers on loopback, beside `rclone copy` to the same servers;
a67 serve under S3 load; a67 mount beside `rclone mount` of a crypt remote, fio on both; apps: deploy
time, the agent's memory, and the app proxy beside nginx (wrk).

Everything is measured in the same run, because these machines are shared and noisy: only the
ratios are meaningful. Run it through tools/bench, which installs and builds first.
"""
import argparse, hashlib, http.client, json, os, random, re, shutil, signal, socket, struct, subprocess, sys, time, urllib.parse
from datetime import datetime, timezone

sys.dont_write_bytecode = True  # no tools/__pycache__ left behind by the import below
import s3load  # tools/s3load.py, beside this file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
A67 = os.environ.get("A67_BIN", os.path.join(ROOT, ".build/release/a67"))
S3LOAD = os.path.join(ROOT, "tools/s3load.py")
RCLONE_MOUNT_MODE = "writes"  # see mount_bench
AWS_VENV = "/opt/a67-test-venv/bin/aws"
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
    parser.add_argument("--only-s3", action="store_true", help="measure only a67 serve (S3 on loopback) under load")
    parser.add_argument("--s3-clients", type=int, default=64, help="connections of the S3 load (default 64)")
    parser.add_argument("--s3-object-size", default="1M", help="object size of the S3 load (default 1M)")
    parser.add_argument("--s3-rate", type=float, default=300, help="requests/s due in the open-loop S3 load (default 300)")
    parser.add_argument("--s3-duration", type=float, default=20,
                        help="seconds of each open-loop S3 phase, PUT then GET (default 20; 0 skips the S3 server)")
    parser.add_argument("--s3-max-duration", type=float, default=10,
                        help="seconds of each closed-loop S3 phase, for the maximum req/s (default 10; 0 skips)")
    parser.add_argument("--s3-upload-size", default="1G",
                        help="size of the file a67 put and aws s3 cp upload to the server (default 1G; 0 skips)")
    parser.add_argument("--only-mount", action="store_true",
                        help="measure only a67 mount beside rclone mount of a crypt remote (FUSE, fio)")
    parser.add_argument("--mount-size", default="2G",
                        help="size of the file fio writes and reads on each mount (default 2G; 0 skips the mounts)")
    parser.add_argument("--mount-randread-size", default="256M",
                        help="size of the file read fully once, then read at random in 4 KiB blocks (default 256M)")
    parser.add_argument("--mount-randread-seconds", type=float, default=15,
                        help="seconds of the 4 KiB random reads on each mount (default 15)")
    parser.add_argument("--mount-files", type=int, default=10000,
                        help="empty files created in one folder on each mount (default 10000)")
    parser.add_argument("--mount-cache-size", help="a67 mount --cache-size (default: a67's own default)")
    parser.add_argument("--mount-replicas", type=int, default=2,
                        help="replicas of the mounted bucket, on two directory providers (default 2)")
    parser.add_argument("--mount-rclone-mode", default=RCLONE_MOUNT_MODE, choices=("minimal", "writes", "full"),
                        help=f"rclone mount --vfs-cache-mode (default {RCLONE_MOUNT_MODE}; off cannot run fio)")
    parser.add_argument("--only-deploy", action="store_true",
                        help="measure only the apps: deploy time, agent memory, the app proxy against nginx (about 4 min)")
    parser.add_argument("--deploy-rounds", type=int, default=3,
                        help="rounds of the proxy comparison, direct / nginx / a67 interleaved (default 3; 0 skips the apps)")
    parser.add_argument("--deploy-seconds", type=float, default=8, help="seconds of each 64-connection wrk run (default 8)")
    parser.add_argument("--deploy-latency-seconds", type=float, default=4,
                        help="seconds of each one-connection wrk run, for the added latency (default 4)")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object instead of Markdown")
    parser.add_argument("--compare", metavar="REV",
                        help="instead: this tree's a67 against the a67 of commit REV (built in --dir), interleaved "
                             "rounds of put/get, S3 PUT/GET req/s and mount sequential and random I/O (tools/benchcompare.py)")
    parser.add_argument("--compare-size", default="512M", help="file size of the --compare rounds (default 512M)")
    parser.add_argument("--compare-seconds", type=float, default=10,
                        help="seconds of each S3 load and random-read phase of the --compare rounds (default 10)")
    args = parser.parse_args()
    if args.compare:
        os.makedirs(args.dir, exist_ok=True)
        import benchcompare  # tools/benchcompare.py, beside this file
        benchcompare.compare(args)
        return
    count, big, repeats = size(args.size), size(args.big), max(1, args.repeats)
    work = args.dir
    os.makedirs(work, exist_ok=True)
    replication_count = size(args.replication_size)
    if args.only_deploy:
        report(args, count, {}, {}, {}, None, deploy_results=deploy_bench(work, args))
        return
    if args.only_mount:
        report(args, count, {}, {}, {}, None, mount_results=mount_bench(work, args))
        return
    if args.only_s3:
        report(args, count, {}, {}, {}, None, s3_results=s3_server(work, args, repeats))
        return
    if args.only_replication:
        report(args, count, {}, {}, {}, None, None, replication(work, replication_count, size(args.repair_size), repeats))
        return
    remote_count = size(args.remote_size)
    remote_results = remote(work, remote_count, repeats) if remote_count else None
    if args.only_remote:
        report(args, count, {}, {}, {}, None, remote_results)
        return
    s3_results = s3_server(work, args, repeats) if args.s3_duration > 0 else None
    replication_results = replication(work, replication_count, size(args.repair_size), repeats) if replication_count else None
    mount_results = mount_bench(work, args) if size(args.mount_size) else None
    deploy_results = deploy_bench(work, args) if args.deploy_rounds > 0 else None
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

    report(args, count, inputs, ceilings, results, growth, remote_results, replication_results, s3_results,
           mount_results, deploy_results)


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


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def log_tail(path, lines=30):
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 64 * 1024))
            return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-lines:])
    except OSError as e:
        return f"(cannot read {path}: {e})"


def restamp(path, mark):
    """Writes the 16 bytes `mark` at every MiB of the file, so that none of its chunks (5 MiB) or S3
    parts (8 MiB) is one an earlier upload stored: the repository would dedupe the same file put twice."""
    fd = os.open(path, os.O_WRONLY)
    try:
        for offset in range(0, os.path.getsize(path) - len(mark) + 1, 1 << 20):
            os.pwrite(fd, mark, offset)
    finally:
        os.close(fd)


def wait_until_serving(server, port, log_path, timeout=60):
    """Waits until `a67 serve` (the process `server`, on 127.0.0.1:`port`) answers GET /_a67/api/v1/health
    with 200; stops the benchmark with its log's tail if it exits or does not answer within `timeout` s."""
    began, last = time.monotonic(), "no answer"
    while True:
        if server.poll() is not None:
            raise SystemExit(f"a67 serve exited with status {server.returncode} while starting:\n{log_tail(log_path)}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/_a67/api/v1/health")
            reply = conn.getresponse()
            reply.read()
            conn.close()
            if reply.status == 200:
                return
            last = f"HTTP {reply.status}"
        except OSError as e:
            last = str(e)
        if time.monotonic() - began > timeout:
            raise SystemExit(f"a67 serve did not answer GET /_a67/api/v1/health with 200 within {timeout} s (last: {last}):\n"
                             f"{log_tail(log_path)}")
        time.sleep(0.1)


def s3_server(work, args, repeats):
    """The S3 server's targets: `a67 serve` on loopback, a fresh repository (two directory providers,
    replicas 2), loaded from a separate process (tools/s3load.py): --s3-clients connections of 1 MiB
    PUTs then GETs, open loop at --s3-rate req/s (latency from the time each request was due), then
    closed loop for the maximum; the server's RSS sampled all along. Then a 1 GiB upload with
    `aws s3 cp` (its default multipart settings) against `a67 put` of the same file into the same
    repository, the order alternated between rounds. Then SIGTERM, which must end the server with 0."""
    object_size, upload_count = size(args.s3_object_size), size(args.s3_upload_size)
    home, providers = os.path.join(work, "s3home"), [os.path.join(work, f"s3prov{i}") for i in (1, 2)]
    key_file, aws_config = os.path.join(work, "s3-key.json"), os.path.join(work, "s3-aws-config")
    keys_open = os.path.join(work, "s3-keys.json")
    for d in [home] + providers:
        shutil.rmtree(d, ignore_errors=True)
    env = dict(os.environ, A67_HOME=home, A67_PASSPHRASE="bench passphrase")

    def a67(*argv):
        p = subprocess.run([A67, *argv], env=env, capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(f"a67 {' '.join(argv)} failed (exit {p.returncode}):\n{p.stderr}")
        return p.stdout

    print("s3: a fresh repository (two directory providers, replicas 2), user and key...", file=sys.stderr)
    a67("init")
    for i, folder in enumerate(providers, 1):
        a67("provider", "add", f"p{i}", "--dir", folder)
    a67("user", "add", "bench")
    key = json.loads(a67("key", "create", "bench", "--json"))
    write_private(key_file, json.dumps({"accessKeyId": key["accessKeyId"], "secretAccessKey": key["secretAccessKey"]}))
    bucket = "s3bench"
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log_path = os.path.join(work, "s3-serve.log")
    print(f"s3: starting a67 serve --listen 127.0.0.1:{port} (log {log_path})...", file=sys.stderr)
    os.sync()
    began = time.monotonic()
    with open(log_path, "wb") as log:
        server = subprocess.Popen([A67, "serve", "--listen", f"127.0.0.1:{port}"], env=env, stdin=subprocess.DEVNULL,
                                  stdout=log, stderr=subprocess.STDOUT)
    whole = s3load.RSSSampler(server.pid)
    whole.start()
    overall = None
    results = {"clients": args.s3_clients, "objectSize": object_size, "rate": args.s3_rate, "duration": args.s3_duration,
               "maxDuration": args.s3_max_duration, "replicas": 2, "providers": 2}
    try:
        wait_until_serving(server, port, log_path)
        results["startSeconds"] = time.monotonic() - began

        # The bucket: a signed PUT /BUCKET as the user bench (so bench owns it), else the CLI.
        try:
            target = s3load.Target(endpoint, bucket, s3load.Signer(key["accessKeyId"], key["secretAccessKey"]), 30)
            s3load.create_bucket(target)
            results["bucketCreatedBy"] = "S3 PUT /BUCKET"
        except (SystemExit, OSError, s3load.HTTPError) as e:
            print(f"s3: the signed PUT /{bucket} failed ({e}); creating it with a67 bucket create --owner bench",
                  file=sys.stderr)
            a67("bucket", "create", bucket, "--owner", "bench")
            results["bucketCreatedBy"] = "a67 bucket create --owner"

        def load(op, rate, seconds, keys_out=None, keys_from=None):
            argv = [sys.executable, S3LOAD, "--endpoint", endpoint, "--access-key-file", key_file, "--bucket", bucket,
                    "--op", op, "--clients", str(args.s3_clients), "--size", str(object_size), "--rate", f"{rate:g}",
                    "--duration", f"{seconds:g}", "--server-pid", str(server.pid), "--json"]
            argv += ["--keys-out", keys_out] if keys_out else []
            argv += ["--keys-from", keys_from] if keys_from else []
            mode = f"open loop at {rate:g} req/s" if rate else "closed loop"
            print(f"s3: {op} {object_size >> 10} KiB objects, {args.s3_clients} clients, {mode}, {seconds:g} s...",
                  file=sys.stderr)
            os.sync()
            p = subprocess.run(argv, capture_output=True, text=True)
            if server.poll() is not None:
                raise SystemExit(f"a67 serve exited with status {server.returncode} during the {op} load:\n"
                                 f"{log_tail(log_path)}")
            if p.returncode not in (0, 1) or not p.stdout.strip():  # 1: over 1% of the requests failed
                raise SystemExit(f"tools/s3load.py failed (exit {p.returncode}):\n{p.stderr}")
            return json.loads(p.stdout)["phases"][op]

        results["open"] = {"put": load("put", args.s3_rate, args.s3_duration, keys_out=keys_open)}
        results["open"]["get"] = load("get", args.s3_rate, args.s3_duration, keys_from=keys_open)
        if args.s3_max_duration > 0:
            results["closed"] = {"put": load("put", 0, args.s3_max_duration)}
            results["closed"]["get"] = load("get", 0, args.s3_max_duration, keys_from=keys_open)
        results["loadRSSMB"] = max(r["server"]["maxRSSMB"] for loop in ("open", "closed") if loop in results
                                   for r in results[loop].values())

        aws = AWS_VENV if os.access(AWS_VENV, os.X_OK) else shutil.which("aws")
        if upload_count and not aws:
            results["upload"] = {"skipped": "no aws CLI (tools/install-deps --bench installs it)"}
        elif upload_count:
            source = random_file(os.path.join(work, "s3-upload.bin"), upload_count)
            write_private(aws_config, "[default]\ns3 =\n  addressing_style = path\n")
            aenv = {k: v for k, v in os.environ.items()
                    if k not in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                                 "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_CA_BUNDLE")}
            aenv.update(AWS_ACCESS_KEY_ID=key["accessKeyId"], AWS_SECRET_ACCESS_KEY=key["secretAccessKey"],
                        AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE=aws_config,
                        AWS_SHARED_CREDENTIALS_FILE=os.path.join(work, "s3-aws-no-credentials"))
            version = subprocess.run([aws, "--version"], env=aenv, capture_output=True, text=True)
            rounds, nonce = [], random.getrandbits(63)
            for r in range(repeats):
                for tool in (("a67", "aws") if r % 2 == 0 else ("aws", "a67")):
                    print(f"s3: {upload_count >> 20} MiB upload, round {r + 1}: {tool}...", file=sys.stderr)
                    restamp(source, struct.pack(">QQ", nonce, len(rounds)))  # new content: no dedupe
                    if tool == "a67":
                        seconds, rss, _ = run([A67, "put", source, f"{bucket}/upload-a67-{r}"], env)
                    else:
                        seconds, rss, _ = run([aws, "s3", "cp", source, f"s3://{bucket}/upload-aws-{r}",
                                               "--endpoint-url", endpoint, "--only-show-errors"], aenv)
                    rounds.append({"round": r + 1, "tool": tool, "seconds": seconds, "MBps": mbps(upload_count, seconds),
                                   "clientRSSMB": rss})
            a67_best = max(x["MBps"] for x in rounds if x["tool"] == "a67")
            aws_best = max(x["MBps"] for x in rounds if x["tool"] == "aws")
            results["upload"] = {"size": upload_count, "rounds": rounds, "a67": a67_best, "aws": aws_best,
                                 "ratio": aws_best / a67_best,
                                 "awsVersion": (version.stdout or version.stderr).strip(),
                                 "a67RSSMB": min(x["clientRSSMB"] for x in rounds if x["tool"] == "a67" and x["MBps"] == a67_best),
                                 "awsRSSMB": min(x["clientRSSMB"] for x in rounds if x["tool"] == "aws" and x["MBps"] == aws_best)}
            os.remove(source)

        overall = whole.stop()  # VmHWM is read while the server still runs
        print("s3: SIGTERM to a67 serve...", file=sys.stderr)
        stopping = time.monotonic()
        server.send_signal(signal.SIGTERM)
        try:
            results["sigtermExit"] = server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
            results["sigtermExit"] = "still running 60 s after SIGTERM (killed)"
        results["stopSeconds"] = time.monotonic() - stopping
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        if overall is None:
            overall = whole.stop()
        results["serverRSSMB"] = max(overall["maxRSSMB"], results.get("loadRSSMB", 0))
        results["serverHWMMB"] = overall["hwmMB"]
        for d in [home] + providers:
            shutil.rmtree(d, ignore_errors=True)
        for f in (key_file, aws_config, keys_open):
            if os.path.exists(f):
                os.remove(f)
    return results


def mounted(path):
    """Whether the kernel lists `path` as a mount point (without touching the file system, which may be
    a dead FUSE mount that answers nothing)."""
    path = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        return any(line.split()[1].encode().decode("unicode_escape") == path for line in f if len(line.split()) > 1)


def drop_caches():
    """Writes back dirty pages and drops the page cache, so that a read comes from the mount's store and
    not from memory. Needs root; returns whether it could."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


class FuseDaemon:
    """A mount daemon run in the foreground (so that its pid is known), its mount point, and the peak
    RSS of every process it ran as: VmHWM sampled from /proc while it runs, and the kernel's maximum
    resident set (wait4) when it exits, which also covers its last 100 ms."""

    def __init__(self, label, argv, env, mountpoint, log_path, unmount_argv):
        self.label, self.argv, self.env, self.mountpoint = label, argv, env, mountpoint
        self.log_path, self.unmount_argv = log_path, unmount_argv
        self.process, self.sampler = None, None
        self.peaks_kb, self.exits = [], []

    def start(self, timeout=60):
        """Starts the daemon and returns the seconds until the mount answers."""
        os.makedirs(self.mountpoint, exist_ok=True)
        began = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.argv, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT)
        self.sampler = s3load.RSSSampler(self.process.pid)
        self.sampler.start()
        while not os.path.ismount(self.mountpoint):
            if self.reap(0.05) is not None:
                raise SystemExit(f"{self.label} mount exited with status {self.exits[-1]} before it was live:\n"
                                 f"{log_tail(self.log_path)}")
            if time.monotonic() - began > timeout:
                raise SystemExit(f"{self.label} mount: {self.mountpoint} was not live {timeout} s after the start:\n"
                                 f"{log_tail(self.log_path)}")
        return time.monotonic() - began

    def reap(self, seconds):
        """Waits up to `seconds` for the daemon to exit; its exit status, or None while it runs."""
        deadline = time.monotonic() + seconds
        while True:
            # wait4 rather than Popen's wait or poll (never called on it), for the kernel's peak RSS.
            pid, status, usage = os.wait4(self.process.pid, os.WNOHANG)
            if pid:
                self.process.returncode = os.waitstatus_to_exitcode(status)
                self.exits.append(self.process.returncode)
                hwm = self.sampler.stop()["hwmMB"] * 1024 if self.sampler else 0
                self.peaks_kb.append(max(usage.ru_maxrss, hwm))
                self.sampler = None
                return self.process.returncode
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.02)

    def stop(self, timeout=600):
        """Unmounts the way a user would and waits for the daemon to exit; returns the seconds it took."""
        began = time.monotonic()
        try:
            p = subprocess.run(self.unmount_argv, env=self.env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SystemExit(f"{' '.join(self.unmount_argv)} had not returned {timeout} s later:\n"
                             f"{log_tail(self.log_path)}")
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(self.unmount_argv)} failed (exit {p.returncode}):\n{p.stderr}\n"
                             f"{log_tail(self.log_path)}")
        if self.reap(timeout) is None:
            raise SystemExit(f"{self.label} mount still ran {timeout} s after {' '.join(self.unmount_argv)}:\n"
                             f"{log_tail(self.log_path)}")
        return time.monotonic() - began

    def cleanup(self):
        """Whatever happened: no mount left behind (fusermount3 -uz) and no daemon left running."""
        if mounted(self.mountpoint):
            subprocess.run(["fusermount3", "-uz", self.mountpoint], capture_output=True)
        if self.process and self.process.returncode is None:
            os.kill(self.process.pid, signal.SIGTERM)  # still our unreaped child: the pid is its own
            if self.reap(30) is None:
                os.kill(self.process.pid, signal.SIGKILL)
                self.reap(30)

    def peak_mb(self):
        return max(self.peaks_kb, default=0) / 1024


def fio(label, job, path, *options):
    """One fio job (Debian's fio, psync engine) on `path`; the figures of its one job from its JSON."""
    argv = ["fio", f"--name={job}", f"--filename={path}", "--ioengine=psync", "--output-format=json", *options]
    print(f"mount: fio {job} on the {label} mount...", file=sys.stderr)
    began = time.monotonic()
    p = subprocess.run(argv, capture_output=True, text=True)
    wall = time.monotonic() - began
    if p.returncode != 0 or "{" not in p.stdout:
        raise SystemExit(f"fio {job} on the {label} mount failed (exit {p.returncode}):\n{p.stderr}\n{p.stdout[-2000:]}")
    result = json.loads(p.stdout[p.stdout.index("{"):])["jobs"][0]  # fio may print notes before its JSON
    if result.get("error"):
        raise SystemExit(f"fio {job} on the {label} mount: error {result['error']}\n{p.stderr}")
    side = result["read"] if result["read"]["io_bytes"] else result["write"]
    clat = side["clat_ns"]
    percentile = clat.get("percentile", {})
    return {"job": job, "bytes": side["io_bytes"], "runtimeMs": side["runtime"], "MBps": side["bw_bytes"] / 1e6,
            "iops": side["iops"], "clatMeanUs": clat["mean"] / 1e3,
            "clatP50Us": percentile.get("50.000000", 0) / 1e3, "clatP99Us": percentile.get("99.000000", 0) / 1e3,
            "usrCPU": result["usr_cpu"], "sysCPU": result["sys_cpu"], "wallSeconds": wall,
            "options": " ".join(a for a in argv[1:] if not a.startswith(("--filename=", "--name=", "--output-format=")))}


def exercise(daemon, count, source, files, randread_seconds, settle, between):
    """The same work on one mount. fio writes the big file sequentially; the mount is stopped; a random
    file is copied in and the mount stopped again; then, started with the page cache dropped, fio reads
    the big file sequentially (from the store), the random file is read fully once (its first read,
    compared with the source) and fio reads it at random in 4 KiB blocks (what the mount cached of it);
    `files` empty files are created in one folder; the mount is stopped. settle(files, bytes) runs
    before each stop, told what the store should hold by then, and returns seconds (rclone: until its
    uploads are done); between() runs after each stop (empties the mount's cache)."""
    mnt, label = daemon.mountpoint, daemon.label
    big, rand = os.path.join(mnt, "seq.bin"), os.path.join(mnt, "randread.bin")

    def restart():
        between()
        dropped = drop_caches()
        daemon.start()
        return dropped

    r = {"startSeconds": daemon.start()}
    r["write"] = fio(label, "seqwrite", big, "--rw=write", "--bs=1M", f"--size={count}", "--end_fsync=1",
                     "--refill_buffers=1", "--fallocate=none")
    settled = settle(1, count)
    r["writeStopSeconds"] = settled + daemon.stop()
    # Until stored: fio's run, then what the daemon needed before it could exit (its flush; rclone's uploads).
    r["writeStoredMBps"] = count / (r["write"]["runtimeMs"] / 1000 + r["writeStopSeconds"]) / 1e6

    restart()
    print(f"mount: {os.path.getsize(source) >> 20} MiB random file into the {label} mount...", file=sys.stderr)
    expected = hashlib.sha256()
    with open(source, "rb") as src, open(rand, "wb") as dst:
        while block := src.read(1 << 20):
            expected.update(block)
            dst.write(block)
        dst.flush()
        os.fsync(dst.fileno())
    settle(2, count + os.path.getsize(source))
    daemon.stop()

    r["pageCacheDropped"] = restart()
    r["read"] = fio(label, "seqread", big, "--rw=read", "--bs=1M", f"--size={count}")
    print(f"mount: the random file read fully once on the {label} mount...", file=sys.stderr)
    began = time.monotonic()
    seen = hashlib.sha256()
    with open(rand, "rb", buffering=0) as f:
        while block := f.read(1 << 20):
            seen.update(block)
    r["firstReadMBps"] = os.path.getsize(source) / (time.monotonic() - began) / 1e6
    r["identical"] = seen.digest() == expected.digest()
    r["randread"] = fio(label, "randread4k", rand, "--rw=randread", "--bs=4k", f"--size={os.path.getsize(source)}",
                        "--time_based=1", f"--runtime={randread_seconds:g}")

    print(f"mount: {files} empty files into one folder of the {label} mount...", file=sys.stderr)
    folder = os.path.join(mnt, "create")
    os.mkdir(folder)
    began = time.monotonic()
    for i in range(files):
        os.close(os.open(os.path.join(folder, f"f{i:06d}"), os.O_CREAT | os.O_WRONLY, 0o644))
    r["createSeconds"] = time.monotonic() - began
    r["createPerSecond"] = files / r["createSeconds"]
    began = time.monotonic()
    r["listed"] = len(os.listdir(folder))
    r["listSeconds"] = time.monotonic() - began
    settled = settle(2 + files, count + os.path.getsize(source))
    r["createStopSeconds"] = settled + daemon.stop()
    between()
    r["peakRSSMB"] = daemon.peak_mb()
    r["processes"] = len(daemon.exits)
    r["exits"] = daemon.exits
    return r


def mount_bench(work, args):
    """Issue 6's targets: `a67 mount` of a bucket (two directory providers) beside `rclone mount` of a
    crypt remote over a local folder, both in the same --dir on the same disk, in the same run; the
    same work on each (exercise): fio sequential write of --mount-size, sequential read of it after a
    remount (caches emptied, page cache dropped), 4 KiB random reads of a --mount-randread-size file
    read fully once after a remount, --mount-files empty files created in one folder. Peak RSS of the
    mount processes over the whole run (VmHWM, and wait4's maximum).

    rclone's --vfs-cache-mode (--mount-rclone-mode): "off" cannot run fio (it needs O_TRUNC and
    truncate). "writes" is the least that can, and what FIELD-NOTES' figures match: writes go to its
    cache file (uploaded 5 s after the close), and a file not in that cache is read from the remote
    through crypt, each seek reopening it, so random reads run at hundreds per second. "full" also
    caches what is read, so the second read of a file comes from its local copy."""
    count, rcount, files = size(args.mount_size), size(args.mount_randread_size), args.mount_files
    missing = [tool for tool in ("fio", "rclone", "fusermount3") if not shutil.which(tool)]
    if missing or not os.path.exists("/dev/fuse"):
        raise SystemExit(f"the mount benchmark needs {', '.join(missing) or '/dev/fuse'} "
                         f"(tools/install-deps --bench installs fio, rclone and fuse3)")
    base = os.path.join(work, "mount")
    for d in glob_mounts(base):  # a mount left by an interrupted run
        subprocess.run(["fusermount3", "-uz", d], capture_output=True)
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(base, mode=0o700)
    source = random_file(os.path.join(work, "mount-randread.bin"), rcount)
    fio_version = subprocess.run(["fio", "--version"], capture_output=True, text=True).stdout.strip()
    rclone_version = subprocess.run(["rclone", "version"], capture_output=True, text=True).stdout.split("\n")[0]
    results = {"size": count, "randreadSize": rcount, "randreadSeconds": args.mount_randread_seconds,
               "files": files, "replicas": args.mount_replicas, "cacheSize": args.mount_cache_size,
               "rcloneMode": args.mount_rclone_mode, "fio": fio_version, "rcloneVersion": rclone_version}
    nothing = lambda *expected: 0.0

    # a67: a fresh repository with two directory providers and the bucket.
    home, passphrase = os.path.join(base, "a67-home"), os.path.join(base, "a67-passphrase")
    write_private(passphrase, "bench passphrase\n")
    env = {k: v for k, v in os.environ.items() if k != "A67_PASSPHRASE"}
    env.update(A67_HOME=home, A67_PASSPHRASE_FILE=passphrase)
    probe = subprocess.run([A67, "mount", "--help"], env=env, capture_output=True, text=True)
    if "a67 mount" not in probe.stdout:  # a build without the command shows the general help
        results["a67"] = {"skipped": f"this build of a67 ({A67}) has no mount command"}
    else:
        print("mount: a fresh a67 repository (two directory providers) and bucket...", file=sys.stderr)
        for argv in (["init"], ["provider", "add", "p1", "--dir", os.path.join(base, "a67-p1")],
                     ["provider", "add", "p2", "--dir", os.path.join(base, "a67-p2")],
                     ["bucket", "create", "bench", "--replicas", str(args.mount_replicas)]):
            p = subprocess.run([A67, *argv], env=env, capture_output=True, text=True)
            if p.returncode != 0:
                raise SystemExit(f"a67 {' '.join(argv)} failed (exit {p.returncode}):\n{p.stderr}")
        mnt = os.path.join(base, "mnt-a67")
        cache = ["--cache-size", args.mount_cache_size] if args.mount_cache_size else []
        daemon = FuseDaemon("a67", [A67, "mount", "bench", mnt, "--foreground"] + cache, env, mnt,
                            os.path.join(base, "a67-mount.log"), [A67, "umount", mnt])
        try:
            # Its disk cache of sealed chunks ($A67_HOME/cache) outlives a mount: emptied after each stop, as
            # rclone's is, so that the read after the remount comes from the providers.
            results["a67"] = exercise(daemon, count, source, files, args.mount_randread_seconds, nothing,
                                      lambda: shutil.rmtree(os.path.join(home, "cache"), ignore_errors=True))
        except (SystemExit, OSError) as e:  # keep going: rclone's figures are still worth having
            results["a67"] = {"failed": str(e), "peakRSSMB": daemon.peak_mb()}
            print(f"mount: a67 failed: {e}", file=sys.stderr)
        finally:
            daemon.cleanup()

    # rclone: a crypt remote over a local folder on the same disk, its VFS cache beside it.
    store, cache_dir = os.path.join(base, "rclone-store"), os.path.join(base, "rclone-cache")
    os.makedirs(store)
    conf = os.path.join(base, "rclone.conf")
    obscured = subprocess.run(["rclone", "obscure", "bench passphrase"], capture_output=True, text=True,
                              check=True).stdout.strip()
    write_private(conf, f"[crypt]\ntype = crypt\nremote = {store}\npassword = {obscured}\n")
    renv = dict(os.environ, RCLONE_CONFIG=conf)
    port = free_port()
    mnt = os.path.join(base, "mnt-rclone")
    daemon = FuseDaemon("rclone", ["rclone", "mount", "crypt:", mnt, "--vfs-cache-mode", args.mount_rclone_mode,
                                         "--cache-dir", cache_dir, "--rc", "--rc-addr", f"127.0.0.1:{port}",
                                         "--rc-no-auth"],
                        renv, mnt, os.path.join(base, "rclone-mount.log"), ["fusermount3", "-u", mnt])

    def uploads_done(files, total, timeout=900):
        """rclone uploads a file written through its cache --vfs-write-back (5 s) after the kernel
        releases it, which is after close() returns, and in the background: wait until none is queued
        or in flight (its rc API's vfs/stats) and the store holds what was written (rclone size)."""
        began = time.monotonic()
        while True:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("POST", "/vfs/stats", body=b"{}", headers={"Content-Type": "application/json"})
            disk = json.loads(conn.getresponse().read()).get("diskCache", {})
            conn.close()
            held = None
            if not disk.get("uploadsInProgress") and not disk.get("uploadsQueued"):
                p = subprocess.run(["rclone", "size", "crypt:", "--json"], env=renv, capture_output=True, text=True)
                held = json.loads(p.stdout) if p.returncode == 0 else {"error": p.stderr.strip()}
                if held.get("count") == files and held.get("bytes") == total:
                    return time.monotonic() - began
            if time.monotonic() - began > timeout:
                raise SystemExit(f"rclone's store did not hold {files} files of {total} bytes {timeout} s after the "
                                 f"writes (uploads: {disk}; rclone size: {held})")
            time.sleep(0.2)

    try:
        results["rclone"] = exercise(daemon, count, source, files, args.mount_randread_seconds, uploads_done,
                                     lambda: shutil.rmtree(cache_dir, ignore_errors=True))
    finally:
        daemon.cleanup()
        if not glob_mounts(base):  # never delete through a mount still there
            shutil.rmtree(base, ignore_errors=True)
    return results


def glob_mounts(base):
    """Mount points under `base`, from the kernel's list."""
    base = os.path.realpath(base) + "/"
    with open("/proc/self/mounts") as f:
        return [line.split()[1] for line in f if len(line.split()) > 1 and line.split()[1].startswith(base)]


def mount_report(m):
    """The Markdown lines of the mount section."""
    a, r = m.get("a67", {}), m["rclone"]
    ok = "write" in a and "randread" in a and "createPerSecond" in a

    def row(measure, key, fmt, target=None, check=None):
        av = key(a) if ok else None
        rv = key(r)
        ratio = f"{av / rv:.2f}" if ok and rv else "-"
        met = "-" if not ok or check is None else ("yes" if check(av, rv) else "NO")
        return f"| {measure} | {fmt(av) if ok else '-'} | {fmt(rv)} | {ratio} | {target or ''} | {met if target else ''} |"

    whole = lambda v: f"{v:,.0f}"
    seconds = lambda v: f"{v:.1f}"
    lines = [f"### FUSE mount: a67 mount beside rclone mount (crypt), {m['size'] >> 20} MiB file", "",
             f"Both mounts in the same folder on the same disk, one after the other in the same run, each measured "
             f"once. a67: a fresh repository with two directory providers, the bucket with replicas "
             f"{m['replicas']}, `a67 mount --foreground` with "
             f"{'--cache-size ' + m['cacheSize'] if m['cacheSize'] else 'its default cache size'}, stopped with "
             f"`a67 umount`. rclone ({m['rcloneVersion']}): `rclone mount crypt: MNT --vfs-cache-mode "
             f"{m['rcloneMode']}` of a crypt remote over a local folder, stopped with `fusermount3 -u` once its "
             f"uploads were done (it uploads a closed file 5 s later, in the background). Each mount's cache is "
             f"emptied after each stop (a67's $A67_HOME/cache, rclone's --cache-dir) and the page cache dropped "
             f"before each start, so that what is read after a remount comes from the store. {m['fio']}, psync "
             f"engine, random data (--refill_buffers). fio writes the big file and the mount is stopped; a "
             f"{m['randreadSize'] >> 20} MiB random file is copied in and the mount stopped again; after the "
             f"restart fio reads the big file, the random file is read fully once (compared with its source), and "
             f"fio reads it at random in 4 KiB blocks for {m['randreadSeconds']:g} s: what the mount kept of it "
             f"(buffered, fio's default invalidate of the page cache at the start). Creates: {m['files']:,} empty "
             f"files in one folder, open(O_CREAT|O_WRONLY) and close from Python. One run of each.",
             ""]
    if "skipped" in a:
        lines += [f"a67 mount not measured: {a['skipped']}.", ""]
    elif "failed" in a:
        lines += ["a67 mount failed, so its column is empty:", "", "```", a["failed"][-2000:], "```", ""]
    lines += ["| metric | a67 | rclone | a67 / rclone | target | met? |",
              "|---|---|---|---|---|---|",
              row("sequential write MB/s (fio, 1 MiB blocks, end_fsync)", lambda x: x["write"]["MBps"], whole,
                  ">= 1.5x rclone", lambda av, rv: av >= 1.5 * rv),
              row("sequential read MB/s (fio, after a remount, page cache dropped)", lambda x: x["read"]["MBps"], whole,
                  ">= 1.2x rclone", lambda av, rv: av >= 1.2 * rv),
              row("4 KiB random reads/s of the cached file (fio randread IOPS)", lambda x: x["randread"]["iops"], whole,
                  ">= 10x rclone", lambda av, rv: av >= 10 * rv),
              row(f"empty files created/s ({m['files']:,} in one folder)", lambda x: x["createPerSecond"], whole,
                  ">= 2,000", lambda av, rv: av >= 2000),
              row("peak RSS MB of the mount process over the whole run (VmHWM)", lambda x: x["peakRSSMB"], whole,
                  "< 300 (a67)", lambda av, rv: av < 300),
              row("sequential write until stored, MB/s (fio, then the flush or uploads and the unmount)",
                  lambda x: x["writeStoredMBps"], whole),
              row(f"first read of the {m['randreadSize'] >> 20} MiB random file after the remount, MB/s",
                  lambda x: x["firstReadMBps"], whole),
              row(f"unmount after the creates, s (rclone: its uploads, then fusermount3 -u)",
                  lambda x: x["createStopSeconds"], seconds),
              f"| read back identical ({m['randreadSize'] >> 20} MiB file) | "
              f"{('yes' if a['identical'] else 'NO') if ok else '-'} | {'yes' if r['identical'] else 'NO'} | | yes | "
              f"{('yes' if a['identical'] else 'NO') if ok else '-'} |",
              "",
              "fio's own figures:",
              "",
              "| mount | job | MiB | runtime ms | MB/s | IOPS | clat µs mean / p50 / p99 | fio CPU % usr / sys | options |",
              "|---|---|---|---|---|---|---|---|---|"]
    for label, x in (("a67", a), ("rclone", r)):
        for key in ("write", "read", "randread"):
            if key in x:
                j = x[key]
                lines.append(f"| {label} | {j['job']} | {j['bytes'] >> 20} | {j['runtimeMs']} | {j['MBps']:.0f} | "
                             f"{j['iops']:,.0f} | {j['clatMeanUs']:.0f} / {j['clatP50Us']:.0f} / {j['clatP99Us']:.0f} | "
                             f"{j['usrCPU']:.0f} / {j['sysCPU']:.0f} | `{j['options']}` |")
    notes = []
    for label, x in (("a67", a), ("rclone", r)):
        if "exits" in x:
            if any(x["exits"]):
                notes.append(f"{label}'s mount processes exited with {', '.join(map(str, x['exits']))} (expected 0).")
            if x["listed"] != m["files"]:
                notes.append(f"{label}: the folder listed {x['listed']:,} files after {m['files']:,} were created.")
            if not x["pageCacheDropped"]:
                notes.append(f"{label}: the page cache could not be dropped (not root): its read may come from memory.")
    lines += [""] + ([" ".join(notes), ""] if notes else [])
    return lines


def report(args, count, inputs, ceilings, results, growth, remote_results=None, replication_results=None,
           s3_results=None, mount_results=None, deploy_results=None):
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
    if s3_results:
        lines += s3_report(s3_results)
    if mount_results:
        lines += mount_report(mount_results)
    if deploy_results:
        lines += deploy_report(deploy_results)
    text = "\n".join(lines)
    os.makedirs(os.path.join(ROOT, "bench-out"), exist_ok=True)
    with open(os.path.join(ROOT, "bench-out", "latest.md"), "w") as f:
        f.write(text + "\n")
    if args.json:
        everything = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cores": CORES,
                      "arguments": vars(args), "size": count, "ceilingInputs": inputs, "ceilings": ceilings,
                      "results": results, "growth": growth, "remote": remote_results, "replication": replication_results,
                      "s3Server": s3_results, "mount": mount_results,
                      "apps": deploy_results}
        with open(os.path.join(ROOT, "bench-out", "latest.json"), "w") as f:
            json.dump(everything, f, indent=1)
            f.write("\n")
        print(json.dumps(everything, indent=1))
    else:
        print(text)


def s3_report(s3):
    """The Markdown lines of the S3 server's section."""
    def cell(r):
        lat = r["latencyMs"]
        return " / ".join("-" if lat[p] is None else f"{lat[p]:.1f}" for p in ("p50", "p90", "p99", "max"))

    def failed(r):
        detail = ", ".join(f"{n} x {status}" for status, n in sorted(r["errors"].items()))
        return f"{r['requests'] - r['ok']} of {r['requests']}" + (f" ({detail})" if detail else "")

    o = s3["open"]
    size_text = f"{s3['objectSize'] >> 20} MiB" if s3["objectSize"] >= 1 << 20 else f"{s3['objectSize'] >> 10} KiB"
    lines = [f"### S3 server (a67 serve) on loopback: {s3['clients']} clients, {size_text} objects", "",
             f"A fresh repository with two directory providers, replicas 2; bucket made by {s3['bucketCreatedBy']}; "
             f"the server answered its health check {s3['startSeconds']:.1f} s after it started. Load from "
             f"tools/s3load.py in its own process: {s3['clients']} keep-alive connections, every PUT body distinct, "
             f"SigV4 with UNSIGNED-PAYLOAD. Open loop: requests fall due at a fixed rate and latency runs from "
             f"that time, so queueing counts. Server RSS is VmRSS sampled every 100 ms.",
             "",
             "| measure | PUT | GET | target |",
             "|---|---|---|---|",
             f"| open loop, {s3['rate']:g} req/s due for {s3['duration']:g} s: achieved req/s (MB/s) | "
             f"{o['put']['reqPerSec']:.1f} ({o['put']['MBps']:.0f}) | {o['get']['reqPerSec']:.1f} ({o['get']['MBps']:.0f}) | "
             f">= 300 |",
             f"| open loop: latency ms p50 / p90 / p99 / max | {cell(o['put'])} | {cell(o['get'])} | p99 < 100 |",
             f"| open loop: failed requests | {failed(o['put'])} | {failed(o['get'])} | 0 |",
             f"| open loop: server peak RSS MB | {o['put']['server']['maxRSSMB']:.0f} | {o['get']['server']['maxRSSMB']:.0f} "
             f"| < 300 |"]
    if "closed" in s3:
        c = s3["closed"]
        lines += [f"| closed loop, {s3['maxDuration']:g} s back to back: req/s (MB/s) | {c['put']['reqPerSec']:.1f} "
                  f"({c['put']['MBps']:.0f}) | {c['get']['reqPerSec']:.1f} ({c['get']['MBps']:.0f}) | |",
                  f"| closed loop: latency ms p50 / p90 / p99 / max | {cell(c['put'])} | {cell(c['get'])} | |",
                  f"| closed loop: failed requests | {failed(c['put'])} | {failed(c['get'])} | 0 |",
                  f"| closed loop: server peak RSS MB | {c['put']['server']['maxRSSMB']:.0f} | "
                  f"{c['get']['server']['maxRSSMB']:.0f} | < 300 |"]
    lines += [f"| load generator CPU, % of one core (open loop) | {o['put']['clientCPUPercent']:.0f} | "
              f"{o['get']['clientCPUPercent']:.0f} | |", ""]
    u = s3.get("upload")
    if u and "skipped" in u:
        lines += [f"Upload comparison skipped: {u['skipped']}.", ""]
    elif u:
        each = lambda tool: ", ".join(f"{x['MBps']:.0f}" for x in u["rounds"] if x["tool"] == tool)
        lines += [f"{u['size'] >> 20} MiB random file uploaded to the running server's repository, best of "
                  f"{len(u['rounds']) // 2} rounds, the order alternated; the file is re-stamped before each upload "
                  f"so that nothing dedupes. {u['awsVersion'].split()[0] if u['awsVersion'] else 'aws'} with its "
                  f"default multipart settings.",
                  "",
                  "| upload | MB/s (each round) | peak RSS MB of the client | target |",
                  "|---|---|---|---|",
                  f"| a67 put FILE BUCKET/KEY | {u['a67']:.0f} ({each('a67')}) | {u['a67RSSMB']:.0f} | |",
                  f"| aws s3 cp FILE s3://BUCKET/KEY --endpoint-url | {u['aws']:.0f} ({each('aws')}) | {u['awsRSSMB']:.0f} | |",
                  f"| aws / a67 | {u['ratio']:.2f} | | >= 0.70 |",
                  ""]
    lines += [f"Server peak RSS over the whole section {s3['serverRSSMB']:.0f} MB (VmHWM {s3['serverHWMMB']:.0f} MB; "
              f"{s3['loadRSSMB']:.0f} MB during the {s3['clients']}-client load); on SIGTERM it exited with "
              f"{s3['sigtermExit']} in {s3['stopSeconds']:.1f} s (target: 0).", ""]
    return lines


# MARK: - Apps: deploy time, agent memory, the app proxy against nginx (--only-deploy)

APP_SOURCE = os.path.join(ROOT, "Tests/Apps/app")  # the apps suite's test app (Python http.server, /health)

# The backend of the proxy comparison: nginx answering "ok" on the port the agent assigns. An app
# instance runs unprivileged, so nginx's prefix (its pid file and temp folders) goes to $BENCH_TMP.
BACKEND_START = """#!/bin/sh
# nginx answering "ok" on $PORT (the bench's backend); its prefix under $BENCH_TMP, writable by the instance.
set -e
prefix="$BENCH_TMP/backend-$PORT"
mkdir -p "$prefix"
sed "s/@PORT@/$PORT/" nginx.conf.in > "$prefix/nginx.conf"
exec {nginx} -p "$prefix/" -c nginx.conf -e stderr -g 'daemon off;'
"""
NGINX_COMMON = """worker_processes {workers};
error_log stderr warn;
pid nginx.pid;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  # Debian's nginx keeps its temporary files under /var/lib/nginx: here, under the prefix (-p).
  client_body_temp_path body; proxy_temp_path proxy; fastcgi_temp_path fastcgi; uwsgi_temp_path uwsgi; scgi_temp_path scgi;
{body}
}}
"""
BACKEND_SERVER = """  server { listen @PORT@; location / { default_type text/plain; return 200 "ok\\n"; } }"""
PROXY_SERVER = """  upstream backend {{ server {address}:{port}; keepalive 64; keepalive_requests 1000000; }}
  server {{
    listen 127.0.0.1:{listen};
    location / {{ proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }}
  }}"""


def proc_memory(pid):
    """VmRSS, VmHWM, RssAnon and RssFile of process `pid` in MB, from /proc/PID/status (None: gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
    except OSError:
        return None
    return {key: int(fields[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem")
            if key in fields}


def rss_by_mapping(pid, top=5):
    """The `top` mappings of process `pid` holding the most resident memory, from /proc/PID/smaps:
    (file name or [heap], [anon], ...; MB), largest first: what an RSS figure is made of."""
    totals, name = {}, None
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                fields = line.split()
                if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                    name = os.path.basename(fields[5]) if len(fields) > 5 else "[anon]"
                elif fields and fields[0] == "Rss:":
                    totals[name] = totals.get(name, 0) + int(fields[1]) / 1024
    except OSError:
        return []
    return sorted(totals.items(), key=lambda item: -item[1])[:top]


def sample_memory(pid, seconds, every=0.2):
    """The memory of process `pid` sampled for `seconds`: the median and maximum VmRSS, and VmHWM,
    RssAnon and RssFile at the end, in MB."""
    samples, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        sample = proc_memory(pid)
        if sample is None:
            raise SystemExit(f"deploy: process {pid} exited while its memory was sampled")
        samples.append(sample)
        time.sleep(every)
    rss = sorted(s["VmRSS"] for s in samples)
    last = samples[-1]
    return {"rssMB": rss[len(rss) // 2], "maxRSSMB": rss[-1], "hwmMB": last["VmHWM"], "anonMB": last.get("RssAnon"),
            "fileMB": last.get("RssFile"), "samples": len(samples), "mappings": rss_by_mapping(pid)}


def wrk_ms(text):
    """A wrk duration (850.00us, 1.23ms, 2.00s, 1.00m) in milliseconds."""
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise SystemExit(f"deploy: cannot read wrk's duration {text!r}")
    return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[m.group(2)]


def run_wrk(url, threads, connections, seconds, host=None):
    """wrk (closed loop: each connection sends its next request when the last is answered) against
    `url` with Host `host`; returns req/s, p50/p90/p99 latency in ms, and the failed requests."""
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency", "--timeout", "5s"]
    argv += ["-H", f"Host: {host}"] if host else []
    p = subprocess.run(argv + [url], capture_output=True, text=True, timeout=seconds + 60)
    if p.returncode != 0 or "Requests/sec:" not in p.stdout:
        raise SystemExit(f"deploy: {' '.join(argv + [url])} failed (exit {p.returncode}):\n{p.stdout}\n{p.stderr}")
    out = p.stdout
    percentiles = {int(m.group(1)): wrk_ms(m.group(2)) for m in re.finditer(r"^\s+(\d+)%\s+(\S+)$", out, re.M)}
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"reqPerSec": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "requests": requests,
            "p50Ms": percentiles.get(50), "p90Ms": percentiles.get(90), "p99Ms": percentiles.get(99),
            "failed": (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sockets.groups())) if sockets else 0)}


def cpu_seconds(root):
    """User and system CPU seconds of process `root` and its children so far (nginx's workers), from
    /proc/PID/stat."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == root or int(fields[1]) == root:  # fields[1]: the parent's pid
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def median(values):
    values = sorted(values)
    n = len(values)
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2


class AppsBench:
    """One run of the apps phase: a fresh repository under DIR/apps, `a67 serve` (controller and
    proxy) and two agents on loopback, and every process and folder they make, stopped and removed by
    close() whatever happened. Every app instance carries BENCH_RUN=<this run's id> in its
    environment, so that close() finds any the agents left (they outlive their agents by design)."""

    def __init__(self, work):
        self.run_id = f"{os.getpid()}-{random.getrandbits(32):08x}"
        self.base = os.path.join(os.path.abspath(work), "apps")
        shutil.rmtree(self.base, ignore_errors=True)
        os.makedirs(self.base)
        # Instances run as an unprivileged user (when the agent is root) and must reach their releases.
        os.chmod(self.base, 0o711)
        folder = os.path.dirname(self.base)
        while folder != "/":
            if not os.stat(folder).st_mode & 0o001:
                raise SystemExit(f"deploy: {folder} is not searchable by other users, and app instances run unprivileged: "
                                 f"give --dir a folder under /var/tmp (the default) or chmod o+x {folder}")
            folder = os.path.dirname(folder)
        self.tmp = os.path.join(self.base, "tmp")  # the backend nginx's prefix, written by the instance's user
        os.makedirs(self.tmp)
        os.chmod(self.tmp, 0o1777)
        passphrase = os.path.join(self.base, "passphrase")
        write_private(passphrase, "bench passphrase\n")
        self.env = {k: v for k, v in os.environ.items() if k != "A67_PASSPHRASE"}
        self.env.update(A67_HOME=os.path.join(self.base, "home"), A67_PASSPHRASE_FILE=passphrase)
        self.agent_env = {k: v for k, v in os.environ.items() if not k.startswith("A67_")}
        self.children = []  # (label, Popen), stopped in reverse order
        self.logs = []
        self.apps = []
        self.agents = {}  # name -> Popen
        self.allocations = set()  # the instances' IDs: their cgroups are removed at the end if an agent left them
        self.serve, self.port, self.url = None, None, None

    def log(self, name):
        log = open(os.path.join(self.base, name), "ab")
        self.logs.append(log)
        return log

    def spawn(self, label, argv, env, log_name):
        # Its own session: a Ctrl-C reaches only this script, which then stops everything in order.
        process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=self.log(log_name),
                                   stderr=subprocess.STDOUT, start_new_session=True)
        self.children.append((label, process))
        return process

    def a67(self, *argv, check=True, timeout=300):
        p = subprocess.run([A67, *map(str, argv)], env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise SystemExit(f"deploy: a67 {' '.join(map(str, argv))} failed (exit {p.returncode}):\n{p.stdout}{p.stderr}\n"
                             f"a67 serve's log:\n{log_tail(os.path.join(self.base, 'serve.log'))}")
        return p

    def json(self, *argv):
        return json.loads(self.a67(*argv, "--json").stdout)

    def wait(self, what, check, seconds=90, every=0.2):
        end, last = time.monotonic() + seconds, None
        while time.monotonic() < end:
            for name, process in [("a67 serve", self.serve)] + [(f"agent {n}", p) for n, p in self.agents.items()]:
                if process is not None and process.poll() is not None:
                    log = "serve.log" if process is self.serve else f"agent-{name.split()[1]}.log"
                    raise SystemExit(f"deploy: {name} exited with {process.returncode} while waiting for {what}:\n"
                                     f"{log_tail(os.path.join(self.base, log))}")
            last = check()
            if last:
                return last
            time.sleep(every)
        raise SystemExit(f"deploy: {what} did not happen within {seconds} s (last: {last!r:.300})")

    def start_serve(self):
        self.a67("init")
        self.a67("provider", "add", "disk", "--dir", os.path.join(self.base, "provider"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.serve = self.spawn("a67 serve", [A67, "serve", "--listen", f"127.0.0.1:{self.port}", "--node-heartbeat", "1s",
                                              "--repair-every", "off", "--gc-every", "off"], self.env, "serve.log")
        wait_until_serving(self.serve, self.port, os.path.join(self.base, "serve.log"))

    def start_agent(self, name):
        """Joins a fresh agent NAME (label bench=NAME, its own data folder) and runs it until ready."""
        data = os.path.join(self.base, f"agent-{name}")
        token_file = os.path.join(self.base, f"{name}.token")
        write_private(token_file, self.json("node", "token", "create", "--ttl", "10m")["token"] + "\n")
        p = subprocess.run([A67, "agent", "join", self.url, "--token-file", token_file, "--name", name, "--label",
                            f"bench={name}", "--data", data], env=self.agent_env, capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            raise SystemExit(f"deploy: a67 agent join failed (exit {p.returncode}):\n{p.stdout}{p.stderr}")
        os.remove(token_file)
        agent = self.spawn(f"agent {name}", [A67, "agent", "run", "--data", data, "--heartbeat", "1s"], self.agent_env,
                           f"agent-{name}.log")
        self.agents[name] = agent
        self.wait(f"agent {name} ready", lambda: any(n["name"] == name and n["state"] == "ready" and n.get("lastSeen")
                                                     for n in self.json("node", "ls")))
        return agent

    def app_folder(self, name, node, instances=1, files=None, manifest=None):
        """A copy of the apps suite's test app as app NAME, placed on agent NODE, with `files` added
        (relative path -> bytes); or, with `manifest`, just that a67app.toml and `files`."""
        folder = os.path.join(self.base, "apps", f"{name}-{time.monotonic_ns()}")
        if manifest is None:
            shutil.copytree(APP_SOURCE, folder)
            with open(os.path.join(folder, "a67app.toml")) as f:
                toml = f.read()
            toml = (toml.replace('name = "web"', f'name = "{name}"').replace("instances = 2", f"instances = {instances}")
                    .replace('env = { GREETING = "hi" }', f'env = {{ GREETING = "hi", BENCH_RUN = "{self.run_id}" }}')
                    .replace('healthy_deadline = "10s"', 'healthy_deadline = "60s"'))
            manifest = toml + f'\n[constraints]\nlabels = {{ bench = "{node}" }}\n'
        else:
            os.makedirs(folder)
        with open(os.path.join(folder, "a67app.toml"), "w") as f:
            f.write(manifest)
        for relative, data in (files or {}).items():
            path = os.path.join(folder, relative)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
        return folder

    def deploy(self, folder):
        """`a67 app deploy FOLDER --json`: its summary (storedSeconds: the version stored and its
        deployment recorded; healthySeconds: the first instance of it healthy, as the command saw) and
        the whole command's wall time (until the rolling update ended)."""
        began = time.monotonic()
        p = self.a67("app", "deploy", folder, "--json", check=False)
        wall = time.monotonic() - began
        summary = json.loads(p.stdout) if p.stdout.strip().startswith("{") else None
        if summary and summary["app"] not in self.apps:
            self.apps.append(summary["app"])
        if p.returncode != 0 or not summary or summary.get("deployment") != "succeeded":
            name = summary["app"] if summary else os.path.basename(folder).rsplit("-", 1)[0]
            status = self.a67("app", "status", name, check=False)
            raise SystemExit(f"deploy: a67 app deploy {folder} failed (exit {p.returncode}):\n{p.stdout}{p.stderr}\n"
                             f"a67 app status {name}:\n{status.stdout}{status.stderr}\n"
                             f"a67 serve's log:\n{log_tail(os.path.join(self.base, 'serve.log'))}\n"
                             + "".join(f"agent {n}'s log:\n{log_tail(os.path.join(self.base, f'agent-{n}.log'))}\n" for n in self.agents))
        return {"version": summary["version"], "bytes": summary["bytes"], "chunks": summary["chunks"],
                "newChunks": summary["newChunks"], "storedSeconds": summary["storedSeconds"],
                "healthySeconds": summary.get("healthySeconds"), "wallSeconds": wall}

    def healthy(self, app):
        instances = self.json("app", "status", app)["instances"]
        self.allocations.update(i["id"] for i in instances)
        return [i for i in instances if i["healthy"] and i["desired"] == "run"]

    def remove_apps(self, seconds=60):
        """`a67 app rm` of every app deployed, then waits until the controller has removed them (their
        instances stopped by their agents)."""
        for app in self.apps:
            status = self.a67("app", "status", app, "--json", check=False, timeout=60)
            if status.returncode == 0:
                self.allocations.update(i["id"] for i in json.loads(status.stdout)["instances"])
            self.a67("app", "rm", app, check=False, timeout=60)
        self.wait("the apps removed", lambda: not any(a["name"] in self.apps for a in self.json("app", "ls")), seconds)
        self.apps = []

    def marked_processes(self):
        """The pids of this run's app instances: those whose environment holds its BENCH_RUN, and the
        backend's nginx master, whose title (which overwrites its environment) names its prefix under
        this run's folder (its workers share its process group)."""
        mark, prefix, pids = f"BENCH_RUN={self.run_id}".encode(), self.tmp.encode() + b"/", []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != os.getpid():
                try:
                    with open(f"/proc/{entry}/environ", "rb") as f:
                        environment = f.read().split(b"\0")
                    with open(f"/proc/{entry}/cmdline", "rb") as f:
                        title = f.read()
                except OSError:
                    continue
                if mark in environment or prefix in title:
                    pids.append(int(entry))
        return pids

    def close(self):
        """Stops everything this run started, in order (apps, our nginx, agents, serve), then kills any
        instance left (found by its BENCH_RUN mark) and removes the folder. Returns the number of
        instance processes that were still running after the orderly stop (0 when all went well)."""
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C does not cut the cleanup short
        try:
            if self.apps and self.serve and self.serve.poll() is None:
                try:
                    self.remove_apps(seconds=30)
                except (SystemExit, Exception) as e:  # noqa: BLE001  (cleanup goes on)
                    print(f"deploy: removing the apps: {e}", file=sys.stderr)
            for label, process in reversed(self.children):
                if process.poll() is None:
                    try:
                        os.killpg(process.pid, signal.SIGTERM)
                        process.wait(30)
                    except (subprocess.TimeoutExpired, ProcessLookupError):
                        try:
                            os.killpg(process.pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                        process.wait()
            left = self.marked_processes()
            for pid in left:
                for kill in (lambda: os.killpg(os.getpgid(pid), signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
                    try:
                        kill()
                    except OSError:
                        pass
            if left:
                print(f"deploy: killed {len(left)} app process(es) left running", file=sys.stderr)
                time.sleep(0.5)
            # The instances' cgroups (the agent removes each when it stops the instance; not when killed).
            for allocation in self.allocations:
                for hierarchy in ("memory/a67", "cpu/a67", "cpu,cpuacct/a67", "a67"):
                    try:
                        os.rmdir(f"/sys/fs/cgroup/{hierarchy}/{allocation}")
                    except OSError:
                        pass
            for log in self.logs:
                log.close()
            shutil.rmtree(self.base, ignore_errors=True)
            return len(left)
        finally:
            signal.signal(signal.SIGINT, previous)


def deploy_bench(work, args):
    """The compute half's targets, in one run on loopback: seconds from `a67 app deploy` to the first
    healthy instance (cold on a fresh agent, then the same bundle again and a one-file change) for a
    small and a 20 MiB app; the agent's memory idle and with 10 instances; and the app proxy in
    `a67 serve` against nginx as a reverse proxy to the same backend instance (wrk)."""
    for program in ("nginx", "wrk"):
        if not shutil.which(program):
            raise SystemExit(f"deploy: {program} is not installed: run tools/install-deps --bench")
    if args.deploy_rounds < 1:
        raise SystemExit("deploy: --deploy-rounds must be at least 1 with --only-deploy")
    nginx = shutil.which("nginx")
    bench = AppsBench(work)
    def interrupted(signum, frame):
        raise KeyboardInterrupt  # so that the finally below stops everything
    previous_term = signal.signal(signal.SIGTERM, interrupted)
    results = {"rounds": args.deploy_rounds, "loadSeconds": args.deploy_seconds, "latencySeconds": args.deploy_latency_seconds}
    began = time.monotonic()
    try:
        print("deploy: a fresh repository, a67 serve and two fresh agents on loopback...", file=sys.stderr)
        bench.start_serve()
        agents = {name: bench.start_agent(name) for name in ("a", "b")}
        time.sleep(3)  # a few heartbeats and long polls: the agents' steady idle state
        print("deploy: the agents' memory, idle...", file=sys.stderr)
        memory = {"idleA": sample_memory(agents["a"].pid, 3), "idleB": sample_memory(agents["b"].pid, 3)}
        memory["versionPeakMB"] = run([A67, "--version"])[1]
        memory["binaryMB"] = os.path.getsize(os.path.realpath(A67)) / 2**20

        deploys = {}
        pages = {f"assets/page-{i:03}.bin": os.urandom(200_000) for i in range(105)}  # 21 MB, incompressible
        for size, node, files in (("small", "a", {}), ("big", "b", pages)):
            name = f"{size}app"
            folder = bench.app_folder(name, node, files=files)
            rows = {}
            print(f"deploy: {name} cold (agent {node} fresh: the bundle is fetched)...", file=sys.stderr)
            rows["cold"] = bench.deploy(folder)
            print(f"deploy: {name} again, the same bundle as a new version...", file=sys.stderr)
            rows["same"] = bench.deploy(folder)
            changed = dict(files, **{"version.txt": b"2\n"}) if size == "small" else dict(files, **{"assets/page-037.bin": os.urandom(200_000)})
            print(f"deploy: {name} with one file changed...", file=sys.stderr)
            rows["oneFile"] = bench.deploy(bench.app_folder(name, node, files=changed))
            deploys[size] = rows
        results["deploys"] = deploys

        print("deploy: smallapp scaled to 10 instances on agent a...", file=sys.stderr)
        bench.a67("app", "scale", "smallapp", "10")
        bench.wait("10 healthy instances of smallapp", lambda: len(bench.healthy("smallapp")) >= 10, seconds=120)
        time.sleep(2)
        memory["tenInstances"] = sample_memory(agents["a"].pid, 5)
        memory["instanceRSSMB"] = median([proc_memory(pid)["VmRSS"] for pid in bench.marked_processes()
                                          if proc_memory(pid)] or [0])
        results["memory"] = memory
        print("deploy: removing the apps...", file=sys.stderr)
        bench.remove_apps()

        print("deploy: the backend (nginx answering ok, as an app instance on agent a)...", file=sys.stderr)
        manifest = "\n".join([
            'name = "backend"', 'command = ["/bin/sh", "start.sh"]', "instances = 1",
            f'env = {{ BENCH_TMP = "{bench.tmp}", BENCH_RUN = "{bench.run_id}" }}', "",
            "[health]", 'http = "/health"', 'interval = "1s"', "",
            "[resources]", 'memory = "256M"', f"cpu = {CORES}", "",  # the whole machine: no CPU quota in the way
            "[constraints]", 'labels = { bench = "a" }', ""])
        backend_folder = bench.app_folder("backend", "a", manifest=manifest, files={
            "start.sh": BACKEND_START.format(nginx=nginx).encode(),
            "nginx.conf.in": NGINX_COMMON.format(workers=CORES, body=BACKEND_SERVER).encode()})
        results["backendDeploy"] = bench.deploy(backend_folder)
        instance = bench.healthy("backend")[0]
        address = next((n.get("address") for n in bench.json("node", "ls") if n["name"] == instance["node"]), None) or "127.0.0.1"
        address = address.rsplit(":", 1)[0] if address.count(":") == 1 else address

        proxy_port = free_port()
        proxy_dir = os.path.join(bench.base, "nginx-proxy")
        os.makedirs(proxy_dir)
        with open(os.path.join(proxy_dir, "nginx.conf"), "w") as f:
            f.write(NGINX_COMMON.format(workers=CORES, body=PROXY_SERVER.format(address=address, port=instance["port"],
                                                                                listen=proxy_port)))
        proxy = bench.spawn("nginx (proxy)", [nginx, "-p", proxy_dir + "/", "-c", "nginx.conf", "-e", "stderr", "-g", "daemon off;"],
                            dict(os.environ, BENCH_RUN=bench.run_id), "nginx-proxy.log")
        targets = [("direct", f"http://{address}:{instance['port']}/", None),
                   ("nginx", f"http://127.0.0.1:{proxy_port}/", None),
                   ("a67", f"http://127.0.0.1:{bench.port}/", "backend.apps.local")]
        # Whose CPU each path's requests cost: the proxy's (nginx's master and workers, or a67 serve), and the
        # backend's (the instance's nginx, found by its mark).
        backend_master = min(pid for pid in bench.marked_processes()  # the master (its workers lost the mark)
                             if os.path.basename(os.readlink(f"/proc/{pid}/exe")) == "nginx")
        proxy_of = {"direct": None, "nginx": proxy.pid, "a67": bench.serve.pid}

        def answered(url, host):
            parsed = urllib.parse.urlsplit(url)
            try:
                conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=2)
                conn.request("GET", "/", headers={"Host": host} if host else {})
                reply = conn.getresponse()
                body = reply.read()
                conn.close()
                return reply.status == 200 and body == b"ok\n"
            except OSError:
                return False

        for label, url, host in targets:
            if proxy.poll() is not None:
                raise SystemExit(f"deploy: nginx (proxy) exited with {proxy.returncode}:\n"
                                 f"{log_tail(os.path.join(bench.base, 'nginx-proxy.log'))}")
            bench.wait(f"{label} answering ok", lambda: answered(url, host), seconds=30)
            run_wrk(url, 1, 8, 1, host)  # warm up: connections, caches
        rounds = []
        for r in range(args.deploy_rounds):
            order = targets[r % 3:] + targets[:r % 3]
            for label, url, host in order:
                print(f"deploy: round {r + 1}, {label}: wrk 2 threads 64 connections {args.deploy_seconds:g} s, "
                      f"then 1 connection {args.deploy_latency_seconds:g} s...", file=sys.stderr)
                proxy_pid = proxy_of[label]
                cpu_before = (cpu_seconds(proxy_pid) if proxy_pid else 0, cpu_seconds(backend_master))
                load = run_wrk(url, 2, 64, args.deploy_seconds, host)
                load["proxyCPUMicros"] = ((cpu_seconds(proxy_pid) - cpu_before[0]) / load["requests"] * 1e6) if proxy_pid else 0
                load["backendCPUMicros"] = (cpu_seconds(backend_master) - cpu_before[1]) / load["requests"] * 1e6
                single = run_wrk(url, 1, 1, args.deploy_latency_seconds, host)
                rounds.append({"round": r + 1, "path": label, "load": load, "single": single})
        summary = {}
        for label, _, _ in targets:
            mine = [x for x in rounds if x["path"] == label]
            summary[label] = {"reqPerSec": median([x["load"]["reqPerSec"] for x in mine]),
                              "loadP99Ms": median([x["load"]["p99Ms"] for x in mine]),
                              "singleP50Ms": median([x["single"]["p50Ms"] for x in mine]),
                              "singleP99Ms": median([x["single"]["p99Ms"] for x in mine]),
                              "failed": sum(x["load"]["failed"] + x["single"]["failed"] for x in mine),
                              "proxyCPUMicros": median([x["load"]["proxyCPUMicros"] for x in mine]),
                              "backendCPUMicros": median([x["load"]["backendCPUMicros"] for x in mine]),
                              "eachReqPerSec": [x["load"]["reqPerSec"] for x in mine]}
        per_round = [next(x for x in rounds if x["round"] == r + 1 and x["path"] == "a67")["load"]["reqPerSec"]
                     / next(x for x in rounds if x["round"] == r + 1 and x["path"] == "nginx")["load"]["reqPerSec"]
                     for r in range(args.deploy_rounds)]
        results["proxy"] = {"rounds": rounds, "summary": summary, "address": address, "workers": CORES,
                            "ratio": summary["a67"]["reqPerSec"] / summary["nginx"]["reqPerSec"],
                            "ratioPerRound": per_round,
                            "addedP99Ms": {p: summary[p]["singleP99Ms"] - summary["direct"]["singleP99Ms"] for p in ("nginx", "a67")},
                            "addedLoadP99Ms": {p: summary[p]["loadP99Ms"] - summary["direct"]["loadP99Ms"] for p in ("nginx", "a67")}}
        memory["endHWMMB"] = proc_memory(agents["a"].pid)["VmHWM"]
        results["elapsedSeconds"] = time.monotonic() - began
    finally:
        left = bench.close()
        signal.signal(signal.SIGTERM, previous_term)
    results["leftRunning"] = left
    return results


def deploy_report(d):
    """The Markdown lines of the apps section."""
    def row(label, x, size):
        bundle = f"{x['bytes'] / 2**20:.1f} MiB" if x["bytes"] >= 1 << 20 else f"{x['bytes'] / 1024:.0f} KiB"
        return (f"| {size}, {label} | {bundle}, {x['chunks']} chunk(s), {x['newChunks']} new | "
                f"{x['storedSeconds']:.2f} | {x['healthySeconds']:.2f} | {x['wallSeconds']:.2f} | < 5 / < 30 |")

    labels = {"cold": "cold (fresh agent: bundle fetched)", "same": "same bundle, new version (release held)",
              "oneFile": "one file changed (chunks cached)"}
    lines = ["### Apps: deploy time, agent memory, proxy vs nginx", "",
             "a67 serve (controller and proxy, `--node-heartbeat 1s`) and two agents (`a67 agent run --heartbeat 1s`, "
             "each joined fresh with its own data folder) on loopback; a fresh repository with one directory provider. "
             "The apps are Tests/Apps/app (Python http.server; health check GET /health every 1 s), one instance, "
             "pinned to an agent by a label; the big one has 105 random files of 200 kB beside it. Deployment start: "
             "`a67 app deploy` from its start until the version is stored and its deployment recorded (`storedSeconds`); "
             "first healthy: until `a67 app status` shows an instance of it healthy (`healthySeconds`, polled every 0.2 s); "
             "whole command: until the rolling update ended (the old instance stopped after min_healthy_time 1 s).", "",
             "| deploy | bundle | deployment start s | first healthy s | whole command s | target (start / running) |",
             "|---|---|---|---|---|---|"]
    for size, name in (("small", "small app"), ("big", "20 MiB app")):
        for key in ("cold", "same", "oneFile"):
            lines.append(row(labels[key], d["deploys"][size][key], name))
    m = d["memory"]

    def mem(x):
        return f"| {x['rssMB']:.1f} (max {x['maxRSSMB']:.1f}) | {x['hwmMB']:.1f} | {x['anonMB']:.1f} / {x['fileMB']:.1f} |"

    lines += ["", "Agent memory, from /proc/PID/status of the `a67 agent run` process (MB; RSS the median of samples "
              "every 0.2 s; anon / file: RssAnon, the heap and stacks, against RssFile, the mapped binary and libraries):", "",
              "| agent | VmRSS | VmHWM | anon / file | goal |", "|---|---|---|---|---|",
              f"| agent a, idle after joining {mem(m['idleA'])} <= 15 |",
              f"| agent b, idle after joining {mem(m['idleB'])} <= 15 |",
              f"| agent a, 10 instances running (each about {m['instanceRSSMB']:.0f} MB) {mem(m['tenInstances'])} |",
              f"| `a67 --version` (peak RSS, GNU time) | {m['versionPeakMB']:.1f} | | | |", "",
              f"Agent a's VmHWM at the end of the phase: {m['endHWMMB']:.1f} MB. The a67 binary is {m['binaryMB']:.0f} MiB. "
              f"Largest resident mappings of agent a, idle: "
              + ", ".join(f"{name} {mb:.1f} MB" for name, mb in m["idleA"]["mappings"]) + ".", ""]
    p = d["proxy"]
    s = p["summary"]
    each = lambda path: ", ".join(f"{x:.0f}" for x in s[path]["eachReqPerSec"])
    lines += [f"The app proxy against nginx as a reverse proxy (`upstream` with `keepalive 64`, HTTP/1.1, "
              f"{p['workers']} workers) to the same backend, nginx answering `ok` ({p['workers']} workers) as an app "
              f"instance on agent a (no CPU quota), at {p['address']}. wrk in closed loop, 2 threads and 64 connections for "
              f"{d['loadSeconds']:g} s (req/s, p99), then 1 connection for {d['latencySeconds']:g} s (one request at a time: "
              f"latency without queueing, wrk --latency's percentiles); the three paths interleaved, the order rotated "
              f"each round, {d['rounds']} rounds, medians. Every client, proxy and backend shares the machine's {CORES} cores.", "",
              "| path | req/s, 64 connections (each round) | p99 ms, 64 connections | p50 / p99 ms, 1 connection | "
              "CPU µs per request: proxy / backend | failed |",
              "|---|---|---|---|---|---|"]
    for path, label in (("direct", "direct to the backend"), ("nginx", "through nginx"), ("a67", "through a67 serve (Host backend.apps.local)")):
        x = s[path]
        lines.append(f"| {label} | {x['reqPerSec']:.0f} ({each(path)}) | {x['loadP99Ms']:.2f} | "
                     f"{x['singleP50Ms']:.2f} / {x['singleP99Ms']:.2f} | "
                     f"{'-' if path == 'direct' else format(x['proxyCPUMicros'], '.0f')} / {x['backendCPUMicros']:.0f} | {x['failed']} |")
    lines += ["", "| measure | a67 | nginx | goal |", "|---|---|---|---|",
              f"| req/s, a67 / nginx (median of rounds; each round's ratio) | {p['ratio']:.2f} "
              f"({', '.join(f'{r:.2f}' for r in p['ratioPerRound'])}) | | >= 0.70 |",
              f"| added p99 ms over direct, 1 connection | {p['addedP99Ms']['a67']:.2f} | {p['addedP99Ms']['nginx']:.2f} | < 2 |",
              f"| added p99 ms over direct, 64 connections | {p['addedLoadP99Ms']['a67']:.2f} | {p['addedLoadP99Ms']['nginx']:.2f} | |",
              "", f"The phase took {d['elapsedSeconds']:.0f} s; app processes still running after the orderly stop "
              f"(then killed): {d['leftRunning']}.", ""]
    return lines


if __name__ == "__main__":
    main()

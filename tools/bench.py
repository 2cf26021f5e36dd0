"""tools/bench: a67 put/get throughput and peak RSS, beside this machine's ceiling and restic.

Everything is measured in the same run, because these machines are shared and noisy: only the
ratios are meaningful. Run it through tools/bench, which installs and builds first.
"""
import argparse, json, os, random, re, shutil, subprocess, sys, time
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
A67 = os.path.join(ROOT, ".build/release/a67")
CORES = os.cpu_count() or 1


def size(text):
    m = re.fullmatch(r"(\d+)([KMG]?)", text.upper())
    if not m:
        raise SystemExit(f"cannot read {text!r} as a size: write 512M, 1G or 4G")
    return int(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[m.group(2)]


def run(cmd, env=None, stdin=None):
    """Runs cmd under /usr/bin/time; returns (seconds, peak RSS in MB, stdout). Dirty pages left by
    the previous step are flushed first, so that no command pays for another's writeback."""
    os.sync()
    start = time.monotonic()
    p = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, env=env, stdin=stdin, capture_output=True, text=True)
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


def make_files(work, count):
    rand = os.path.join(work, "random.bin")
    text = os.path.join(work, "text.bin")
    if not os.path.exists(rand) or os.path.getsize(rand) != count:
        with open(rand, "wb") as f:
            left = count
            while left:
                n = min(left, 64 << 20)
                f.write(os.urandom(n))
                left -= n
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


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="1G", help="size of each test file (default 1G)")
    parser.add_argument("--big", default="4G", help="size of the stream for the RSS growth check (default 4G; 0 skips)")
    parser.add_argument("--dir", default="/var/tmp/a67-bench", help="working folder (needs 3x --size free)")
    args = parser.parse_args()
    count, big = size(args.size), size(args.big)
    work = args.dir
    os.makedirs(work, exist_ok=True)
    files = make_files(work, count)

    print("measuring this machine's ceiling...", file=sys.stderr)
    sha, aes = openssl_speed("sha256"), openssl_speed("aes-256-gcm")
    disk = disk_write(work)
    ceilings = {}
    for kind, path in files.items():
        sample = os.path.join(work, f"sample-{kind}.bin")
        with open(path, "rb") as src, open(sample, "wb") as dst:
            dst.write(src.read(64 << 20))
        zc, zd = zstd_speeds(sample, 3)
        os.remove(sample)
        cpu_put = CORES / (1 / sha + 1 / zc + 1 / aes)
        cpu_get = CORES / (1 / sha + 1 / aes + 1 / zd)
        ceilings[kind] = {"zstdCompress": zc, "zstdDecompress": zd, "cpuPut": cpu_put, "cpuGet": cpu_get,
                          "put": min(cpu_put, disk), "get": min(cpu_get, disk)}

    results = {}
    for kind, path in files.items():
        print(f"a67 and restic on {kind}...", file=sys.stderr)
        home = os.path.join(work, "home")
        providers = os.path.join(work, "provider")
        out = os.path.join(work, "out.bin")
        for d in (home, providers):
            shutil.rmtree(d, ignore_errors=True)
        env = dict(os.environ, A67_HOME=home, A67_PASSPHRASE="bench passphrase")
        subprocess.run([A67, "init"], env=env, check=True, capture_output=True)
        subprocess.run([A67, "provider", "add", "disk", "--dir", providers], env=env, check=True, capture_output=True)
        subprocess.run([A67, "bucket", "create", "bench", "--replicas", "1"], env=env, check=True, capture_output=True)
        put_s, put_rss, _ = run([A67, "put", path, "bench/first"], env)
        again_s, again_rss, again_out = run([A67, "put", path, "bench/second", "--json"], env)
        new_chunks = json.loads(again_out)["newChunks"]
        get_s, get_rss, _ = run([A67, "get", "bench/first", out], env)
        identical = subprocess.run(["cmp", "-s", path, out]).returncode == 0
        os.remove(out)

        repo = os.path.join(work, "restic")
        restore = os.path.join(work, "restore")
        password = os.path.join(work, "restic-password")
        for d in (repo, restore):
            shutil.rmtree(d, ignore_errors=True)
        with open(password, "w") as f:
            f.write("bench passphrase\n")
        renv = dict(os.environ, RESTIC_REPOSITORY=repo, RESTIC_PASSWORD_FILE=password, RESTIC_CACHE_DIR=os.path.join(work, "restic-cache"))
        subprocess.run(["restic", "init"], env=renv, check=True, capture_output=True)
        rb_s, _, _ = run(["restic", "backup", "--quiet", path], renv)
        rr_s, _, _ = run(["restic", "restore", "latest", "--target", restore], renv)
        shutil.rmtree(restore, ignore_errors=True)
        shutil.rmtree(repo, ignore_errors=True)
        shutil.rmtree(providers, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)
        results[kind] = {"put": mbps(count, put_s), "putRSS": put_rss, "get": mbps(count, get_s), "getRSS": get_rss,
                         "dedupePutSeconds": again_s, "putSeconds": put_s, "dedupeNewChunks": new_chunks,
                         "identical": identical, "resticBackup": mbps(count, rb_s), "resticRestore": mbps(count, rr_s)}

    growth = None
    if big:
        print(f"peak RSS for a {args.big} stream...", file=sys.stderr)
        home, providers = os.path.join(work, "home"), os.path.join(work, "provider")
        env = dict(os.environ, A67_HOME=home, A67_PASSPHRASE="bench passphrase")
        subprocess.run([A67, "init"], env=env, check=True, capture_output=True)
        subprocess.run([A67, "provider", "add", "disk", "--dir", providers], env=env, check=True, capture_output=True)
        subprocess.run([A67, "bucket", "create", "bench", "--replicas", "1"], env=env, check=True, capture_output=True)
        source = subprocess.Popen(["head", "-c", str(big), "/dev/urandom"], stdout=subprocess.PIPE)
        _, big_put_rss, _ = run([A67, "put", "-", "bench/big"], env, stdin=source.stdout)
        source.wait()
        _, big_get_rss, _ = run([A67, "get", "bench/big", "/dev/null"], env)
        shutil.rmtree(providers, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)
        growth = {"putRSS": big_put_rss, "getRSS": big_get_rss}

    report(args, count, sha, aes, disk, ceilings, results, growth)


def report(args, count, sha, aes, disk, ceilings, results, growth):
    lines = [f"## tools/bench, {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
             "",
             f"Machine: {CORES} cores; files of {args.size}; one directory provider; zstd level 3.",
             f"Ceiling inputs: SHA-256 {sha/1e6:.0f} MB/s, AES-256-GCM {aes/1e6:.0f} MB/s (openssl speed, one core), "
             f"disk write {disk/1e6:.0f} MB/s (dd conv=fdatasync).",
             ""]
    for kind in results:
        c, r = ceilings[kind], results[kind]
        lines += [f"### {kind}", "",
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
    text = "\n".join(lines)
    print(text)
    os.makedirs(os.path.join(ROOT, "bench-out"), exist_ok=True)
    with open(os.path.join(ROOT, "bench-out", "latest.md"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()

"""The real-mount suite for `a67 mount`: the kernel's FUSE driver, real programs, one repository.

The session fixture `repo` makes a repository in a temporary folder (two local providers p1 and p2)
and gives the tests the CLI (`repo.a67`), fresh buckets and mounts. A mount is either started in the
background (`a67 mount BUCKET DIR` returns once it is live) or in the foreground under Popen (live when
os.path.ismount says so and a lookup gets an answer, polled against a deadline); `a67 umount DIR` ends
both and must exit 0.

Nothing is left mounted: every mount the suite starts is registered, unmounted by its context manager
(checked when the test passed), and at worst lazily detached with `fusermount3 -uz` and its server
killed (by process id: only processes this suite started) in teardown. A test that runs past
TEST_DEADLINE seconds gets its mount servers killed, which turns a hung file system call into an error
(ENOTCONN) and the hang into a failure that says so, instead of holding the run until tools/test's timeout.

The passphrase reaches a67 through a file (A67_PASSPHRASE_FILE), never a command line. Tests run as
root; the permission tests switch to uid/gid 65534 (nobody) in a child process.

Run: sudo A67_BIN=.build/debug/a67 python3 -m pytest -x -q Tests/Mount
"""

import contextlib
import errno
import faulthandler
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from a67testing import parse_json, run_a67, sha256_file, unique_bucket  # noqa: E402,F401  (Tests/a67testing.py)

REPO = Path(__file__).resolve().parents[2]
A67_BIN = os.environ.get("A67_BIN", str(REPO / ".build/debug/a67"))
PASSPHRASE = "mount suite passphrase"
KiB = 1024
MiB = 1024 * KiB
CHUNK = 5 * MiB  # the repository's chunk size: files that cross it exercise more than one chunk
MOUNT_DEADLINE = 30  # seconds for a mount to become live
UMOUNT_DEADLINE = 120  # seconds for `a67 umount` (it flushes what is still buffered)
VISIBLE_DEADLINE = 2  # seconds for a change made with the CLI to show in a live mount
TEST_DEADLINE = int(os.environ.get("A67_MOUNT_TEST_DEADLINE", "300"))
NOBODY = 65534
INSTALL_HINT = {
    "fusermount3": "apt-get install fuse3",
    "git": "apt-get install git",
    "rsync": "apt-get install rsync",
    "tar": "apt-get install tar",
    "diff": "apt-get install diffutils",
}


def which(name):
    """A program from PATH; missing is a failure (tools/install-deps --test installs them), never a skip."""
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: {INSTALL_HINT.get(name, 'install it')} "
                    "(tools/install-deps --test installs what this suite needs)", pytrace=False)
    return found


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def wait_for(predicate, what, deadline=VISIBLE_DEADLINE, interval=0.05):
    """Polls `predicate` until it returns something truthy (which is returned) or `deadline` seconds pass
    (a failure naming `what` and the last value or exception)."""
    end = time.monotonic() + deadline
    last = None
    while True:
        try:
            last = predicate()
            if last:
                return last
        except OSError as e:
            last = e
        if time.monotonic() >= end:
            pytest.fail(f"{what}: not within {deadline} s (last: {last!r})", pytrace=False)
        time.sleep(interval)


def expect_errno(expected, call, *args, **kwargs):
    """Runs call(*args) and asserts that it raises OSError with errno `expected` (one value or a tuple)."""
    allowed = expected if isinstance(expected, tuple) else (expected,)
    names = "/".join(errno.errorcode.get(e, str(e)) for e in allowed)
    try:
        result = call(*args, **kwargs)
    except OSError as e:
        assert e.errno in allowed, (f"{getattr(call, '__name__', call)}{args}: expected {names}, "
                                    f"got {errno.errorcode.get(e.errno, e.errno)} ({e})")
        return e
    pytest.fail(f"{getattr(call, '__name__', call)}{args}: expected {names}, but it succeeded ({result!r})",
                pytrace=False)


# --- the mount table and the processes behind a mount ---

def _unescape_mountinfo(field):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def resolved(path):
    """`path` with its parent folder resolved, without touching `path` itself: a stat of a mount point
    whose server hangs would hang too (os.path.realpath stats every component)."""
    path = os.path.abspath(path)
    return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))


def mount_entry(path):
    """The line of /proc/self/mountinfo for mount point `path` as (major:minor, fstype), or None. Unlike
    os.path.ismount this sees a stale FUSE mount (whose stat fails with ENOTCONN) too, and it never
    waits for the mount's server."""
    target = resolved(path)
    found = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if _unescape_mountinfo(fields[4]) == target:
                fstype = fields[fields.index("-") + 1]
                found = (fields[2], fstype)  # the last one wins: mounts stack
    return found


def in_mount_table(path):
    return mount_entry(path) is not None


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return None


def _exe(pid):
    try:
        return os.path.realpath(f"/proc/{pid}/exe")
    except OSError:
        return None


def process_gone(pid):
    """Whether `pid` has exited (a zombie waiting for its parent to reap it counts as exited)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


def server_pids(mountpoint):
    """The a67 processes serving `mountpoint`: running the a67 binary with the mount point among their
    arguments, and not `a67 umount`. Used to check that `a67 umount` ends them and to end them (by id)
    when a test left one behind."""
    binary = os.path.realpath(A67_BIN)
    target = resolved(mountpoint)
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        argv = _cmdline(entry)
        if not argv or "umount" in argv or (target not in argv and str(mountpoint) not in argv):
            continue
        if _exe(entry) == binary or os.path.basename(argv[0]) == os.path.basename(binary):
            if not process_gone(int(entry)):
                pids.append(int(entry))
    return pids


def is_live(path):
    """Whether a server answers at mount point `path`: os.path.ismount, and a lookup of a name no cache can
    answer ends in ENOENT (a stale mount's root may still stat from the kernel's attribute cache)."""
    if not os.path.ismount(path):
        return False
    try:
        os.lstat(os.path.join(path, f".a67-test-probe-{uuid.uuid4().hex}"))
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def abort_fuse_connection(mountpoint):
    """Aborts the kernel's FUSE connection of `mountpoint` through fusectl (mounted on
    /sys/fs/fuse/connections first if it is not): every waiting request then fails with ENOTCONN, also
    when the server's process id is unknown. Returns whether it did."""
    entry = mount_entry(mountpoint)
    if not entry:
        return False
    major, minor = (int(x) for x in entry[0].split(":"))
    connections = Path("/sys/fs/fuse/connections")
    if not in_mount_table(connections):
        with contextlib.suppress(Exception):
            subprocess.run(["mount", "-t", "fusectl", "fusectl", str(connections)], capture_output=True, timeout=10)
    try:
        (connections / str(os.makedev(major, minor)) / "abort").write_text("1")
        return True
    except OSError:
        return False


# --- one mount ---

class Mount:
    """One `a67 mount BUCKET PATH` (background, or --foreground under Popen), restartable at the same path."""

    def __init__(self, repo, bucket, path, args=(), foreground=False):
        self.repo = repo
        self.bucket = bucket
        self.path = Path(path)
        self.args = [str(a) for a in args]
        self.foreground = foreground
        self.process = None  # the Popen of a foreground mount
        self.pids = []  # every process seen serving it
        self.log_path = repo.tmp / f"mount-{len(repo.mounts)}-{bucket}.log"
        self.starts = 0
        repo.mounts.append(self)

    def __fspath__(self):
        return str(self.path)

    def __truediv__(self, other):
        return self.path / other

    def argv(self):
        return [A67_BIN, "mount", self.bucket, str(self.path), *self.args, *(["--foreground"] if self.foreground else [])]

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n=4000):
        return self.log()[-n:]

    def live(self):
        return is_live(self.path)

    def start(self):
        """Mounts; fails the test unless the mount is live when `a67 mount` returns (background) or within
        MOUNT_DEADLINE seconds (foreground)."""
        self.starts += 1
        argv = self.argv()
        command = " ".join(argv[1:])
        with open(self.log_path, "ab") as log:
            log.write(f"--- a67 {command}\n".encode())
            log.flush()
            if self.foreground:
                self.process = subprocess.Popen(argv, env=self.repo.env, stdin=subprocess.DEVNULL, stdout=log,
                                                stderr=subprocess.STDOUT)
                self.pids = [self.process.pid]
                deadline = time.monotonic() + MOUNT_DEADLINE
                while not is_live(self.path):
                    if self.process.poll() is not None:
                        pytest.fail(f"`a67 {command}` exited with {self.process.returncode} before the mount was "
                                    f"live; its log:\n{self.log_tail()}", pytrace=False)
                    if time.monotonic() >= deadline:
                        self.kill()
                        pytest.fail(f"`a67 {command}` did not make {self.path} a mount point within "
                                    f"{MOUNT_DEADLINE} s; its log:\n{self.log_tail()}", pytrace=False)
                    time.sleep(0.05)
                return self
            # The server keeps running after `a67 mount` returns; its output goes to the log file, not to
            # pipes (a pipe would keep subprocess.run waiting for the server's end of it).
            try:
                result = subprocess.run(argv, env=self.repo.env, stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT, timeout=MOUNT_DEADLINE)
            except subprocess.TimeoutExpired:
                self.pids = server_pids(self.path)
                self.cleanup()
                pytest.fail(f"`a67 {command}` did not return within {MOUNT_DEADLINE} s; log:\n{self.log_tail()}",
                            pytrace=False)
        if result.returncode != 0:
            pytest.fail(f"`a67 {command}` exited with {result.returncode}; log:\n{self.log_tail()}", pytrace=False)
        if not is_live(self.path):
            pytest.fail(f"`a67 {command}` exited 0 but {self.path} is not a live mount point (mount table: "
                        f"{mount_entry(self.path)}); log:\n{self.log_tail()}", pytrace=False)
        self.pids = server_pids(self.path)
        return self

    def unmount(self):
        """`a67 umount PATH`: exit 0, the path no longer a mount point, and the server gone by the time it
        returns (a foreground server with exit code 0)."""
        before = [p for p in self.pids if not process_gone(p)]
        result = self.repo.a67("umount", self.path, check=False, timeout=UMOUNT_DEADLINE)
        if result.returncode != 0:
            pytest.fail(f"`a67 umount {self.path}` exited with {result.returncode}\nstdout: {result.stdout}\n"
                        f"stderr: {result.stderr}\nmount log:\n{self.log_tail()}", pytrace=False)
        assert not in_mount_table(self.path), f"{self.path} is still in the mount table after `a67 umount`"
        if self.process is not None:
            try:
                code = self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pytest.fail(f"`a67 umount {self.path}` returned while the --foreground server still ran "
                            f"(10 s later); log:\n{self.log_tail()}", pytrace=False)
            assert code == 0, f"the --foreground server exited with {code} after `a67 umount`; log:\n{self.log_tail()}"
            self.process = None
        still = [p for p in before if not process_gone(p)]
        assert not still, f"`a67 umount` returned while the mount's server process(es) {still} still ran"

    def remount(self):
        """Unmounts (checked) and mounts the same bucket at the same path again."""
        self.unmount()
        return self.start()

    def signal(self, sig):
        """Sends `sig` to a --foreground server."""
        assert self.process is not None, "only a --foreground mount is signalled"
        self.process.send_signal(sig)

    def wait_exit(self, timeout=UMOUNT_DEADLINE):
        """The exit code of a --foreground server, failing when it does not exit within `timeout` seconds."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the --foreground server did not exit within {timeout} s; log:\n{self.log_tail()}",
                        pytrace=False)
        self.process = None
        return code

    def kill(self):
        """SIGKILL to the server (no flush, no unmount): leaves a stale mount point behind."""
        for pid in set(self.pids + ([self.process.pid] if self.process else [])):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait()
            self.process = None
        deadline = time.monotonic() + 10
        while any(not process_gone(p) for p in self.pids) and time.monotonic() < deadline:
            time.sleep(0.02)

    def cleanup(self):
        """Best effort, never failing, and never touching the mount itself (its server may hang): whatever
        is still mounted at the path is detached (fusermount3 -uz, else umount -l), and its server
        processes are ended by id (SIGTERM, then SIGKILL after 10 s)."""
        leftover = set(self.pids) | set(server_pids(self.path))
        if self.process is not None:
            leftover.add(self.process.pid)
        if in_mount_table(self.path):
            with contextlib.suppress(Exception):
                subprocess.run(["fusermount3", "-uz", str(self.path)], capture_output=True, timeout=30)
        if in_mount_table(self.path):
            with contextlib.suppress(Exception):
                subprocess.run(["umount", "-l", str(self.path)], capture_output=True, timeout=30)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            alive = [pid for pid in leftover if not process_gone(pid)]
            for pid in alive:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + 10
            while any(not process_gone(pid) for pid in alive) and time.monotonic() < deadline:
                if self.process is not None:
                    self.process.poll()  # reaps it
                time.sleep(0.05)
        if self.process is not None:
            with contextlib.suppress(Exception):
                self.process.wait(timeout=10)
            self.process = None


# --- the repository ---

class Repository:
    """The session's repository: the CLI, buckets, mount points and mounts."""

    def __init__(self, tmp):
        self.tmp = Path(tmp)
        self.home = self.tmp / "home"
        self.passphrase_file = self.tmp / "passphrase"
        self.providers = {"p1": self.tmp / "p1", "p2": self.tmp / "p2"}
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("A67_")}
        self.env.update({
            "A67_HOME": str(self.home),
            "A67_PASSPHRASE_FILE": str(self.passphrase_file),
            "PATH": os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin", "/sbin", "/bin"]),
        })
        self.mounts = []
        self._mountpoints = 0

    def a67(self, *args, check=True, timeout=180, binary=False):
        """Runs `a67 ARGS` against the repository; with check, a non-zero exit fails the test."""
        return run_a67(A67_BIN, args, self.env, check=check, timeout=timeout, text=not binary)

    def a67_json(self, *args):
        return parse_json(args, self.a67(*args, "--json").stdout)

    def bucket(self, label, *options):
        """A fresh bucket (`a67 bucket create NAME OPTIONS`); returns its name."""
        name = unique_bucket(label)
        self.a67("bucket", "create", name, *options)
        return name

    def get(self, bucket, key):
        """The object's bytes through `a67 get BUCKET/KEY -`, or None when there is no such object (exit 2)."""
        result = self.a67("get", f"{bucket}/{key}", "-", check=False, binary=True)
        if result.returncode == 2:
            return None
        if result.returncode != 0:
            pytest.fail(f"`a67 get {bucket}/{key} -` exited with {result.returncode}: "
                        f"{result.stderr.decode(errors='replace')}", pytrace=False)
        return result.stdout

    def expect_object(self, bucket, key, data, why=""):
        """Asserts that `a67 get BUCKET/KEY` returns exactly `data` (with a message that says how it differs)."""
        stored = self.get(bucket, key)
        context = f" ({why})" if why else ""
        if stored is None:
            pytest.fail(f"no object {bucket}/{key}{context}: `a67 get` says not found", pytrace=False)
        if stored != data:
            first = next((i for i, (a, b) in enumerate(zip(stored, data)) if a != b), min(len(stored), len(data)))
            pytest.fail(f"{bucket}/{key}{context}: `a67 get` returns {len(stored)} bytes, expected {len(data)}; "
                        f"they first differ at byte {first}", pytrace=False)

    def ls(self, bucket, prefix=""):
        """{key: size} of every object under `prefix` (`a67 ls BUCKET/PREFIX --recursive --json`)."""
        location = f"{bucket}/{prefix}" if prefix else bucket
        return {o["key"]: o["size"] for o in self.a67_json("ls", location, "--recursive") if not o.get("folder")}

    def put(self, bucket, key, data):
        source = self.tmp / f"put-{uuid.uuid4().hex}"
        source.write_bytes(data)
        try:
            self.a67("put", source, f"{bucket}/{key}")
        finally:
            source.unlink()

    def mountpoint(self, label="mnt"):
        """A fresh empty folder to mount on."""
        self._mountpoints += 1
        path = self.tmp / "mnt" / f"{self._mountpoints:03d}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', label)[:60]}"
        path.mkdir(parents=True)
        return path

    def mount(self, bucket, *args, path=None, foreground=False):
        """Mounts `bucket` (at a fresh mount point unless `path`); the caller unmounts, or uses mounted()."""
        return Mount(self, bucket, path or self.mountpoint(bucket), args, foreground).start()

    @contextlib.contextmanager
    def mounted(self, bucket, *args, path=None, foreground=False):
        """A live mount for the with-block; unmounted (and checked) after a block that did not raise, and
        cleaned up in any case."""
        m = self.mount(bucket, *args, path=path, foreground=foreground)
        ok = False
        try:
            yield m
            ok = True
        finally:
            try:
                if ok and m.live():
                    m.unmount()
            finally:
                m.cleanup()

    def live_mounts(self):
        return [m for m in self.mounts if in_mount_table(m.path)]


@pytest.fixture(scope="session")
def repo():
    if os.geteuid() != 0:
        pytest.fail("the mount suite needs root (FUSE mounts, chown, other users): run it with sudo", pytrace=False)
    if not os.access(A67_BIN, os.X_OK):
        pytest.fail(f"no a67 binary at {A67_BIN} (build it with swift build, or set A67_BIN)", pytrace=False)
    if not os.path.exists("/dev/fuse"):
        pytest.fail("/dev/fuse is missing: the kernel's FUSE module is not loaded (modprobe fuse)", pytrace=False)
    which("fusermount3")
    tmp = tempfile.mkdtemp(prefix="a67-mount-")
    # Other users (the permission tests' nobody) must reach the mount points under it; the passphrase
    # file stays readable by root only.
    os.chmod(tmp, 0o711)
    repository = Repository(tmp)
    repository.passphrase_file.write_text(PASSPHRASE + "\n")
    repository.passphrase_file.chmod(0o600)
    try:
        repository.a67("init")
        for name, directory in repository.providers.items():
            repository.a67("provider", "add", name, "--dir", directory)
        # A provider that comes back is probed again after 2 s instead of 30 (test_faults' recovery).
        repository.a67("config", "set", "breaker.open_seconds", "2")
        yield repository
    finally:
        for m in repository.mounts:
            m.cleanup()
        left = repository.live_mounts()
        if left or os.environ.get("A67_KEEP_TMP"):
            # Never rmtree through a mount (it would delete the bucket's files through it).
            print(f"\nkept {tmp}" + (f" (still mounted: {[str(m.path) for m in left]})" if left else ""),
                  file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        assert not left, f"mounts left behind after the session: {[str(m.path) for m in left]}"


@pytest.fixture(autouse=True)
def watchdog(request):
    """Turns a test that hangs in a file system call into a failure: after TEST_DEADLINE seconds, dumps every
    thread's stack and ends the live mounts' servers (aborting their FUSE connections), so that the
    blocked call returns ENOTCONN."""
    fired = threading.Event()
    session = request.getfixturevalue("repo") if "repo" in request.fixturenames else None

    def fire():
        fired.set()
        print(f"\n{request.node.nodeid}: still running after {TEST_DEADLINE} s; stacks:", file=sys.stderr, flush=True)
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        if session is not None:
            for m in session.mounts:
                if in_mount_table(m.path):
                    m.pids = sorted(set(m.pids) | set(server_pids(m.path)))
                    m.kill()
                    abort_fuse_connection(m.path)

    timer = threading.Timer(TEST_DEADLINE, fire)
    timer.daemon = True
    timer.start()
    yield
    timer.cancel()
    if fired.is_set():
        pytest.fail(f"the test ran past {TEST_DEADLINE} s (a hang?): its mounts' servers were killed to end it; "
                    "stacks above", pytrace=False)


# --- running as another user ---

_AS_USER = r"""
import json, os, stat, sys
ns = {"os": os, "stat": stat, "result": None}
try:
    exec(sys.argv[1], ns)
    out = {"errno": None, "result": ns["result"]}
except OSError as e:
    out = {"errno": e.errno, "error": str(e)}
print(json.dumps(out))
"""


def as_user(code, uid=NOBODY, gid=NOBODY, timeout=60):
    """Runs Python `code` as uid/gid (no supplementary groups) in a child process; returns (errno, result):
    errno of the OSError it raised (or None), and the value it left in `result`."""
    try:
        done = subprocess.run(["/usr/bin/python3", "-I", "-S", "-c", _AS_USER, code], user=uid, group=gid,
                              extra_groups=[], cwd="/", env={"PATH": "/usr/bin:/bin"}, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"as uid {uid}: {code!r} did not finish within {timeout} s", pytrace=False)
    if done.returncode != 0:
        pytest.fail(f"as uid {uid}: {code!r} failed: {done.stderr}", pytrace=False)
    out = json.loads(done.stdout)
    return out["errno"], out.get("result")


# --- shared fixtures ---

def subfolder(mount, request):
    """A fresh folder in `mount` named after the test."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")[:100]
    if not mount.live():
        pytest.fail(f"the mount {mount.path} is not live (an earlier test broke it?); log tail:\n"
                    f"{mount.log_tail()}", pytrace=False)
    path = mount.path / name
    path.mkdir()
    return path


def key_of(mount, path):
    """The object key of `path` inside `mount` (the mount's root is the bucket's root)."""
    return Path(path).relative_to(mount.path).as_posix()

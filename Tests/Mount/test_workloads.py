"""Real programs on `a67 mount`, unmodified: tar extracting a source tree of thousands of files, git,
SQLite, and rsync. Each result is compared with the same work done on a local folder.

One mount for the module (bucket workloads-*), a fresh folder per test.
"""

import filecmp
import hashlib
import os
import random
import shutil
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import CHUNK, KiB, REPO, key_of, subfolder, which

BIG_FILE_LIMIT = 512 * KiB  # larger files of the system's trees are left out: thousands of files, not bytes, are the point
TREE_FILES = 3000  # about how many files the untar test stages (2,000 at least)


@pytest.fixture(scope="module")
def mnt(repo):
    bucket = repo.bucket("workloads")
    with repo.mounted(bucket) as m:
        yield m


@pytest.fixture
def d(mnt, request):
    return subfolder(mnt, request)


def run(argv, cwd=None, env=None, timeout=600, check=True):
    """Runs a program; with check, a non-zero exit fails the test with its output."""
    try:
        result = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"`{' '.join(map(str, argv))}` did not finish within {timeout} s; stderr: {e.stderr!r:.2000}",
                    pytrace=False)
    if check and result.returncode != 0:
        pytest.fail(f"`{' '.join(map(str, argv))}` exited with {result.returncode}\nstdout: {result.stdout[-4000:]}\n"
                    f"stderr: {result.stderr[-4000:]}", pytrace=False)
    return result


def entries(root):
    """{relative path: (kind, mode bits, uid, gid, size of a file, mtime in whole seconds unless a symlink,
    symlink target)} for everything below `root`."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            kind = "link" if stat.S_ISLNK(st.st_mode) else "dir" if stat.S_ISDIR(st.st_mode) else \
                "file" if stat.S_ISREG(st.st_mode) else f"other {stat.S_IFMT(st.st_mode):o}"
            out[os.path.relpath(path, root)] = (
                kind, stat.S_IMODE(st.st_mode) if kind != "link" else None, st.st_uid, st.st_gid,
                st.st_size if kind == "file" else None, int(st.st_mtime) if kind != "link" else None,
                os.readlink(path) if kind == "link" else None)
    return out


def same_metadata(expected_root, actual_root):
    expected, actual = entries(expected_root), entries(actual_root)
    missing, extra = sorted(set(expected) - set(actual)), sorted(set(actual) - set(expected))
    assert not missing and not extra, f"missing: {missing[:20]} ({len(missing)}), extra: {extra[:20]} ({len(extra)})"
    differing = [(p, expected[p], actual[p]) for p in expected if expected[p] != actual[p]]
    assert not differing, (f"{len(differing)} entries differ (path, expected, found; kind, mode, uid, gid, size, "
                           f"mtime, link target): {differing[:10]}")
    return expected


def diff_r(a, b):
    """`diff -r` (symlinks compared as links): equal trees, or a failure showing the differences."""
    result = run([which("diff"), "-r", "--no-dereference", a, b], check=False)
    assert result.returncode == 0, f"diff -r {a} {b} found differences:\n{result.stdout[-4000:]}{result.stderr[-2000:]}"


def stdlib_folder():
    for candidate in sorted(Path("/usr/lib").glob("python3.*"), reverse=True):
        if (candidate / "os.py").exists():
            return candidate
    return Path(os.path.dirname(os.__file__))


def stage_source_tree(root):
    """A real tree of about TREE_FILES files: Python's standard library, Perl's, this project's Sources and
    /usr/share/doc (with its symlinks) up to the total, without caches and files over 512 KiB; plus the
    awkward cases (symlinks of every kind, a hard link, an empty folder and file, odd modes, a file across
    a chunk). Returns how many files it holds."""
    sources = [stdlib_folder(), Path("/usr/share/perl"), REPO / "Sources", Path("/usr/share/doc")]

    def ignore(folder, names):
        skipped = set()
        for name in names:
            if name in ("__pycache__", "site-packages", "dist-packages"):
                skipped.add(name)
                continue
            st = os.lstat(os.path.join(folder, name))
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                skipped.add(name)
            elif stat.S_ISREG(st.st_mode) and st.st_size > BIG_FILE_LIMIT:
                skipped.add(name)
        return skipped

    def count(folder):
        return sum(len(names) for _, _, names in os.walk(folder))

    files = 0
    for i, source in enumerate(s for s in sources if s.is_dir()):
        target = root / f"{i}-{source.name}"
        if source != Path("/usr/share/doc"):
            shutil.copytree(source, target, symlinks=True, ignore=ignore)
            files += count(target)
            continue
        # Its size differs from machine to machine: its packages' folders in order, up to TREE_FILES in all.
        target.mkdir()
        for name in sorted(os.listdir(source)):
            if files >= TREE_FILES:
                break
            if name in ignore(str(source), [name]):
                continue
            if os.path.islink(source / name):
                os.symlink(os.readlink(source / name), target / name)
                files += 1
            elif (source / name).is_dir():
                shutil.copytree(source / name, target / name, symlinks=True, ignore=ignore)
                files += count(target / name)
            else:
                shutil.copy2(source / name, target / name)
                files += 1
        shutil.copystat(source, target)
    extra = root / "extra"
    extra.mkdir()
    (extra / "empty-folder").mkdir()
    (extra / "empty-file").write_bytes(b"")
    (extra / "big.bin").write_bytes(os.urandom(CHUNK + 123_457))
    (extra / "name with spaces & ünïcödé.txt").write_text("awkward\n")
    (extra / ("L" * 255)).write_text("a name of 255 bytes\n")
    (extra / "private").write_text("0600\n")
    os.chmod(extra / "private", 0o600)
    (extra / "script.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(extra / "script.sh", 0o755)
    (extra / "readonly").write_text("0444\n")
    os.chmod(extra / "readonly", 0o444)
    (extra / "owned").write_text("uid 1234\n")
    os.chown(extra / "owned", 1234, 4321)
    os.symlink("script.sh", extra / "relative-link")
    os.symlink("/etc/hostname", extra / "absolute-link")
    os.symlink("does/not/exist", extra / "dangling-link")
    os.symlink("empty-folder", extra / "folder-link")
    os.link(extra / "script.sh", extra / "hard-link")
    files = sum(1 for _, _, names in os.walk(root) for _ in names)
    assert files >= 2000, f"the staged tree has only {files} files: this machine lacks the system trees it copies from"
    return files


def test_untar_source_tree(d, mnt, repo, tmp_path):
    """tar extracts a source tree of thousands of files onto the mount: `diff -r` finds no difference, and
    modes, owners, sizes, mtimes and link targets match; hard links share an inode; every file is an object."""
    tar = which("tar")
    stage = tmp_path / "stage"
    stage.mkdir()
    files = stage_source_tree(stage)
    tarball = tmp_path / "tree.tar"
    run([tar, "-C", stage, "-cf", tarball, "."])
    target = d / "untar"
    target.mkdir()
    run([tar, "-C", target, "-xf", tarball, "--same-owner", "--same-permissions"], timeout=900)
    diff_r(stage, target)
    expected = same_metadata(stage, target)
    assert os.stat(target / "extra" / "hard-link").st_ino == os.stat(target / "extra" / "script.sh").st_ino
    listed = repo.ls(mnt.bucket, key_of(mnt, target) + "/")
    singles = {f"{key_of(mnt, target)}/{p}": e[4] for p, e in expected.items()
               if e[0] == "file" and os.lstat(stage / p).st_nlink == 1}
    unlisted = sorted(k for k in singles if listed.get(k) != singles[k])
    assert not unlisted, f"{len(unlisted)} of {files} files are not objects of their size in a67 ls: {unlisted[:10]}"


GIT_IDENTITY = ["-c", "user.name=A67 Mount Test", "-c", "user.email=mount-test@a67.invalid", "-c", "safe.directory=*",
                "-c", "init.defaultBranch=main", "-c", "commit.gpgSign=false"]


def test_git(d, mnt, tmp_path):
    """git on the mount: init, add, commit, a clean status, the log, fsck; a change and a new file show in
    status; a second commit, gc (packs and removes loose objects) and fsck again; clean after a remount."""
    git_bin = which("git")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_CONFIG_GLOBAL": os.devnull, "LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0"}
    work = d / "repo"
    shutil.copytree(REPO / "Sources", work, symlinks=True)
    (work / "binary.bin").write_bytes(os.urandom(CHUNK + 1000))
    os.symlink("binary.bin", work / "link")

    def git(*args, **kwargs):
        return run([git_bin, *GIT_IDENTITY, *args], cwd=work, env=env, **kwargs)

    git("init", "-q")
    git("add", "-A")
    git("commit", "-q", "-m", "first commit from the mount")
    assert git("status", "--porcelain").stdout == ""
    log = git("log", "--format=%s").stdout.splitlines()
    assert log == ["first commit from the mount"]
    git("fsck", "--full", "--strict")
    tracked = git("ls-files").stdout.splitlines()
    assert "binary.bin" in tracked and "link" in tracked and len(tracked) > 50
    some_file = next(p for p in tracked if p.endswith(".swift"))
    with open(work / some_file, "a") as f:
        f.write("\n// changed on the mount\n")
    (work / "new.txt").write_text("untracked\n")
    status = git("status", "--porcelain").stdout.splitlines()
    assert sorted(status) == sorted([f" M {some_file}", "?? new.txt"]), status
    git("add", "-A")
    git("commit", "-q", "-m", "second")
    assert git("status", "--porcelain").stdout == ""
    assert git("log", "--format=%s").stdout.splitlines() == ["second", "first commit from the mount"]
    git("gc", "-q", "--prune=now")
    git("fsck", "--full", "--strict")
    assert git("show", f"HEAD:{some_file}").stdout.endswith("// changed on the mount\n")
    mnt.remount()
    assert git("status", "--porcelain").stdout == "", "the work tree is not clean after a remount"
    git("fsck", "--full", "--strict")
    assert git("log", "--format=%s").stdout.splitlines() == ["second", "first commit from the mount"]


def test_sqlite(d, mnt):
    """SQLite (rollback journal, fsync, byte-range locks) on the mount: 10,000 rows in transactions, a rolled
    back transaction, and the same counts, sums and row hash after reopening and after a remount."""
    db = d / "test.db"
    rng = random.Random(10)
    rows = [(i, f"name-{i}", rng.randrange(1_000_000), rng.randbytes(rng.randrange(0, 600))) for i in range(10_000)]
    expected = (len(rows), sum(r[2] for r in rows), sum(len(r[3]) for r in rows))
    digest = hashlib.sha256(repr(rows).encode()).hexdigest()

    def check(connection):
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert connection.execute("SELECT count(*), sum(value), sum(length(data)) FROM t").fetchone() == expected
        got = connection.execute("SELECT id, name, value, data FROM t ORDER BY id").fetchall()
        assert hashlib.sha256(repr(got).encode()).hexdigest() == digest, "the rows differ"

    con = sqlite3.connect(db, isolation_level="DEFERRED")
    try:
        con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, value INTEGER, data BLOB)")
        con.execute("CREATE INDEX t_value ON t(value)")
        for start in range(0, len(rows), 1000):
            with con:
                con.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", rows[start:start + 1000])
        with pytest.raises(RuntimeError):
            with con:
                con.execute("DELETE FROM t WHERE id % 2 = 0")
                con.execute("UPDATE t SET value = 0")
                raise RuntimeError("roll back")
        check(con)
    finally:
        con.close()
    leftovers = sorted(n for n in os.listdir(d) if n != "test.db")
    assert not leftovers, f"the rollback journal was left behind: {leftovers}"
    con = sqlite3.connect(db)
    try:
        check(con)
    finally:
        con.close()
    mnt.remount()
    con = sqlite3.connect(db)
    try:
        check(con)
        with con:
            con.execute("UPDATE t SET value = value + 1 WHERE id < 100")
        assert con.execute("SELECT sum(value) FROM t").fetchone()[0] == expected[1] + 100
    finally:
        con.close()


def make_tree(root, rng):
    """A local tree for rsync: nested folders, files from empty to past a chunk, symlinks, modes, old mtimes."""
    for i in range(120):
        folder = root.joinpath(*[f"dir{(i + k) % 4}" for k in range(i % 4)])
        folder.mkdir(parents=True, exist_ok=True)
        size = [0, 1, 100, 4096, 65_537, 300_000][i % 6] if i != 7 else CHUNK + 77
        path = folder / f"file-{i:03d}.bin"
        path.write_bytes(rng.randbytes(size))
        os.chmod(path, [0o644, 0o600, 0o755, 0o640][i % 4])
        os.utime(path, ns=(1_600_000_000_000_000_000 + i * 1_000_000_123, 1_600_000_000_000_000_000 + i * 1_000_000_123))
    (root / "empty-dir").mkdir()
    os.symlink("dir1/file-001.bin", root / "link-to-file")
    os.symlink("dir2", root / "link-to-dir")
    os.symlink("missing", root / "dangling")


def test_rsync_roundtrip(d, tmp_path):
    """rsync -a --checksum to the mount and back to another local folder: diff -r equal, metadata equal; a
    second run transfers and changes nothing; after a local change, exactly that file is sent."""
    rsync = which("rsync")
    src, back = tmp_path / "src", tmp_path / "back"
    src.mkdir()
    make_tree(src, random.Random(5))
    target = d / "rs"
    run([rsync, "-a", "--checksum", f"{src}/", f"{target}/"])
    run([rsync, "-a", "--checksum", f"{target}/", f"{back}/"])
    diff_r(src, target)
    diff_r(src, back)
    same_metadata(src, back)
    same_metadata(src, target)
    again = run([rsync, "-a", "--checksum", "--itemize-changes", f"{src}/", f"{target}/"]).stdout
    assert again.strip() == "", f"a second rsync found changes on the mount:\n{again}"
    changed = src / "dir1" / "file-001.bin"
    changed.write_bytes(b"changed locally")
    third = run([rsync, "-a", "--checksum", "--itemize-changes", f"{src}/", f"{target}/"]).stdout.splitlines()
    sent = [line for line in third if line.startswith(">f")]
    assert len(sent) == 1 and sent[0].endswith(" dir1/file-001.bin"), f"rsync after one local change:\n{third}"
    assert (target / "dir1" / "file-001.bin").read_bytes() == b"changed locally"
    assert filecmp.cmp(src / "dir3" / "dir0" / "dir1" / "file-003.bin", target / "dir3" / "dir0" / "dir1" / "file-003.bin",
                       shallow=False)

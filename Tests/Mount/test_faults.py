"""Failures around `a67 mount`: a server killed with SIGKILL (what was fsynced survives, and the next mount
cleans up the stale mount point), SIGTERM and SIGINT (a clean unmount that flushes what is open), a quota
that refuses a write (an error, never half an object), and a provider that fails under the bucket's
--min-replicas (EIO, never silent loss, and recovery when it returns).

Each test has its own bucket and mount.
"""

import contextlib
import errno
import os
import random
import signal
import time
import uuid

import pytest

from conftest import CHUNK, KiB, MiB, expect_errno, in_mount_table, server_pids, sha256

RECOVERY_DEADLINE = 30  # seconds for a provider that is back to take writes again (breaker.open_seconds is 2)


def write_all(fd, data, offset=None):
    """Writes all of `data` (at `offset` with pwrite, else at the fd's position), however the kernel splits it."""
    view = memoryview(data)
    done = 0
    while done < len(view):
        if offset is None:
            done += os.write(fd, view[done:done + MiB])
        else:
            done += os.pwrite(fd, view[done:done + MiB], offset + done)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def test_mount_of_unknown_bucket_fails(repo):
    """`a67 mount` of a bucket that does not exist exits 2 (not found) and leaves nothing mounted or running."""
    mountpoint = repo.mountpoint("unknown")
    result = repo.a67("mount", "no-such-bucket-" + uuid.uuid4().hex[:8], mountpoint, check=False, timeout=60)
    assert result.returncode == 2, f"exit {result.returncode}: {result.stderr}"
    assert not in_mount_table(mountpoint)
    assert server_pids(mountpoint) == []


def test_kill_9_after_fsync_keeps_data(repo):
    """SIGKILL right after fsync (of the file and its folder), with the file still open: what was fsynced is in
    the repository at once (`a67 get`), the next `a67 mount` on the stale mount point succeeds, and the
    bytes, the folder and an fsynced rename are all there."""
    bucket = repo.bucket("kill9")
    with repo.mounted(bucket, foreground=True) as m:
        folder = m.path / "dir"
        os.mkdir(folder)
        data = os.urandom(CHUNK + 2 * MiB + 333)
        fd = os.open(folder / "synced.bin", os.O_CREAT | os.O_WRONLY, 0o644)
        write_all(fd, data)
        os.fsync(fd)
        # The atomic-save pattern: write a temporary name, fsync it, rename it over the final one, fsync the folder.
        with open(folder / "config.tmp", "wb") as f:
            f.write(b"version 2")
            f.flush()
            os.fsync(f.fileno())
        os.rename(folder / "config.tmp", folder / "config")
        fsync_dir(folder)
        m.kill()
        try:
            assert in_mount_table(m.path), "after SIGKILL the mount point is expected to be stale (still in the table)"
            expect_errno(errno.ENOTCONN, os.stat, m.path / uuid.uuid4().hex)  # a lookup no cache can answer
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)  # its flush goes to a dead connection
        repo.expect_object(bucket, "dir/synced.bin", data, "fsynced, then SIGKILL")
        repo.expect_object(bucket, "dir/config", b"version 2", "fsynced and renamed, then SIGKILL")
        assert repo.get(bucket, "dir/config.tmp") is None
        m.foreground = False  # the next mount is a plain `a67 mount`, which must clean up the stale mount point
        m.start()
        assert sha256(read(folder / "synced.bin")) == sha256(data)
        assert read(folder / "config") == b"version 2"
        assert sorted(os.listdir(folder)) == ["config", "synced.bin"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_unmounts_and_flushes_open_file(repo, sig):
    """SIGTERM or SIGINT to a --foreground mount while a written file is still open and never fsynced:
    the server flushes it, unmounts and exits 0, and the data is there (CLI and a new mount)."""
    bucket = repo.bucket("signal")
    with repo.mounted(bucket, foreground=True) as m:
        data = os.urandom(CHUNK + MiB + 5)
        fd = os.open(m.path / "open.bin", os.O_CREAT | os.O_WRONLY, 0o644)
        try:
            write_all(fd, data)
            m.signal(sig)
            code = m.wait_exit()
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)
        assert code == 0, f"the server exited with {code} on {sig.name}; log:\n{m.log_tail()}"
        assert not in_mount_table(m.path), f"the server exited on {sig.name} but left {m.path} mounted"
        repo.expect_object(bucket, "open.bin", data, f"open and written, never fsynced, then {sig.name}")
        m.start()
        assert sha256(read(m.path / "open.bin")) == sha256(data)


def test_quota_refuses_without_partial_object(repo):
    """Writes past the owner's 1 MiB quota fail with EDQUOT or ENOSPC at write, fsync or close; afterwards
    the object is what it was before (an overwritten file keeps its old content, a new file is absent or
    empty), never a cut-off part; writes within the quota still work."""
    user = "quota-" + uuid.uuid4().hex[:8]
    repo.a67("user", "add", user, "--quota", "1MiB")
    bucket = repo.bucket("quota", "--owner", user)
    with repo.mounted(bucket) as m:
        old = os.urandom(100 * KiB)
        with open(m.path / "existing.bin", "wb") as f:
            f.write(old)
        repo.expect_object(bucket, "existing.bin", old)

        def write_over_quota(path, flags):
            errors = []
            fd = os.open(path, flags, 0o644)
            try:
                block = os.urandom(64 * KiB)
                for i in range(32):  # 2 MiB
                    try:
                        os.pwrite(fd, block, i * len(block))
                    except OSError as e:
                        errors.append(("write", e))
                        break
                if not errors:
                    try:
                        os.fsync(fd)
                    except OSError as e:
                        errors.append(("fsync", e))
            finally:
                try:
                    os.close(fd)
                except OSError as e:
                    errors.append(("close", e))
            assert errors, f"2 MiB went into {path.name} against a 1 MiB quota without any error"
            wrong = [(op, errno.errorcode.get(e.errno, e.errno)) for op, e in errors if e.errno not in (errno.EDQUOT, errno.ENOSPC)]
            assert not wrong, f"over the quota, expected EDQUOT or ENOSPC, got {wrong}"

        write_over_quota(m.path / "existing.bin", os.O_WRONLY)
        stored = repo.get(bucket, "existing.bin")
        assert stored == old, (f"after a refused overwrite, a67 get returns "
                               f"{'nothing' if stored is None else f'{len(stored)} other bytes'}, not the old content")
        write_over_quota(m.path / "new.bin", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        stored = repo.get(bucket, "new.bin")
        assert stored in (None, b""), f"after a refused write, the new object holds {len(stored)} bytes (a cut-off part)"
        small = os.urandom(10 * KiB)
        with open(m.path / "small.bin", "wb") as f:
            f.write(small)
        repo.expect_object(bucket, "small.bin", small, "a write within the quota after a refused one")


def test_provider_failure_is_eio_then_recovers(repo):
    """A bucket that needs both providers (--min-replicas 2) while p2's folder is gone: fsync (or the write)
    fails with EIO, never a silent success; once the folder is back, a write and fsync on the same fd
    succeed, close succeeds, and the object holds every byte."""
    bucket = repo.bucket("failing", "--replicas", "2", "--min-replicas", "2")
    p2 = repo.providers["p2"]
    away = p2.with_name(p2.name + ".away")
    with repo.mounted(bucket) as m:
        p = m.path / "file.bin"
        first, second = os.urandom(CHUNK), os.urandom(MiB + 17)
        fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            write_all(fd, first)
            os.fsync(fd)
            os.rename(p2, away)
            try:
                failure = None
                try:
                    write_all(fd, second, offset=len(first))
                    os.fsync(fd)
                except OSError as e:
                    failure = e
                assert failure is not None, ("write and fsync succeeded while a bucket with --min-replicas 2 had one "
                                             "provider: silent loss of the second replica")
                assert failure.errno == errno.EIO, f"expected EIO, got {errno.errorcode.get(failure.errno)} ({failure})"
            finally:
                os.rename(away, p2)
            deadline = time.monotonic() + RECOVERY_DEADLINE
            while True:
                try:
                    write_all(fd, second, offset=len(first))
                    os.fsync(fd)
                    break
                except OSError as e:
                    assert e.errno == errno.EIO, f"after p2 came back: {errno.errorcode.get(e.errno)} ({e})"
                    if time.monotonic() >= deadline:
                        pytest.fail(f"writes still fail {RECOVERY_DEADLINE} s after the provider came back: {e}; "
                                    f"log:\n{m.log_tail()}", pytrace=False)
                    time.sleep(0.2)
        finally:
            if away.exists() and not p2.exists():
                os.rename(away, p2)
            os.close(fd)
        repo.expect_object(bucket, "file.bin", first + second, "written across a provider failure and its recovery")
        assert sha256(read(p)) == sha256(first + second)
        # The log says it failed (once per reason, not at every retry) and that it was stored in the end.
        log = (repo.home / "mounts" / f"{bucket}.log").read_text(errors="replace")
        assert "/file.bin are stored now, after" in log, log
        assert log.count("/file.bin are not stored yet") <= 3, log


def test_disk_cache_is_sealed_and_damage_is_refetched(repo):
    """The disk cache ($A67_HOME/cache/BUCKET) holds read chunks sealed: none of the file's plaintext appears
    in it. Every cached piece is altered; after a remount (the memory cache gone) random 4 KiB reads and a
    whole read still return the right bytes (a piece that fails to open is dropped and fetched again from
    the providers)."""
    bucket = repo.bucket("cache")
    data = os.urandom(2 * CHUNK + 777_777)
    with repo.mounted(bucket) as m:
        with open(m.path / "f.bin", "wb") as f:
            f.write(data)
    cache = repo.home / "cache" / bucket
    with repo.mounted(bucket) as m:
        assert read(m.path / "f.bin") == data
    files = sorted(cache.iterdir())
    assert files, f"reading through the mount left nothing in {cache}"
    stored = b"".join(p.read_bytes() for p in files)
    for offset in range(0, len(data) - 64, len(data) // 50):
        assert data[offset:offset + 64] not in stored, "plaintext of the file found in the disk cache"
    for p in files:
        raw = bytearray(p.read_bytes())
        for i in range(20, len(raw), 4096):
            raw[i] ^= 0x5A
        p.write_bytes(bytes(raw))
    with repo.mounted(bucket) as m:
        fd = os.open(m.path / "f.bin", os.O_RDONLY)
        try:
            rng = random.Random(5)
            for _ in range(200):
                offset = rng.randrange(0, len(data) - 4096)
                assert os.pread(fd, 4096, offset) == data[offset:offset + 4096]
        finally:
            os.close(fd)
        assert read(m.path / "f.bin") == data

"""A mount beside `a67 gc`, and the mount's limits: gc never takes what a running mount has stored and not
yet committed (its blocks, the empty manifest every new file starts as, the zero block of sparse files);
`a67 umount` names the files whose changes could not be stored and exits non-zero; a file past the
maximum size is EFBIG, and a huge sparse file costs neither memory nor time for its holes.

Each test has its own bucket and mount.
"""

import errno
import os
import threading
import time

from conftest import CHUNK, MiB, expect_errno, process_gone, server_pids, wait_for
from test_faults import write_all

# The largest file the mount keeps: one manifest's chunks (FileNode.maxSize, README "Limits").
MAX_FILE = 145_634 * CHUNK


def test_gc_keeps_blocks_a_mount_stored_but_not_committed(repo):
    """`a67 gc --grace 0` in a loop while files are written through the mount: every close succeeds and
    every file is whole. The mount stores (and records) whole blocks in the background and commits them
    up to 2 s later; before leases, gc deleted them in between and close failed with EIO."""
    bucket = repo.bucket("gc-pending")
    files = {f"f{i}.bin": os.urandom(2 * CHUNK + MiB + i) for i in range(6)}
    done = threading.Event()
    runs = []

    def collect():
        while not done.is_set():
            runs.append(repo.a67("gc", "--grace", "0", check=False).returncode)

    with repo.mounted(bucket) as m:
        collector = threading.Thread(target=collect)
        collector.start()
        failures = []
        try:
            for name, data in files.items():
                fd = os.open(m.path / name, os.O_CREAT | os.O_WRONLY, 0o644)
                try:
                    for offset in range(0, len(data), MiB):
                        os.pwrite(fd, data[offset:offset + MiB], offset)
                        time.sleep(0.05)  # a writer that takes its time: the blocks wait for their commit
                finally:
                    try:
                        os.close(fd)
                    except OSError as e:
                        failures.append((name, e))
        finally:
            done.set()
            collector.join()
        assert not failures, f"close failed while gc ran: {failures}"
        assert runs and all(code == 0 for code in runs), runs
    for name, data in files.items():
        repo.expect_object(bucket, name, data, "written while gc --grace 0 ran in a loop")


def test_gc_keeps_the_empty_manifest_of_a_running_mount(repo):
    """Right after mounting, no file refers to the empty manifest; gc --grace 0 must not take it, or every
    create fails with EIO until a remount."""
    bucket = repo.bucket("gc-empty")
    with repo.mounted(bucket) as m:
        repo.a67("gc", "--grace", "0")
        (m.path / "new.txt").write_bytes(b"")
        (m.path / "other.txt").write_bytes(b"hello")
        assert (m.path / "new.txt").stat().st_size == 0
    assert repo.ls(bucket) == {"new.txt": 0, "other.txt": 5}


def test_umount_names_files_it_could_not_store(repo):
    """A change that cannot be stored when the mount ends (p2 gone under --min-replicas 2) is lost with the
    process: `a67 umount` says which file, exits non-zero, and the mount is gone all the same."""
    bucket = repo.bucket("umount-lost", "--replicas", "2", "--min-replicas", "2")
    p2 = repo.providers["p2"]
    away = p2.with_name(p2.name + ".gone")
    m = repo.mount(bucket)
    try:
        (m.path / "kept.bin").write_bytes(b"stored before the failure")
        fd = os.open(m.path / "doomed.bin", os.O_CREAT | os.O_WRONLY, 0o644)
        os.rename(p2, away)
        try:
            write_all(fd, os.urandom(MiB))
            try:
                os.close(fd)
            except OSError as e:
                assert e.errno == errno.EIO, e
            pids = server_pids(m.path)
            result = repo.a67("umount", m.path, check=False, timeout=120)
            assert result.returncode != 0, f"`a67 umount` exited 0 although a change was lost: {result.stdout}"
            assert "doomed.bin" in result.stderr, result.stderr
            assert "kept.bin" not in result.stderr, result.stderr
            wait_for(lambda: not os.path.ismount(m.path), "the mount point released", deadline=10)
            assert all(process_gone(pid) for pid in pids), "the mount process outlived a67 umount"
        finally:
            os.rename(away, p2)
    finally:
        m.cleanup()
    repo.expect_object(bucket, "kept.bin", b"stored before the failure")


def test_file_size_limit_and_huge_sparse_files(repo):
    """truncate past the maximum file size is EFBIG at once, as is a write past it; a sparse file of 100 GiB
    (20,480 blocks of holes) is made, read and committed in seconds, with the mount's memory bounded, and
    reads as zeros with its data where it was written."""
    bucket = repo.bucket("sparse")
    with repo.mounted(bucket) as m:
        p = m.path / "huge.bin"
        p.write_bytes(b"start")
        expect_errno(errno.EFBIG, os.truncate, p, 999_999_999_999_999)
        expect_errno(errno.EFBIG, os.truncate, p, MAX_FILE + 1)
        fd = os.open(p, os.O_WRONLY)
        try:
            expect_errno(errno.EFBIG, os.pwrite, fd, b"x", MAX_FILE)
        finally:
            os.close(fd)
        size = 100 << 30
        os.truncate(p, size)
        fd = os.open(p, os.O_RDWR)
        try:
            os.pwrite(fd, b"middle", 50 << 30)
            os.fsync(fd)
            assert os.pread(fd, 5, 0) == b"start"
            assert os.pread(fd, 6, 50 << 30) == b"middle"
            assert os.pread(fd, 4096, 70 << 30) == bytes(4096)
        finally:
            os.close(fd)
        assert p.stat().st_size == size
        rss = max(_rss(pid) for pid in server_pids(m.path))
        assert rss < 400 * MiB, f"the mount's RSS is {rss // MiB} MiB after a 100 GiB sparse file"
    listed = repo.ls(bucket)
    assert listed["huge.bin"] == size, listed
    assert repo.a67("get", f"{bucket}/huge.bin", "-", "--range", f"{50 << 30}-{(50 << 30) + 5}", binary=True).stdout == b"middle"


def _rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0

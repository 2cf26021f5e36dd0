"""POSIX semantics through `a67 mount`, one system call at a time: files, directories, links, renames,
attributes, permissions, extended attributes, limits, and the one namespace the mount shares with the CLI.

One mount for the module (bucket posix-*), a fresh folder per test (fixture `d`). The permission tests
use a second mount with --allow-other, where the kernel's default_permissions decide for uid 65534.
"""

import ctypes
import errno
import os
import random
import socket
import stat
import time

import pytest

from conftest import (CHUNK, KiB, MiB, NOBODY, VISIBLE_DEADLINE, as_user, expect_errno, key_of, sha256,
                      sha256_file, subfolder, wait_for)

AT_FDCWD = -100
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
_libc = ctypes.CDLL(None, use_errno=True)
_libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
_libc.renameat2.restype = ctypes.c_int


def renameat2(old, new, flags):
    """renameat2(2) through glibc (Python has no binding): raises OSError on failure."""
    if _libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), str(old), None, str(new))


@pytest.fixture(scope="module")
def mnt(repo):
    bucket = repo.bucket("posix")
    with repo.mounted(bucket) as m:
        yield m


@pytest.fixture(scope="module")
def shared_mnt(repo):
    """A mount with --allow-other: other users reach it, and the kernel checks their permissions."""
    bucket = repo.bucket("allow-other")
    with repo.mounted(bucket, "--allow-other") as m:
        yield m


@pytest.fixture
def d(mnt, request):
    return subfolder(mnt, request)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


# --- files: data ---

def test_create_read_write_at_offsets(d):
    """Writes and reads at any offset through one fd and after reopening, against a byte model; including
    overwrites that straddle the kernel's 128 KiB request size."""
    p = d / "file"
    fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        assert os.write(fd, b"hello world") == 11
        assert os.pwrite(fd, b"WORLD", 6) == 5
        assert os.pread(fd, 100, 0) == b"hello WORLD"
        assert os.pread(fd, 3, 4) == b"o W"
        assert os.pread(fd, 10, 11) == b"", "a read at the end of the file returns nothing"
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, b"J")
        assert os.fstat(fd).st_size == 11
    finally:
        os.close(fd)
    assert read(p) == b"Jello WORLD"
    with open(p, "r+b") as f:
        f.seek(5)
        f.write(b"_")
        f.seek(0, os.SEEK_END)
        f.write(b"!")
    assert read(p) == b"Jello_WORLD!"
    assert os.stat(p).st_size == 12

    model = bytearray(os.urandom(700 * KiB))
    big = d / "big"
    write(big, model)
    rng = random.Random(1)
    with open(big, "r+b") as f:
        for offset in [128 * KiB - 3, 256 * KiB - 1, 0, 700 * KiB - 10] + [rng.randrange(700 * KiB) for _ in range(40)]:
            block = os.urandom(rng.choice([1, 100, 4096, 200 * KiB]))
            os.pwrite(f.fileno(), block, offset)
            model[offset:offset + len(block)] = block
            check = rng.randrange(len(model))
            assert os.pread(f.fileno(), 5000, check) == bytes(model[check:check + 5000]), f"read at {check} after a write at {offset}"
    assert read(big) == bytes(model)


def test_o_trunc(d):
    """open(O_TRUNC) empties an existing file; what is written after is all it holds."""
    p = d / "t"
    write(p, os.urandom(3 * MiB))
    fd = os.open(p, os.O_WRONLY | os.O_TRUNC)
    try:
        assert os.fstat(fd).st_size == 0
        os.write(fd, b"abc")
    finally:
        os.close(fd)
    assert os.stat(p).st_size == 3
    assert read(p) == b"abc"
    write(p, b"")  # "wb" is O_TRUNC too
    assert read(p) == b""


def test_o_append_from_two_fds_interleaved(d):
    """Two O_APPEND fds writing in turn: each write lands at the end as it is then, even after an lseek."""
    p = d / "log"
    write(p, b"start\n")
    a = os.open(p, os.O_WRONLY | os.O_APPEND)
    b = os.open(p, os.O_WRONLY | os.O_APPEND)
    expected = b"start\n"
    try:
        for i in range(40):
            line = f"line {i} from {'a' if i % 2 == 0 else 'b'}\n".encode()
            os.write(a if i % 2 == 0 else b, line)
            expected += line
        os.lseek(a, 0, os.SEEK_SET)
        os.write(a, b"end\n")
        expected += b"end\n"
    finally:
        os.close(a)
        os.close(b)
    assert read(p) == expected


def test_o_excl(d):
    """O_CREAT|O_EXCL creates a new name once; on an existing file, folder or dangling symlink it is EEXIST."""
    p = d / "once"
    os.close(os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    expect_errno(errno.EEXIST, os.open, p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    os.mkdir(d / "dir")
    expect_errno(errno.EEXIST, os.open, d / "dir", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    os.symlink("nowhere", d / "dangling")
    expect_errno(errno.EEXIST, os.open, d / "dangling", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    assert not os.path.exists(d / "nowhere"), "O_EXCL must not follow a symlink"


def test_sparse_file(d, mnt, repo):
    """A write past the end leaves a hole that reads as zeros, here across a whole chunk (5 MiB)."""
    p = d / "sparse"
    tail_at = 2 * CHUNK + 17
    with open(p, "wb") as f:
        f.write(b"head")
        f.seek(tail_at)
        f.write(b"tail")
    assert os.stat(p).st_size == tail_at + 4
    data = read(p)
    assert len(data) == tail_at + 4
    assert data[:4] == b"head" and data[-4:] == b"tail"
    assert data[4:tail_at] == bytes(tail_at - 4), "the hole does not read as zeros"
    # A hole inside an existing file: pwrite past the end of a short file through an open fd.
    q = d / "short"
    write(q, b"abc")
    fd = os.open(q, os.O_WRONLY)
    try:
        os.pwrite(fd, b"z", 100_000)
    finally:
        os.close(fd)
    assert read(q) == b"abc" + bytes(100_000 - 3) + b"z"
    repo.expect_object(mnt.bucket, key_of(mnt, p), data)


def test_truncate_up_and_down(d):
    """truncate(2) and ftruncate(2) shrink and grow a file; what grows reads as zeros, never as the bytes
    that were cut off before; growing across the chunk boundary and shrinking inside the second chunk."""
    p = d / "t"
    data = os.urandom(1000)
    write(p, data)
    os.truncate(p, 10)
    assert os.stat(p).st_size == 10 and read(p) == data[:10]
    os.truncate(p, 1000)
    assert read(p) == data[:10] + bytes(990), "bytes cut off by a truncate came back when it grew again"
    model = bytearray(data[:10] + bytes(990))
    with open(p, "r+b") as f:
        fd = f.fileno()
        os.ftruncate(fd, 3)
        del model[3:]
        assert os.fstat(fd).st_size == 3 and os.pread(fd, 100, 0) == bytes(model)
        os.ftruncate(fd, CHUNK + 100)
        model.extend(bytes(CHUNK + 100 - 3))
        os.pwrite(fd, b"xyzw", CHUNK - 2)
        model[CHUNK - 2:CHUNK + 2] = b"xyzw"
        assert os.fstat(fd).st_size == CHUNK + 100
        os.ftruncate(fd, CHUNK + 1)
        del model[CHUNK + 1:]
        assert os.pread(fd, 10, CHUNK - 2) == b"xyz"
    assert os.stat(p).st_size == CHUNK + 1
    assert read(p) == bytes(model)
    os.truncate(p, 0)
    assert os.stat(p).st_size == 0 and read(p) == b""


def test_large_file_with_random_writes(d, mnt, repo, tmp_path):
    """20 MiB (four chunk boundaries), then 4 KiB writes at random offsets, on chunk boundaries and past the
    end, mirrored on a local reference file: equal through the mount, through `a67 get`, and after a remount."""
    size = 20 * MiB
    ref = tmp_path / "reference"
    p = d / "large.bin"
    with open(ref, "wb") as r, open(p, "wb") as m:
        for _ in range(size // MiB):
            block = os.urandom(MiB)
            r.write(block)
            m.write(block)
    rng = random.Random(20)
    offsets = [CHUNK - 2048, 2 * CHUNK - 1, 3 * CHUNK - 4095, 4 * CHUNK - 2000, 0, size - 100]
    offsets += [rng.randrange(0, size - 4096) for _ in range(200)]
    with open(ref, "r+b") as r, open(p, "r+b") as m:
        for i, offset in enumerate(offsets):
            block = os.urandom(4096)
            os.pwrite(r.fileno(), block, offset)
            os.pwrite(m.fileno(), block, offset)
            if i % 20 == 0:
                at = rng.randrange(0, size)
                assert os.pread(m.fileno(), 64 * KiB, at) == os.pread(r.fileno(), 64 * KiB, at), f"read at {at}"
    expected = sha256_file(ref)
    assert os.stat(p).st_size == size - 100 + 4096
    assert sha256_file(p) == expected
    repo.expect_object(mnt.bucket, key_of(mnt, p), ref.read_bytes())
    mnt.remount()
    assert os.stat(p).st_size == size - 100 + 4096
    assert sha256_file(p) == expected, "the file changed across umount and mount"


# --- directories ---

def test_mkdir_rmdir(d):
    """mkdir and rmdir, with the errors: EEXIST, ENOTEMPTY, ENOTDIR, EISDIR, ENOENT."""
    sub = d / "sub"
    os.mkdir(sub)
    assert stat.S_ISDIR(os.stat(sub).st_mode)
    expect_errno(errno.EEXIST, os.mkdir, sub)
    write(sub / "f", b"x")
    expect_errno(errno.ENOTEMPTY, os.rmdir, sub)
    expect_errno(errno.ENOTDIR, os.rmdir, sub / "f")
    expect_errno(errno.EISDIR, os.unlink, sub)
    expect_errno(errno.ENOTDIR, os.mkdir, sub / "f" / "below-a-file")
    expect_errno(errno.ENOENT, os.mkdir, d / "missing" / "child")
    os.makedirs(d / "a" / "b" / "c")
    assert os.listdir(d / "a" / "b") == ["c"]
    os.unlink(sub / "f")
    os.rmdir(sub)
    expect_errno(errno.ENOENT, os.stat, sub)
    expect_errno(errno.ENOENT, os.rmdir, sub)
    assert sorted(os.listdir(d)) == ["a"]


def test_readdir_names_and_types(d):
    """readdir lists exactly the entries (no . or ..), with their types, for awkward names too."""
    names = {"plain": "file", "with space": "file", "ünïcödé ✓": "file", ".hidden": "file", "dot.ted": "file",
             "folder": "dir", "link": "symlink", "-dash": "file", "x" * 200: "file"}
    for name, kind in names.items():
        if kind == "file":
            write(d / name, name.encode())
        elif kind == "dir":
            os.mkdir(d / name)
        else:
            os.symlink("plain", d / name)
    assert sorted(os.listdir(d)) == sorted(names)
    with os.scandir(d) as it:
        seen = {e.name: ("symlink" if e.is_symlink() else "dir" if e.is_dir(follow_symlinks=False) else
                         "file" if e.is_file(follow_symlinks=False) else "?") for e in it}
    assert seen == names
    for name, kind in names.items():
        if kind == "file":
            assert read(d / name) == name.encode()


def test_readdir_10000_entries(d):
    """A folder of 10,000 entries: listed whole (every name once), stat-able, and removed while being read,
    which must still return every remaining entry exactly once (readdir offsets that survive unlinks)."""
    big = d / "big"
    os.mkdir(big)
    names = [f"entry-{i:05d}" + ("-long-name-" * 3 if i % 7 == 0 else "") for i in range(10_000)]
    for name in names:
        os.close(os.open(big / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    listed = os.listdir(big)
    assert len(listed) == len(names), f"{len(listed)} entries listed, {len(names)} created"
    assert set(listed) == set(names)
    for name in random.Random(3).sample(names, 100):
        st = os.stat(big / name)
        assert stat.S_ISREG(st.st_mode) and st.st_size == 0
    seen = []
    with os.scandir(big) as it:
        for entry in it:
            seen.append(entry.name)
            os.unlink(entry.path)
    duplicates = len(seen) - len(set(seen))
    assert duplicates == 0, f"readdir returned {duplicates} entries twice while they were being removed"
    assert set(seen) == set(names), f"readdir skipped {len(set(names) - set(seen))} entries while others were removed"
    assert os.listdir(big) == []
    os.rmdir(big)


# --- links ---

def test_symlink_readlink(d):
    """Symbolic links: readlink gives the target as written, lstat sees a link, stat and open follow it,
    a dangling one stats as ENOENT; a long target survives."""
    write(d / "target", b"through the link")
    os.symlink("target", d / "rel")
    os.symlink(str(d / "target"), d / "abs")
    os.symlink("../" + d.name + "/missing", d / "dangling")
    long_target = "/".join(["segment-%03d" % i for i in range(300)])  # 3,599 bytes
    os.symlink(long_target, d / "long")
    assert os.readlink(d / "rel") == "target"
    assert os.readlink(d / "abs") == str(d / "target")
    assert os.readlink(d / "long") == long_target
    assert stat.S_ISLNK(os.lstat(d / "rel").st_mode)
    assert os.lstat(d / "rel").st_size == len("target")
    assert stat.S_ISREG(os.stat(d / "rel").st_mode)
    assert read(d / "rel") == b"through the link" and read(d / "abs") == b"through the link"
    expect_errno(errno.ENOENT, os.stat, d / "dangling")
    assert stat.S_ISLNK(os.lstat(d / "dangling").st_mode)
    expect_errno(errno.EINVAL, os.readlink, d / "target")
    os.mkdir(d / "dir")
    os.symlink("dir", d / "dirlink")
    write(d / "dirlink" / "inside", b"i")
    assert read(d / "dir" / "inside") == b"i"
    os.unlink(d / "rel")
    assert read(d / "target") == b"through the link", "removing a link removed its target"


def test_hard_links(d):
    """link(2): both names share one inode (st_ino equal, nlink 2), a write through one shows through the
    other, and removing one name keeps the content under the other."""
    a, b = d / "a", d / "b"
    write(a, b"original")
    assert os.stat(a).st_nlink == 1
    os.link(a, b)
    sa, sb = os.stat(a), os.stat(b)
    assert sa.st_ino == sb.st_ino
    assert sa.st_nlink == 2 and sb.st_nlink == 2
    with open(b, "r+b") as f:
        f.seek(8)
        f.write(b" + more")
    assert read(a) == b"original + more"
    os.chmod(a, 0o600)
    assert stat.S_IMODE(os.stat(b).st_mode) == 0o600, "a chmod through one name does not show through the other"
    expect_errno(errno.EEXIST, os.link, a, b)
    os.mkdir(d / "dir")
    expect_errno(errno.EPERM, os.link, d / "dir", d / "dirlink")
    os.unlink(a)
    assert not os.path.exists(a)
    assert read(b) == b"original + more"
    assert os.stat(b).st_nlink == 1
    os.link(b, d / "dir" / "c")  # into another folder
    assert os.stat(d / "dir" / "c").st_ino == sb.st_ino and os.stat(b).st_nlink == 2


# --- rename ---

def test_rename_file_same_dir(d):
    """A file renamed within its folder: the content under the new name, the old name gone, the inode kept."""
    write(d / "old", b"content")
    ino = os.stat(d / "old").st_ino
    os.rename(d / "old", d / "new")
    assert read(d / "new") == b"content" and os.stat(d / "new").st_ino == ino
    expect_errno(errno.ENOENT, os.stat, d / "old")
    assert os.listdir(d) == ["new"]


def test_rename_file_across_dirs(d):
    """A file moved to another folder."""
    os.mkdir(d / "x")
    os.mkdir(d / "y")
    write(d / "x" / "f", b"moving")
    os.rename(d / "x" / "f", d / "y" / "g")
    assert read(d / "y" / "g") == b"moving"
    assert os.listdir(d / "x") == [] and os.listdir(d / "y") == ["g"]


def test_rename_file_over_existing_file(d, mnt, repo):
    """A rename onto an existing file replaces it atomically (what editors and rsync rely on)."""
    write(d / "src", b"new content")
    write(d / "dst", b"old content that is longer")
    os.rename(d / "src", d / "dst")
    assert read(d / "dst") == b"new content"
    assert os.listdir(d) == ["dst"]
    repo.expect_object(mnt.bucket, key_of(mnt, d / "dst"), b"new content")
    assert repo.get(mnt.bucket, key_of(mnt, d / "src")) is None


def test_rename_dir(d, mnt, repo):
    """A folder renamed with what it holds: the children follow, in the mount and in `a67 ls`."""
    os.makedirs(d / "old" / "inner")
    write(d / "old" / "top.txt", b"top")
    write(d / "old" / "inner" / "deep.txt", b"deep")
    os.rename(d / "old", d / "new")
    assert read(d / "new" / "top.txt") == b"top" and read(d / "new" / "inner" / "deep.txt") == b"deep"
    expect_errno(errno.ENOENT, os.stat, d / "old")
    prefix = key_of(mnt, d)
    assert repo.ls(mnt.bucket, prefix + "/") == {f"{prefix}/new/top.txt": 3, f"{prefix}/new/inner/deep.txt": 4}
    repo.expect_object(mnt.bucket, f"{prefix}/new/inner/deep.txt", b"deep")


def test_rename_dir_over_empty_dir(d):
    """A folder renamed onto an empty folder replaces it."""
    os.mkdir(d / "src")
    write(d / "src" / "f", b"f")
    os.mkdir(d / "empty")
    os.rename(d / "src", d / "empty")
    assert os.listdir(d) == ["empty"] and read(d / "empty" / "f") == b"f"


def test_rename_dir_over_nonempty_dir(d):
    """A folder renamed onto a folder that holds something is ENOTEMPTY, and nothing moves."""
    os.mkdir(d / "src")
    os.mkdir(d / "full")
    write(d / "full" / "keep", b"k")
    expect_errno((errno.ENOTEMPTY, errno.EEXIST), os.rename, d / "src", d / "full")
    assert sorted(os.listdir(d)) == ["full", "src"] and read(d / "full" / "keep") == b"k"


def test_rename_file_over_dir(d):
    """A file renamed onto a folder is EISDIR."""
    write(d / "f", b"f")
    os.mkdir(d / "dir")
    expect_errno(errno.EISDIR, os.rename, d / "f", d / "dir")
    assert read(d / "f") == b"f" and os.path.isdir(d / "dir")


def test_rename_dir_over_file(d):
    """A folder renamed onto a file is ENOTDIR."""
    os.mkdir(d / "dir")
    write(d / "f", b"f")
    expect_errno(errno.ENOTDIR, os.rename, d / "dir", d / "f")
    assert read(d / "f") == b"f" and os.path.isdir(d / "dir")


def test_rename_dir_into_its_own_subdir(d):
    """A folder moved below itself is EINVAL."""
    os.makedirs(d / "a" / "b")
    expect_errno(errno.EINVAL, os.rename, d / "a", d / "a" / "b" / "c")
    assert os.listdir(d) == ["a"] and os.listdir(d / "a") == ["b"]


def test_rename_noreplace(d):
    """renameat2(RENAME_NOREPLACE): EEXIST onto an existing name (both unchanged), a plain rename onto a new one."""
    write(d / "a", b"a")
    write(d / "b", b"b")
    expect_errno(errno.EEXIST, renameat2, d / "a", d / "b", RENAME_NOREPLACE)
    assert read(d / "a") == b"a" and read(d / "b") == b"b"
    renameat2(d / "a", d / "c", RENAME_NOREPLACE)
    assert sorted(os.listdir(d)) == ["b", "c"] and read(d / "c") == b"a"


def test_rename_exchange_files(d, mnt, repo):
    """renameat2(RENAME_EXCHANGE) of two files swaps them atomically (inodes follow their content)."""
    write(d / "a", b"content of a")
    write(d / "b", b"content of b, longer")
    ino_a, ino_b = os.stat(d / "a").st_ino, os.stat(d / "b").st_ino
    renameat2(d / "a", d / "b", RENAME_EXCHANGE)
    assert read(d / "a") == b"content of b, longer" and read(d / "b") == b"content of a"
    assert os.stat(d / "a").st_ino == ino_b and os.stat(d / "b").st_ino == ino_a
    repo.expect_object(mnt.bucket, key_of(mnt, d / "a"), b"content of b, longer")
    expect_errno(errno.ENOENT, renameat2, d / "a", d / "missing", RENAME_EXCHANGE)


def test_rename_exchange_file_and_dir(d, mnt, repo):
    """RENAME_EXCHANGE of a file and a folder: the names swap kinds, the folder's children follow it."""
    write(d / "f", b"file content")
    os.mkdir(d / "dir")
    write(d / "dir" / "child", b"child")
    renameat2(d / "f", d / "dir", RENAME_EXCHANGE)
    assert os.path.isdir(d / "f") and read(d / "f" / "child") == b"child"
    assert os.path.isfile(d / "dir") and read(d / "dir") == b"file content"
    prefix = key_of(mnt, d)
    assert repo.ls(mnt.bucket, prefix + "/") == {f"{prefix}/f/child": 5, f"{prefix}/dir": 12}


# --- unlink ---

def test_unlink_while_open(d):
    """A file removed while open: its fd still reads, writes and fstats; the name is gone at once."""
    p = d / "doomed"
    fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        os.write(fd, b"before unlink;")
        os.unlink(p)
        expect_errno(errno.ENOENT, os.stat, p)
        assert os.listdir(d) == []
        os.write(fd, b" after unlink")
        assert os.pread(fd, 100, 0) == b"before unlink; after unlink"
        st = os.fstat(fd)
        assert st.st_size == 27 and st.st_nlink == 0
        os.fsync(fd)
        os.ftruncate(fd, 6)
        assert os.pread(fd, 100, 0) == b"before"
    finally:
        os.close(fd)
    assert os.listdir(d) == []
    write(p, b"a new file under the old name")
    assert read(p) == b"a new file under the old name"


def test_unlinked_file_goes_to_trash(d, mnt, repo):
    """An unlink through the mount is an S3 delete: the object lands in the trash, and `a67 undelete`
    brings it back into the mount."""
    p = d / "trashed.txt"
    write(p, b"keep me for 30 days")
    key = key_of(mnt, p)
    os.unlink(p)
    assert repo.get(mnt.bucket, key) is None
    trash = repo.a67_json("undelete", "--list", mnt.bucket)
    assert any(t["key"] == key and t["size"] == 19 for t in trash), f"{key} is not in the trash: {trash}"
    repo.a67("undelete", f"{mnt.bucket}/{key}")
    wait_for(lambda: os.path.exists(p), f"{p} after a67 undelete")
    assert read(p) == b"keep me for 30 days"


# --- attributes ---

def test_chmod(d):
    """chmod and fchmod set the permission bits (setuid, setgid and sticky too) on files and folders."""
    p = d / "f"
    write(p, b"x")
    for mode in (0o640, 0o755, 0o4755, 0o2750, 0o000, 0o644):
        os.chmod(p, mode)
        assert stat.S_IMODE(os.stat(p).st_mode) == mode, oct(mode)
    with open(p, "rb") as f:
        os.fchmod(f.fileno(), 0o600)
        assert stat.S_IMODE(os.fstat(f.fileno()).st_mode) == 0o600
    os.mkdir(d / "dir")
    os.chmod(d / "dir", 0o1777)
    st = os.stat(d / "dir")
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o1777


def test_chown(d):
    """chown as root sets uid and gid (-1 keeps one); lchown changes a symlink, not its target."""
    p = d / "f"
    write(p, b"x")
    os.chown(p, 1234, 5678)
    st = os.stat(p)
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    os.chown(p, -1, 4321)
    st = os.stat(p)
    assert (st.st_uid, st.st_gid) == (1234, 4321)
    os.symlink("f", d / "link")
    os.lchown(d / "link", 1111, 2222)
    assert (os.lstat(d / "link").st_uid, os.lstat(d / "link").st_gid) == (1111, 2222)
    assert (os.stat(p).st_uid, os.stat(p).st_gid) == (1234, 4321)
    os.mkdir(d / "dir")
    os.chown(d / "dir", 99, 98)
    assert (os.stat(d / "dir").st_uid, os.stat(d / "dir").st_gid) == (99, 98)


def test_utime_nanoseconds(d):
    """utimensat with nanoseconds: atime and mtime come back exactly, on files, folders and far dates;
    utime(None) means now."""
    p = d / "f"
    write(p, b"x")
    for atime, mtime in [(1_500_000_000_111_222_333, 1_600_000_000_444_555_666), (0, 1), (4_000_000_000_999_999_999, 86_400_000_000_007)]:
        os.utime(p, ns=(atime, mtime))
        st = os.stat(p)
        assert (st.st_atime_ns, st.st_mtime_ns) == (atime, mtime)
    os.mkdir(d / "dir")
    os.utime(d / "dir", ns=(1_234_567_890_123_456_789, 1_234_567_890_987_654_321))
    assert os.stat(d / "dir").st_mtime_ns == 1_234_567_890_987_654_321
    before = time.time()
    os.utime(p)
    after = time.time()
    assert before - 1 <= os.stat(p).st_mtime <= after + 1


def test_mtime_changes_on_write(d):
    """A write moves st_mtime to now (make, rsync and editors depend on it), seen through a fresh stat."""
    p = d / "f"
    write(p, b"first")
    old = 1_000_000_000_000_000_000
    os.utime(p, ns=(old, old))
    before = time.time()
    with open(p, "ab") as f:
        f.write(b" second")
    st = os.stat(p)
    assert st.st_mtime_ns != old, "a write left st_mtime unchanged"
    assert before - 1 <= st.st_mtime <= time.time() + 1, f"st_mtime {st.st_mtime} is not the time of the write"
    os.utime(p, ns=(old, old))
    os.truncate(p, 2)
    assert os.stat(p).st_mtime_ns != old, "a truncate left st_mtime unchanged"


# --- permissions (the kernel's default_permissions, with --allow-other) ---

def test_other_user_refused_without_allow_other(mnt):
    """Without --allow-other only the user who mounted reaches the mount: uid 65534 gets EACCES."""
    code, _ = as_user(f"os.stat({str(mnt.path)!r})")
    assert code == errno.EACCES, f"uid {NOBODY} stat of a mount without --allow-other: {errno.errorcode.get(code, code)}"


def test_other_user_cannot_open_0600_file(shared_mnt, request):
    """A 0600 file of root's: another user may stat it but gets EACCES opening it, and cannot create in a
    0755 folder of root's."""
    d = subfolder(shared_mnt, request)
    p = d / "secret"
    os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o600))
    os.chmod(p, 0o600)
    write(p, b"root only")
    code, result = as_user(f"result = os.stat({str(p)!r}).st_uid")
    assert code is None and result == 0, f"uid {NOBODY} cannot stat a file in a 0755 folder: {code}"
    code, _ = as_user(f"open({str(p)!r}, 'rb').read()")
    assert code == errno.EACCES, f"uid {NOBODY} opening root's 0600 file: {errno.errorcode.get(code, code)}"
    code, _ = as_user(f"open({str(d / 'intruder')!r}, 'wb').close()")
    assert code == errno.EACCES, f"uid {NOBODY} creating in root's 0755 folder: {errno.errorcode.get(code, code)}"
    assert not os.path.exists(d / "intruder")


def test_other_user_files_are_theirs(shared_mnt, request):
    """What another user creates in a 0777 folder belongs to them (st_uid and st_gid 65534), as root sees it too."""
    d = subfolder(shared_mnt, request)
    os.chmod(d, 0o777)
    p, sub = d / "mine", d / "mydir"
    code, result = as_user(f"""
with open({str(p)!r}, 'wb') as f:
    f.write(b'made by nobody')
os.mkdir({str(sub)!r})
st = os.stat({str(p)!r})
result = [st.st_uid, st.st_gid, open({str(p)!r}, 'rb').read().decode()]
""")
    assert code is None, f"uid {NOBODY} could not create in a 0777 folder: {errno.errorcode.get(code, code)}"
    assert result == [NOBODY, NOBODY, "made by nobody"]
    for path in (p, sub):
        st = os.stat(path)
        assert (st.st_uid, st.st_gid) == (NOBODY, NOBODY), f"{path.name} is owned by {st.st_uid}:{st.st_gid}"
    assert read(p) == b"made by nobody"


def test_other_user_cannot_change_roots_file(shared_mnt, request):
    """Only the owner (or root) changes a file's mode, owner or explicit times: EPERM for another user."""
    d = subfolder(shared_mnt, request)
    p = d / "roots"
    write(p, b"x")
    os.chmod(p, 0o644)
    code, _ = as_user(f"os.chmod({str(p)!r}, 0o666)")
    assert code == errno.EPERM, f"chmod of root's file by uid {NOBODY}: {errno.errorcode.get(code, code)}"
    code, _ = as_user(f"os.chown({str(p)!r}, {NOBODY}, {NOBODY})")
    assert code == errno.EPERM, f"chown of root's file by uid {NOBODY}: {errno.errorcode.get(code, code)}"
    code, _ = as_user(f"os.utime({str(p)!r}, ns=(1, 1))")
    assert code == errno.EPERM, f"utime of root's file by uid {NOBODY}: {errno.errorcode.get(code, code)}"
    code, _ = as_user(f"open({str(p)!r}, 'ab')")
    assert code == errno.EACCES, f"writing root's 0644 file as uid {NOBODY}: {errno.errorcode.get(code, code)}"
    st = os.stat(p)
    assert stat.S_IMODE(st.st_mode) == 0o644 and st.st_uid == 0 and read(p) == b"x"


# --- extended attributes ---

def test_xattrs(d):
    """user.* extended attributes: set, get, list, replace, remove; ENODATA for a missing one, EEXIST for
    XATTR_CREATE on an existing one; binary and empty values; on folders too."""
    p = d / "f"
    write(p, b"x")
    os.setxattr(p, "user.color", b"blue")
    os.setxattr(p, "user.binary", bytes(range(256)) * 4)
    os.setxattr(p, "user.empty", b"")
    assert os.getxattr(p, "user.color") == b"blue"
    assert os.getxattr(p, "user.binary") == bytes(range(256)) * 4
    assert os.getxattr(p, "user.empty") == b""
    assert {n for n in os.listxattr(p) if n.startswith("user.")} == {"user.color", "user.binary", "user.empty"}
    os.setxattr(p, "user.color", b"red")
    assert os.getxattr(p, "user.color") == b"red"
    expect_errno(errno.EEXIST, os.setxattr, p, "user.color", b"green", os.XATTR_CREATE)
    expect_errno(errno.ENODATA, os.setxattr, p, "user.absent", b"v", os.XATTR_REPLACE)
    os.setxattr(p, "user.color", b"green", os.XATTR_REPLACE)
    os.setxattr(p, "user.new", b"v", os.XATTR_CREATE)
    assert os.getxattr(p, "user.color") == b"green" and os.getxattr(p, "user.new") == b"v"
    expect_errno(errno.ENODATA, os.getxattr, p, "user.missing")
    os.removexattr(p, "user.color")
    expect_errno(errno.ENODATA, os.getxattr, p, "user.color")
    expect_errno(errno.ENODATA, os.removexattr, p, "user.color")
    assert {n for n in os.listxattr(p) if n.startswith("user.")} == {"user.binary", "user.empty", "user.new"}
    os.mkdir(d / "dir")
    os.setxattr(d / "dir", "user.on-a-folder", b"yes")
    assert os.getxattr(d / "dir", "user.on-a-folder") == b"yes"
    assert read(p) == b"x", "xattr calls changed the content"


# --- limits ---

def test_statfs(mnt, d):
    """statvfs of the mount: names up to 255 bytes, and a block count with free <= total."""
    for path in (mnt.path, d):
        st = os.statvfs(path)
        assert st.f_namemax == 255, st
        assert st.f_bsize > 0 and st.f_frsize > 0, st
        assert st.f_blocks > 0, st
        assert st.f_bfree <= st.f_blocks and st.f_bavail <= st.f_blocks, st


def test_name_length_limit(d):
    """Names of 255 bytes work; 256 bytes (counted in UTF-8 bytes, not characters) are ENAMETOOLONG for
    create, mkdir, symlink, link and rename."""
    ok, too = "n" * 255, "n" * 256
    ok_multibyte, too_multibyte = "é" * 127 + "e", "é" * 128  # 255 and 256 bytes
    write(d / ok, b"ok")
    os.mkdir(d / ("m" * 255))
    write(d / ok_multibyte, b"ok too")
    assert read(d / ok) == b"ok" and read(d / ok_multibyte) == b"ok too"
    assert os.path.isdir(d / ("m" * 255))
    for name in (too, too_multibyte):
        expect_errno(errno.ENAMETOOLONG, os.open, d / name, os.O_CREAT | os.O_WRONLY, 0o644)
        expect_errno(errno.ENAMETOOLONG, os.mkdir, d / name)
        expect_errno(errno.ENAMETOOLONG, os.symlink, "target", d / name)
        expect_errno(errno.ENAMETOOLONG, os.link, d / ok, d / name)
        expect_errno(errno.ENAMETOOLONG, os.rename, d / ok, d / name)
        expect_errno((errno.ENAMETOOLONG, errno.ENOENT), os.stat, d / name)
    assert sorted(os.listdir(d)) == sorted([ok, "m" * 255, ok_multibyte])


# --- persistence ---

def test_inodes_and_metadata_survive_remount(d, mnt):
    """After umount and mount: the same st_ino for a file, a folder, a symlink and a hard link, and the same
    mode, owner, times, link count, link target, xattrs and content."""
    f, sub, link, hard = d / "file", d / "dir", d / "link", d / "hard"
    write(f, b"persistent")
    os.mkdir(sub)
    write(sub / "inner", b"inner")
    os.symlink("file", link)
    os.link(f, hard)
    os.chmod(f, 0o640)
    os.chown(f, 1001, 1002)
    os.chmod(sub, 0o750)
    os.setxattr(f, "user.kept", b"across remounts")
    os.utime(f, ns=(1_700_000_000_000_000_001, 1_700_000_000_123_456_789))
    os.utime(sub, ns=(1_700_000_000_000_000_002, 1_700_000_000_987_654_321))

    def snapshot():
        out = {}
        for path in (d, f, sub, sub / "inner", link, hard):
            st = os.lstat(path)
            out[path.name] = (st.st_ino, st.st_mode, st.st_uid, st.st_gid, st.st_nlink, st.st_size,
                              None if path in (d, sub) else st.st_mtime_ns)
        out["dir mtime"] = os.lstat(sub).st_mtime_ns
        out["readlink"] = os.readlink(link)
        out["xattr"] = os.getxattr(f, "user.kept")
        out["content"] = read(f)
        return out

    before = snapshot()
    assert len({before[n][0] for n in ("file", "dir", "inner", "link")}) == 4, f"st_ino values collide: {before}"
    assert before["hard"][0] == before["file"][0]
    mnt.remount()
    after = snapshot()
    assert after == before


# --- one namespace with the CLI ---

def test_written_file_visible_to_cli(d, mnt, repo):
    """A file written through the mount is an object once close returns: `a67 get` returns its bytes and
    `a67 ls` lists it with its size; a change and a rename show the same way."""
    p = d / "deep" / "er" / "file.bin"
    os.makedirs(p.parent)
    data = os.urandom(CHUNK + 300 * KiB)
    write(p, data)
    key = key_of(mnt, p)
    repo.expect_object(mnt.bucket, key, data)
    assert repo.ls(mnt.bucket, key_of(mnt, d) + "/") == {key: len(data)}
    with open(p, "r+b") as f:
        f.seek(CHUNK - 1)
        f.write(b"CHANGED")
        f.seek(0, os.SEEK_END)
        f.write(b"appended")
    expected = data[:CHUNK - 1] + b"CHANGED" + data[CHUNK + 6:] + b"appended"
    repo.expect_object(mnt.bucket, key, expected, "after a change through the mount")
    os.rename(p, d / "renamed.bin")
    assert repo.ls(mnt.bucket, key_of(mnt, d) + "/") == {key_of(mnt, d / "renamed.bin"): len(expected)}


def test_cli_put_appears_in_mount(d, mnt, repo):
    """An object put with `a67 put` (to a new key in a new folder, and over a file the mount has read)
    shows in the mount within VISIBLE_DEADLINE seconds with its content."""
    key = key_of(mnt, d) + "/from-cli/new.bin"
    first = os.urandom(200 * KiB)
    repo.put(mnt.bucket, key, first)
    target = d / "from-cli" / "new.bin"
    wait_for(lambda: "new.bin" in os.listdir(d / "from-cli"), f"{key} in the mount's listing after a67 put")
    assert os.path.isdir(d / "from-cli")
    assert read(target) == first
    second = b"replaced by a67 put"
    repo.put(mnt.bucket, key, second)
    wait_for(lambda: read(target) == second, f"the new content of {key} in the mount after a second a67 put")
    assert os.stat(target).st_size == len(second)


def test_cli_rm_disappears_from_mount(d, mnt, repo):
    """An object removed with `a67 rm` leaves the mount within VISIBLE_DEADLINE seconds."""
    p = d / "short-lived.txt"
    write(p, b"bye")
    repo.a67("rm", f"{mnt.bucket}/{key_of(mnt, p)}")
    wait_for(lambda: not os.path.exists(p) and "short-lived.txt" not in os.listdir(d),
             f"{p} gone from the mount after a67 rm", deadline=VISIBLE_DEADLINE)
    expect_errno(errno.ENOENT, open, p, "rb")


def test_special_files(d, mnt, repo):
    """FIFOs, sockets and device nodes (mknod) are entries with their type, mode and device number; they
    can be hard-linked, renamed and removed like files, and they are not objects: `a67 ls` lists only the
    regular file beside them."""
    os.mkfifo(d / "fifo", 0o640)
    os.mknod(d / "block", 0o600 | stat.S_IFBLK, os.makedev(1, 2))
    os.mknod(d / "char", 0o644 | stat.S_IFCHR, os.makedev(3, 4))
    os.mknod(d / "plain", 0o644 | stat.S_IFREG)
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(d / "sock"))
    st = os.lstat(d / "fifo")
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640 and st.st_nlink == 1
    assert stat.S_ISBLK(os.lstat(d / "block").st_mode) and os.lstat(d / "block").st_rdev == os.makedev(1, 2)
    assert stat.S_ISCHR(os.lstat(d / "char").st_mode) and os.lstat(d / "char").st_rdev == os.makedev(3, 4)
    assert stat.S_ISSOCK(os.lstat(d / "sock").st_mode)
    assert stat.S_ISREG(os.lstat(d / "plain").st_mode) and os.lstat(d / "plain").st_size == 0
    os.link(d / "fifo", d / "fifo2")
    assert os.lstat(d / "fifo").st_nlink == 2 and os.lstat(d / "fifo2").st_ino == st.st_ino
    os.rename(d / "char", d / "char2")
    assert stat.S_ISCHR(os.lstat(d / "char2").st_mode)
    expect_errno(errno.EEXIST, os.mkfifo, d / "block")
    assert repo.ls(mnt.bucket, key_of(mnt, d) + "/") == {key_of(mnt, d / "plain"): 0}
    os.unlink(d / "fifo")
    assert os.lstat(d / "fifo2").st_nlink == 1
    for name in ("fifo2", "block", "char2", "sock", "plain"):
        os.unlink(d / name)
    assert os.listdir(d) == []


def test_put_onto_a_fifo_or_symlink_replaces_it(d, mnt, repo):
    """A FIFO or symlink made in the mount is not an object (not listed; `a67 get` names it as what it is). An
    object put on its key replaces it, as S3 overwrites any key (and as rename(2) onto it would): the mount
    then shows a regular file with the object's content, and `a67 ls` and `a67 get` agree with it. The same
    commit serves S3's PUT, CopyObject and CompleteMultipartUpload."""
    os.mkfifo(d / "fifo", 0o640)
    os.symlink("fifo", d / "link")
    fifo_key, link_key = key_of(mnt, d / "fifo"), key_of(mnt, d / "link")
    for key, kind in ((fifo_key, "a FIFO"), (link_key, "a symbolic link")):
        result = repo.a67("get", f"{mnt.bucket}/{key}", "-", check=False, binary=True)
        message = result.stderr.decode(errors="replace")
        assert result.returncode == 2 and f"is {kind} (made in a mount)" in message, (result.returncode, message)
    assert repo.ls(mnt.bucket, key_of(mnt, d) + "/") == {}
    repo.put(mnt.bucket, fifo_key, b"now an object")
    repo.put(mnt.bucket, link_key, b"no longer a link")
    # Checked before any open: opening a FIFO for reading would block.
    wait_for(lambda: stat.S_ISREG(os.lstat(d / "fifo").st_mode), f"{d / 'fifo'} shown as a regular file after a67 put")
    wait_for(lambda: stat.S_ISREG(os.lstat(d / "link").st_mode), f"{d / 'link'} shown as a regular file after a67 put")
    assert os.lstat(d / "fifo").st_size == len(b"now an object") and os.lstat(d / "fifo").st_rdev == 0
    assert read(d / "fifo") == b"now an object"
    assert read(d / "link") == b"no longer a link"
    assert repo.ls(mnt.bucket, key_of(mnt, d) + "/") == {fifo_key: 13, link_key: 16}
    repo.expect_object(mnt.bucket, fifo_key, b"now an object")
    repo.expect_object(mnt.bucket, link_key, b"no longer a link")

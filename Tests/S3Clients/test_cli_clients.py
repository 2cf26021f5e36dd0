"""The command-line S3 clients people use, unmodified, against a67 serve: the AWS CLI, rclone and s3cmd.
Each gets its credentials from files or environment variables (conftest), never on its command line."""

import math
import os
import re
from pathlib import Path

import pytest

from conftest import MiB, sha256_file, unique_bucket, which, write_random


def make_tree(root, files=20):
    """A folder tree of `files` random files in nested folders; returns {relative path: bytes}."""
    contents = {}
    for i in range(files):
        depth = i % 4
        parts = [f"dir{(i + d) % 3}" for d in range(depth)] + [f"file-{i:02d}.bin"]
        rel = "/".join(parts)
        data = os.urandom(100 + 997 * i)
        path = Path(root, rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        contents[rel] = data
    return contents


def tree_of(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(Path(root).rglob("*")) if p.is_file()}


def same_trees(a, b):
    left, right = tree_of(a), tree_of(b)
    assert sorted(left) == sorted(right), (sorted(set(left) ^ set(right)))
    differing = [k for k in left if left[k] != right[k]]
    assert not differing, f"these files differ: {differing}"


def keys(alice, bucket, prefix=""):
    return [o["Key"] for page in alice.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for o in page.get("Contents", [])]


# --- the AWS CLI ---

class AWS:
    def __init__(self, server):
        self.server = server
        self.binary = which("aws")

    def __call__(self, *args, check=True, timeout=180):
        return self.server.run_client([self.binary, "--endpoint-url", self.server.endpoint, *map(str, args)],
                                      check=check, timeout=timeout)


@pytest.fixture
def aws(server):
    return AWS(server)


def test_aws_cli_basics(server, aws, alice, scratch):
    bucket = unique_bucket("awscli")
    aws("s3", "mb", f"s3://{bucket}")
    alice.head_bucket(Bucket=bucket)
    small = scratch / "small.txt"
    small.write_bytes(b"hello from the aws cli\n" * 50)
    aws("s3", "cp", small, f"s3://{bucket}/docs/small.txt")
    aws("s3", "cp", small, f"s3://{bucket}/top.txt")
    assert alice.get_object(Bucket=bucket, Key="docs/small.txt")["Body"].read() == small.read_bytes()
    back = scratch / "back.txt"
    aws("s3", "cp", f"s3://{bucket}/docs/small.txt", back)
    assert back.read_bytes() == small.read_bytes()
    # ls: buckets, one level, and --recursive.
    assert bucket in aws("s3", "ls").stdout
    level = aws("s3", "ls", f"s3://{bucket}/").stdout
    assert re.search(r"PRE docs/", level) and re.search(r"\s1150 top\.txt", level), level
    assert "small.txt" not in level
    recursive = aws("s3", "ls", "--recursive", f"s3://{bucket}").stdout
    assert re.search(r"\s1150 docs/small\.txt", recursive) and "top.txt" in recursive, recursive
    # presign, fetched with curl.
    url = aws("s3", "presign", f"s3://{bucket}/docs/small.txt", "--expires-in", "300").stdout.strip()
    assert url.startswith(server.endpoint), url
    fetched = scratch / "fetched.txt"
    server.run_client([which("curl"), "-fsS", "-o", str(fetched), url])
    assert fetched.read_bytes() == small.read_bytes()
    # rb refuses a bucket with objects; rm --recursive empties it; then rb works.
    refused = aws("s3", "rb", f"s3://{bucket}", check=False)
    assert refused.returncode != 0 and "BucketNotEmpty" in refused.stderr, refused.stderr
    aws("s3", "rm", "--recursive", f"s3://{bucket}/")
    assert keys(alice, bucket) == []
    aws("s3", "rb", f"s3://{bucket}")
    assert bucket not in [b["Name"] for b in alice.list_buckets()["Buckets"]]


def test_aws_cli_sync(server, aws, alice, scratch):
    bucket = unique_bucket("awscli-sync")
    aws("s3", "mb", f"s3://{bucket}")
    up, down = scratch / "up", scratch / "down"
    contents = make_tree(up)
    aws("s3", "sync", up, f"s3://{bucket}/tree")
    assert sorted(keys(alice, bucket)) == sorted(f"tree/{k}" for k in contents)
    aws("s3", "sync", f"s3://{bucket}/tree", down)
    same_trees(up, down)
    # A second sync with nothing changed copies nothing.
    again = aws("s3", "sync", up, f"s3://{bucket}/tree")
    assert "upload:" not in again.stdout, again.stdout
    # A changed file and a deleted one (--delete) reach the bucket.
    changed = next(iter(contents))
    Path(up, changed).write_bytes(b"changed content")
    gone = list(contents)[-1]
    Path(up, gone).unlink()
    aws("s3", "sync", "--delete", up, f"s3://{bucket}/tree")
    assert alice.get_object(Bucket=bucket, Key=f"tree/{changed}")["Body"].read() == b"changed content"
    assert f"tree/{gone}" not in keys(alice, bucket)
    aws("s3", "sync", "--delete", f"s3://{bucket}/tree", down)
    same_trees(up, down)
    aws("s3", "rb", "--force", f"s3://{bucket}")


# --- rclone ---

class Rclone:
    def __init__(self, server):
        self.server = server
        self.binary = which("rclone")

    def __call__(self, *args, check=True):
        return self.server.run_client([self.binary, "--retries", "1", "--low-level-retries", "1", *map(str, args)],
                                      check=check)


def test_rclone(server, alice, scratch):
    rclone = Rclone(server)
    bucket = unique_bucket("rclone")
    rclone("mkdir", f"a67:{bucket}")
    alice.head_bucket(Bucket=bucket)
    src = scratch / "src"
    contents = make_tree(src)
    rclone("copy", src, f"a67:{bucket}/copied")
    assert sorted(keys(alice, bucket, "copied/")) == sorted(f"copied/{k}" for k in contents)
    for rel, data in list(contents.items())[:3]:
        assert alice.get_object(Bucket=bucket, Key=f"copied/{rel}")["Body"].read() == data
    # sync: the remote becomes the local tree; a file deleted locally disappears remotely.
    rclone("sync", src, f"a67:{bucket}/synced")
    listed = rclone("lsf", "-R", "--files-only", f"a67:{bucket}/synced").stdout.split()
    assert sorted(listed) == sorted(contents), listed
    gone = list(contents)[5]
    Path(src, gone).unlink()
    rclone("sync", src, f"a67:{bucket}/synced")
    listed = rclone("lsf", "-R", "--files-only", f"a67:{bucket}/synced").stdout.split()
    assert gone not in listed and len(listed) == len(contents) - 1, listed
    # Nothing changed: nothing copied (rclone's modification times round-trip as metadata).
    quiet = rclone("sync", "-v", src, f"a67:{bucket}/synced")
    assert "Copied" not in quiet.stderr, quiet.stderr
    rclone("check", src, f"a67:{bucket}/synced")
    # A remote object changed behind rclone's back (same size, other bytes) fails the check.
    victim = list(contents)[0]
    original = contents[victim]
    alice.put_object(Bucket=bucket, Key=f"synced/{victim}", Body=bytes(b ^ 0xFF for b in original))
    failed = rclone("check", src, f"a67:{bucket}/synced", check=False)
    assert failed.returncode != 0, f"rclone check passed a changed object: {failed.stderr}"
    assert victim in failed.stderr, failed.stderr
    # And copy back down gives the tree.
    down = scratch / "down"
    rclone("copy", f"a67:{bucket}/copied", down)
    assert tree_of(down) == contents
    rclone("purge", f"a67:{bucket}")
    assert bucket not in [b["Name"] for b in alice.list_buckets()["Buckets"]]


# --- s3cmd ---

class S3cmd:
    def __init__(self, server):
        self.server = server
        self.binary = which("s3cmd")
        self.config = server.s3cmd_config("alice")

    def __call__(self, *args, check=True):
        host = f"127.0.0.1:{self.server.port}"
        return self.server.run_client([self.binary, "-c", str(self.config), f"--host={host}", f"--host-bucket={host}",
                                       "--no-ssl", *map(str, args)], check=check)


def test_s3cmd(server, alice, scratch):
    s3cmd = S3cmd(server)
    bucket = unique_bucket("s3cmd")
    s3cmd("mb", f"s3://{bucket}")
    alice.head_bucket(Bucket=bucket)
    assert f"s3://{bucket}" in s3cmd("ls").stdout
    data = os.urandom(300_000)
    source = scratch / "one.bin"
    source.write_bytes(data)
    s3cmd("put", source, f"s3://{bucket}/one.bin")
    assert alice.get_object(Bucket=bucket, Key="one.bin")["Body"].read() == data
    listing = s3cmd("ls", f"s3://{bucket}").stdout
    assert f"s3://{bucket}/one.bin" in listing and "300000" in listing, listing
    back = scratch / "one.back"
    s3cmd("get", f"s3://{bucket}/one.bin", back)
    assert back.read_bytes() == data
    # A multipart put (s3cmd splits at 15 MB by default; 5 MB here).
    big = scratch / "big.bin"
    digest = write_random(big, 12 * MiB)
    s3cmd("put", "--multipart-chunk-size-mb=5", big, f"s3://{bucket}/big.bin")
    big_back = scratch / "big.back"
    s3cmd("get", f"s3://{bucket}/big.bin", big_back)
    assert sha256_file(big_back) == digest
    # sync up, then again with nothing to do, then down.
    tree = scratch / "tree"
    contents = make_tree(tree, files=12)
    s3cmd("sync", f"{tree}/", f"s3://{bucket}/tree/")
    assert sorted(keys(alice, bucket, "tree/")) == sorted(f"tree/{k}" for k in contents)
    again = s3cmd("sync", f"{tree}/", f"s3://{bucket}/tree/")
    assert "upload:" not in again.stdout, again.stdout
    down = scratch / "down"
    down.mkdir()
    s3cmd("sync", f"s3://{bucket}/tree/", f"{down}/")
    assert tree_of(down) == contents
    s3cmd("del", f"s3://{bucket}/one.bin")
    assert "one.bin" not in keys(alice, bucket)
    refused = s3cmd("rb", f"s3://{bucket}", check=False)
    assert refused.returncode != 0, "rb of a bucket with objects must fail"
    s3cmd("del", "--recursive", "--force", f"s3://{bucket}/")
    assert keys(alice, bucket) == []
    s3cmd("rb", f"s3://{bucket}")
    assert bucket not in [b["Name"] for b in alice.list_buckets()["Buckets"]]


# Last: the biggest transfer (100 MB up, then down in parallel ranged GETs).

def test_aws_cli_large_multipart(server, aws, alice, scratch):
    bucket = unique_bucket("awscli-large")
    aws("s3", "mb", f"s3://{bucket}")
    size = 100 * 1000 * 1000
    source = scratch / "large.bin"
    digest = write_random(source, size)
    aws("s3", "cp", source, f"s3://{bucket}/large.bin")
    head = alice.head_object(Bucket=bucket, Key="large.bin")
    assert head["ContentLength"] == size
    parts = math.ceil(size / (8 * MiB))  # the CLI's default multipart_chunksize
    assert head["ETag"].endswith(f'-{parts}"'), f"the CLI uploads it in {parts} parts: {head['ETag']}"
    back = scratch / "large.back"
    aws("s3", "cp", f"s3://{bucket}/large.bin", back)
    assert back.stat().st_size == size
    assert sha256_file(back) == digest
    aws("s3", "rm", f"s3://{bucket}/large.bin")
    aws("s3", "rb", f"s3://{bucket}")

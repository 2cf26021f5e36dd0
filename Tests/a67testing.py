"""Helpers shared by the pytest suites (Tests/S3Clients, Tests/Mount): running a67, bucket names, digests."""

import hashlib
import json
import re
import subprocess
import uuid

import pytest


def run_a67(binary, args, env, *, check=True, timeout=180, text=True):
    """Runs `a67 ARGS` with `env`; a run past `timeout` fails the test, and so does a non-zero exit with `check`."""
    command = " ".join(map(str, args))
    try:
        result = subprocess.run([binary, *map(str, args)], env=env, stdin=subprocess.DEVNULL,
                                capture_output=True, text=text, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`a67 {command}` did not finish within {timeout} s", pytrace=False)
    if check and result.returncode != 0:
        pytest.fail(f"`a67 {command}` exited with {result.returncode}\nstdout: {result.stdout!r:.3000}\n"
                    f"stderr: {result.stderr!r:.3000}", pytrace=False)
    return result


def parse_json(args, out):
    """What `a67 ARGS --json` printed, parsed; output that is not JSON fails the test."""
    try:
        return json.loads(out)
    except json.JSONDecodeError:
        pytest.fail(f"`a67 {' '.join(map(str, args))} --json` printed no JSON: {out!r}", pytrace=False)


def unique_bucket(label="t"):
    """A fresh bucket name: lowercase letters, digits and hyphens, 3-63 characters."""
    label = re.sub(r"[^a-z0-9-]+", "-", label.lower()).strip("-")[:40] or "t"
    return f"{label}-{uuid.uuid4().hex[:12]}"


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()

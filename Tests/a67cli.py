"""Running the a67 binary from the pytest suites (Tests/S3Clients, Tests/Mount): one runner for both."""

import json
import subprocess

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

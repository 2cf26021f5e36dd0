"""The real-client suite for `a67 serve`: one repository and one server for the whole session.

The session fixture `server` makes a repository in a temporary folder (two local providers, users
alice and bob with one access key each), starts `a67 serve` on a free loopback port and stops it with
SIGTERM at the end, which must exit 0 (a graceful shutdown). After the session no secret access key
and not the passphrase may appear in any server log.

Clients get their credentials from files and environment variables in the temporary folder, never
on a command line (a command line shows in every process listing).

Run: A67_BIN=.build/debug/a67 python3 -m pytest -x -q Tests/S3Clients
"""

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import sigv4  # noqa: E402  (tools/sigv4.py)
from a67testing import parse_json, run_a67, sha256_file, unique_bucket  # noqa: E402,F401  (Tests/a67testing.py)

REPO = Path(__file__).resolve().parents[2]
A67_BIN = os.environ.get("A67_BIN", str(REPO / ".build/debug/a67"))
PASSPHRASE = "test passphrase"
REGION = "us-east-1"
MiB = 1024 * 1024
HEALTH_DEADLINE = 60
STOP_DEADLINE = 30
INSTALL_HINT = {
    "aws": "pip install awscli (tools/install-deps --test puts it in /opt/a67-test-venv)",
    "s3cmd": "pip install s3cmd (tools/install-deps --test puts it in /opt/a67-test-venv)",
    "rclone": "apt-get install rclone",
    "curl": "apt-get install curl",
}


def which(name):
    """A client binary from beside this Python (the test venv's pinned ones) or else from PATH; missing is a failure."""
    found = shutil.which(name, path=os.path.dirname(sys.executable)) or shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: {INSTALL_HINT.get(name, 'install it')}", pytrace=False)
    return found


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def md5_hex(data):
    return hashlib.md5(data).hexdigest()


def quoted_md5(data):
    return f'"{md5_hex(data)}"'


def write_random(path, size):
    """A file of `size` random bytes, written a MiB at a time; returns its sha256."""
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(MiB, left))
            h.update(block)
            f.write(block)
            left -= len(block)
    return h.hexdigest()


def s3_error(body):
    """(Code, Message) of an S3 error body, which must be XML <Error><Code>..</Code><Message>..</Message>."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        pytest.fail(f"the error body is not XML ({e}): {text[:500]!r}")
    tag = root.tag.split("}")[-1]
    assert tag == "Error", f"the error body's root is <{tag}>, not <Error>: {text[:500]!r}"
    code = root.findtext("Code") or root.findtext("{*}Code")
    message = root.findtext("Message") or root.findtext("{*}Message")
    assert code, f"the error body has no Code: {text[:500]!r}"
    assert message is not None, f"the error body has no Message: {text[:500]!r}"
    return code, message


class HTTPResult:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # a dict with lowercase names
        self.body = body

    def error(self):
        return s3_error(self.body)

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"HTTP {self.status} {self.headers} {self.body[:600]!r}"


def http_request(method, url, body=None, headers=None, timeout=60):
    """One request through urllib; any status comes back as an HTTPResult (no exception for 4xx/5xx)."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return HTTPResult(response.status, {k.lower(): v for k, v in response.headers.items()}, response.read())
    except urllib.error.HTTPError as e:
        return HTTPResult(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())


class ServerProcess:
    """One `a67 serve` process on a free loopback port."""

    def __init__(self, env, log_path, extra_args=()):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log_path)
        self.args = [A67_BIN, "serve", "--listen", f"127.0.0.1:{self.port}", *extra_args]
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(self.args, env=env, stdin=subprocess.DEVNULL, stdout=self._log,
                                        stderr=subprocess.STDOUT)
        self._wait_healthy()

    def log(self):
        return self.log_path.read_text(errors="replace")

    def _wait_healthy(self):
        deadline = time.monotonic() + HEALTH_DEADLINE
        last = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._log.close()
                pytest.fail(f"`{' '.join(self.args)}` exited with {self.process.returncode} before it was "
                            f"healthy; its log:\n{self.log()}", pytrace=False)
            try:
                with urllib.request.urlopen(self.endpoint + "/_a67/api/v1/health", timeout=2) as r:
                    if r.status == 200:
                        return
                    last = f"HTTP {r.status}"
            except urllib.error.HTTPError as e:
                last = f"HTTP {e.code}"
            except OSError as e:
                last = repr(e)
            time.sleep(0.1)
        self.process.kill()
        self.process.wait()
        self._log.close()
        pytest.fail(f"`{' '.join(self.args)}` was not healthy within {HEALTH_DEADLINE} s (last: {last}); its log:\n"
                    f"{self.log()}", pytrace=False)

    def stop(self):
        """SIGTERM; returns the exit code, or None when it did not exit within the deadline (then killed)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            code = None
        self._log.close()
        return code

    def alive(self):
        return self.process.poll() is None


class Session:
    """What the tests see: the endpoint, the users' keys, the CLI and client factories."""

    def __init__(self, tmp):
        self.tmp = Path(tmp)
        self.home = self.tmp / "home"
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("AWS_", "A67_", "RCLONE_", "S3CMD"))}
        self.env.update({
            "A67_HOME": str(self.home),
            "A67_PASSPHRASE": PASSPHRASE,
            "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", ""), "/usr/bin", "/bin"]),
        })
        self.keys = {}
        self.servers = []  # every ServerProcess of the session, for the log check at the end
        self.main = None

    # --- the CLI ---

    def a67(self, *args, check=True, timeout=180, env=None):
        """Runs `a67 ARGS` against the session's repository; with check, a non-zero exit fails the test."""
        return run_a67(A67_BIN, args, env or self.env, check=check, timeout=timeout)

    def a67_json(self, *args):
        return parse_json(args, self.a67(*args, "--json").stdout)

    # --- the server ---

    def answers(self, timeout=5):
        """Whether the main server answers /_a67/api/v1/health within `timeout` seconds."""
        try:
            with urllib.request.urlopen(self.endpoint + "/_a67/api/v1/health", timeout=timeout) as r:
                return r.status == 200
        except (OSError, urllib.error.HTTPError):
            return False

    @property
    def endpoint(self):
        return self.main.endpoint

    @property
    def port(self):
        return self.main.port

    def start_server(self, *extra_args):
        server = ServerProcess(self.env, self.tmp / f"serve-{len(self.servers)}.log", extra_args)
        self.servers.append(server)
        return server

    @contextlib.contextmanager
    def extra_server(self, *extra_args):
        """A second `a67 serve` on another port against the same home, stopped (exit 0) on leaving."""
        server = self.start_server(*extra_args)
        try:
            yield server
        finally:
            code = server.stop()
        assert code == 0, f"the extra server ({' '.join(extra_args)}) exited with {code} on SIGTERM; log:\n{server.log()}"

    # --- clients ---

    def credentials(self, user):
        key = self.keys[user]
        return key["accessKeyId"], key["secretAccessKey"]

    def s3(self, user="alice", endpoint=None, **config):
        """A boto3 S3 client for `user`, path-style, with no retries (errors show as they are; note that botocore's
        retries={"max_attempts": 1} still allows one retry: total_max_attempts counts the first attempt)."""
        import boto3
        from botocore.config import Config
        options = {"region_name": REGION, "signature_version": "s3v4", "s3": {"addressing_style": "path"},
                   "retries": {"total_max_attempts": 1, "mode": "standard"}, "connect_timeout": 10, "read_timeout": 60}
        options.update(config)
        session = boto3.session.Session(profile_name=user)
        return session.client("s3", endpoint_url=endpoint or self.endpoint, config=Config(**options))

    def client_env(self, user="alice"):
        """Environment for the command-line clients: aws through the profile files, rclone through
        RCLONE_CONFIG_A67_*; no credential on any command line."""
        access, secret = self.credentials(user)
        env = dict(self.env)
        env.update({
            "AWS_CONFIG_FILE": str(self.tmp / "aws" / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.tmp / "aws" / "credentials"),
            "AWS_PROFILE": user,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_PAGER": "",
            "RCLONE_CONFIG": str(self.tmp / "rclone.conf"),
            "RCLONE_CONFIG_A67_TYPE": "s3",
            "RCLONE_CONFIG_A67_PROVIDER": "Other",
            "RCLONE_CONFIG_A67_ENDPOINT": self.endpoint,
            "RCLONE_CONFIG_A67_ACCESS_KEY_ID": access,
            "RCLONE_CONFIG_A67_SECRET_ACCESS_KEY": secret,
            "RCLONE_CONFIG_A67_FORCE_PATH_STYLE": "true",
            "RCLONE_CONFIG_A67_REGION": REGION,
        })
        return env

    def s3cmd_config(self, user="alice"):
        access, secret = self.credentials(user)
        path = self.tmp / f"s3cmd-{user}.cfg"
        path.write_text("[default]\n"
                        f"access_key = {access}\n"
                        f"secret_key = {secret}\n"
                        f"host_base = 127.0.0.1:{self.port}\n"
                        f"host_bucket = 127.0.0.1:{self.port}\n"
                        f"bucket_location = {REGION}\n"
                        "use_https = False\n"
                        "signature_v2 = False\n"
                        "check_ssl_certificate = False\n"
                        "guess_mime_type = False\n"
                        "progress_meter = False\n")
        path.chmod(0o600)
        return path

    def run_client(self, argv, env=None, check=True, timeout=180, cwd=None):
        """Runs a client command; with check, a non-zero exit fails the test with its output. One that runs
        past `timeout` seconds fails the test (with whether the server still answers)."""
        try:
            result = subprocess.run(argv, env=env or self.client_env(), stdin=subprocess.DEVNULL, capture_output=True,
                                    text=True, timeout=timeout, cwd=cwd)
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"")[-2000:] if isinstance(e.stdout, bytes) else (e.stdout or "")[-2000:]
            err = (e.stderr or b"")[-2000:] if isinstance(e.stderr, bytes) else (e.stderr or "")[-2000:]
            pytest.fail(f"`{' '.join(map(str, argv))}` did not finish within {timeout} s; the server "
                        f"{'still answers' if self.answers() else 'no longer answers /_a67/api/v1/health'}\n"
                        f"stdout: {out}\nstderr: {err}\nserver log (tail):\n{self.main.log()[-3000:]}", pytrace=False)
        if check and result.returncode != 0:
            pytest.fail(f"`{' '.join(map(str, argv))}` exited with {result.returncode}\nstdout: {result.stdout[-3000:]}\n"
                        f"stderr: {result.stderr[-3000:]}\nserver log (tail):\n{self.main.log()[-3000:]}",
                        pytrace=False)
        return result

    # --- signed requests (the control API) ---

    def signed(self, method, path, user="alice", body=b"", headers=None, endpoint=None):
        """A SigV4-signed request (botocore's signer, service s3, us-east-1) sent with urllib."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
        url = (endpoint or self.endpoint) + path
        all_headers = {"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest(), **(headers or {})}
        request = AWSRequest(method=method, url=url, data=body, headers=all_headers)
        SigV4Auth(Credentials(*self.credentials(user)), "s3", REGION).add_auth(request)
        return http_request(method, url, body=body or None, headers=dict(request.headers.items()))

    def write_client_files(self):
        aws = self.tmp / "aws"
        aws.mkdir(exist_ok=True)
        config, credentials = [], []
        for user in self.keys:
            access, secret = self.credentials(user)
            # signature_version: the v1 CLI presigns with SigV2 unless told otherwise, and a67 serve speaks SigV4 only.
            config.append(f"[profile {user}]\nregion = {REGION}\ns3 =\n  addressing_style = path\n"
                          "  signature_version = s3v4\n")
            credentials.append(f"[{user}]\naws_access_key_id = {access}\naws_secret_access_key = {secret}\n")
        (aws / "config").write_text("\n".join(config))
        (aws / "credentials").write_text("\n".join(credentials))
        (aws / "credentials").chmod(0o600)
        (self.tmp / "rclone.conf").write_text("")


def _forbidden_in_logs(session):
    """Secrets (and the passphrase) found in any server log of the session."""
    found = []
    for server in session.servers:
        text = server.log()
        for user, key in session.keys.items():
            if key["secretAccessKey"] in text:
                found.append(f"{user}'s secret access key in {server.log_path.name}")
        if PASSPHRASE in text:
            found.append(f"the passphrase in {server.log_path.name}")
    return found


@pytest.fixture(scope="session")
def server():
    if not os.access(A67_BIN, os.X_OK):
        pytest.fail(f"no a67 binary at {A67_BIN} (build it with swift build, or set A67_BIN)", pytrace=False)
    tmp = tempfile.mkdtemp(prefix="a67-s3clients-")
    session = Session(tmp)
    saved_env = {k: os.environ.get(k) for k in list(os.environ) if k.startswith("AWS_")}
    try:
        session.a67("init")
        session.a67("provider", "add", "p1", "--dir", session.tmp / "p1")
        session.a67("provider", "add", "p2", "--dir", session.tmp / "p2")
        for user in ("alice", "bob"):
            session.a67("user", "add", user)
        for user in ("alice", "bob"):
            out = session.a67("key", "create", user, "--json").stdout
            try:
                key = json.loads(out.strip())
            except json.JSONDecodeError:
                pytest.fail(f"`a67 key create {user} --json` did not print one JSON object: {out!r}", pytrace=False)
            assert isinstance(key, dict) and key.get("accessKeyId") and key.get("secretAccessKey"), key
            session.keys[user] = key
        session.write_client_files()
        # boto3 in this process reads the same profile files the aws CLI does, and nothing of the machine's.
        for k in saved_env:
            del os.environ[k]
        os.environ["AWS_CONFIG_FILE"] = str(session.tmp / "aws" / "config")
        os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(session.tmp / "aws" / "credentials")
        os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
        session.main = session.start_server()
        yield session
        alive = session.main.alive()
        code = session.main.stop()
        assert alive, f"the server died during the session (exit {code}); log:\n{session.main.log()[-5000:]}"
        assert code == 0, (f"a67 serve exited with {code} on SIGTERM (None: still running after {STOP_DEADLINE} s); "
                           f"log tail:\n{session.main.log()[-5000:]}")
        leaks = _forbidden_in_logs(session)
        assert not leaks, f"secrets in the server logs: {leaks}"
    finally:
        for server_process in session.servers:
            if server_process.alive():
                server_process.process.kill()
                server_process.process.wait()
        for k in [k for k in os.environ if k.startswith("AWS_")]:
            del os.environ[k]
        os.environ.update({k: v for k, v in saved_env.items() if v is not None})
        if os.environ.get("A67_KEEP_TMP"):
            print(f"\nkept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(autouse=True)
def server_answers(request):
    """Fails a test at once when an earlier one left the server unable to answer (instead of every later
    request waiting out its client's timeout)."""
    if "server" in request.fixturenames:
        session = request.getfixturevalue("server")
        if not session.answers():
            pytest.fail("the server no longer answers /_a67/api/v1/health within 5 s (wedged by an earlier test?); log tail:\n"
                        + session.main.log()[-3000:], pytrace=False)


@pytest.fixture
def alice(server):
    return server.s3("alice")


@pytest.fixture
def bob(server):
    return server.s3("bob")


@pytest.fixture
def bucket(server, alice, request):
    """A fresh bucket of alice's."""
    name = unique_bucket(request.node.name.replace("test_", ""))
    alice.create_bucket(Bucket=name)
    return name


@pytest.fixture
def scratch(tmp_path):
    return tmp_path


# --- SigV4 by hand (for requests boto3 would refuse to make): tools/sigv4.py, the tools' one signer ---

def sigv4_sign(method, raw_path, query, headers, payload_hash, access, secret, when, region=REGION):
    """Signs a request as AWS SigV4 for S3 and returns the headers to send (with Authorization).

    raw_path is the path exactly as it goes on the request line (already percent-encoded): S3's
    canonical URI is that path, not normalized. query is a list of (name, value) pairs, unencoded.
    """
    return sigv4.Signer(access, secret, region=region).sign(method, raw_path, query, headers, payload_hash, when)


query_string = sigv4.query_string  # (name, value) pairs, encoded as a request line carries them

"""The apps suite: a controller and agents as separate hosts on a real (virtual) network.

`tools/netns up` makes the hosts: a bridge a67br0 (10.67.0.1, this namespace, where the tests run),
a67-ctl (10.67.0.2) where `a67 serve` runs with its controller and proxy, and a67-n1, a67-n2, a67-n3
(10.67.0.11 to .13) where agents run, each with its own data folder. The session fixture `cluster`
makes a repository (one local provider), starts serve in a67-ctl, and hands the tests the CLI, joins
and agents. Apps are deployed from Tests/Apps/app (a small http.server with /health and its version
in every answer). Every process the suite starts is stopped at the end, and `tools/netns down` removes
the hosts (and kills anything left in them).

The passphrase and join tokens reach a67 through files, never a command line.

Run: sudo A67_BIN=.build/debug/a67 python3 -m pytest -x -q Tests/Apps
"""

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from a67testing import parse_json, run_a67  # noqa: E402  (Tests/a67testing.py)

REPO = Path(__file__).resolve().parents[2]
A67_BIN = os.environ.get("A67_BIN", str(REPO / ".build/debug/a67"))
APP = Path(__file__).resolve().parent / "app"
CONTROLLER = "10.67.0.2"
PORT = 7067
URL = f"http://{CONTROLLER}:{PORT}"
NODES = {"n1": "10.67.0.11", "n2": "10.67.0.12", "n3": "10.67.0.13"}
DEADLINE = 60  # seconds for anything the cluster does on its own (a deploy, a restart, a revert)


def wait_until(what, check, deadline=DEADLINE, every=0.1):
    """Polls `check` until it returns something true, or fails the test saying what did not happen."""
    end = time.monotonic() + deadline
    last = None
    while time.monotonic() < end:
        try:
            last = check()
            if last:
                return last
        except (OSError, http.client.HTTPException) as error:
            last = error
        time.sleep(every)
    pytest.fail(f"{what} did not happen within {deadline} s (last: {last!r:.500})", pytrace=False)


def request(app=None, path="/", *, host=CONTROLLER, port=PORT, method="GET", body=None, timeout=10, prefix=False):
    """One HTTP request through the proxy (Host APP.apps.local, or /apps/APP/ with prefix) or straight
    to HOST:PORT; returns (status, body text)."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    headers = {}
    if app and not prefix:
        headers["Host"] = f"{app}.apps.local"
    target = f"/apps/{app}{path}" if app and prefix else path
    try:
        connection.request(method, target, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


class Cluster:
    def __init__(self, root):
        self.root = Path(root)
        self.home = self.root / "home"
        self.passphrase = self.root / "passphrase"
        self.passphrase.write_text("apps suite passphrase\n")
        self.env = dict(os.environ, A67_HOME=str(self.home), A67_PASSPHRASE_FILE=str(self.passphrase))
        self.serve = None
        self.agents = {}  # name -> Popen
        self.logs = []

    # The CLI, on the controller's machine (this namespace shares the repository's files).
    def a67(self, *args, check=True, timeout=180):
        return run_a67(A67_BIN, args, self.env, check=check, timeout=timeout)

    def json(self, *args):
        result = self.a67(*args, "--json")
        return parse_json(args, result.stdout)

    def netns(self, namespace, *args, **kwargs):
        return ["ip", "netns", "exec", namespace, *map(str, args)]

    def start_serve(self):
        log = open(self.root / "serve.log", "ab")
        self.logs.append(log)
        self.serve = subprocess.Popen(self.netns("a67-ctl", A67_BIN, "serve", "--listen", f"{CONTROLLER}:{PORT}",
                                                 "--node-heartbeat", "1s"),
                                      env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        wait_until("a67 serve answering", lambda: self._health())

    def _health(self):
        if self.serve.poll() is not None:
            pytest.fail(f"a67 serve exited with {self.serve.returncode}: {self.tail('serve.log')}", pytrace=False)
        return request(path="/_a67/api/v1/health", timeout=2)[0] == 200

    def stop_serve(self):
        if self.serve and self.serve.poll() is None:
            self.serve.send_signal(signal.SIGTERM)
            self.serve.wait(timeout=60)
        self.serve = None

    def tail(self, name, lines=30):
        path = self.root / name
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def token(self, ttl="10m"):
        return self.json("node", "token", "create", "--ttl", ttl)["token"]

    def join(self, node, labels=(), token=None, check=True, data=None, name=None):
        """`a67 agent join` in the node's namespace, with a fresh token unless given one."""
        data = data or self.root / node
        token_file = self.root / f"{node}.token"
        token_file.write_text((token or self.token()) + "\n")
        args = ["agent", "join", URL, "--token-file", token_file, "--name", name or node, "--data", data]
        for label in labels:
            args += ["--label", label]
        return run_a67("ip", ["netns", "exec", f"a67-{node}", A67_BIN, *args], self.env, check=check)

    def start_agent(self, node):
        log = open(self.root / f"{node}.log", "ab")
        self.logs.append(log)
        self.agents[node] = subprocess.Popen(
            self.netns(f"a67-{node}", A67_BIN, "agent", "run", "--data", self.root / node, "--heartbeat", "1s"),
            env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        wait_until(f"{node} ready", lambda: any(n["name"] == node and n["state"] == "ready" and n.get("lastSeen")
                                                for n in self.json("node", "ls")))

    def kill_agent(self, node, sig=signal.SIGKILL):
        process = self.agents.pop(node)
        process.send_signal(sig)
        process.wait(timeout=30)

    def status(self, app):
        return self.json("app", "status", app)

    def healthy(self, app, version=None):
        return [i for i in self.status(app)["instances"]
                if i["healthy"] and i["desired"] == "run" and (version is None or i["version"] == version)]

    def app_folder(self, name="web", version="1", instances=2, extra=None, unhealthy=False, toml_changes=None):
        """A copy of Tests/Apps/app as app NAME, answering VERSION."""
        folder = self.root / "apps" / f"{name}-{version}-{time.monotonic_ns()}"
        shutil.copytree(APP, folder)
        (folder / "version.txt").write_text(version + "\n")
        toml = (folder / "a67app.toml").read_text().replace('name = "web"', f'name = "{name}"')
        toml = toml.replace("instances = 2", f"instances = {instances}")
        for old, new in (toml_changes or {}).items():
            toml = toml.replace(old, new)
        (folder / "a67app.toml").write_text(toml)
        if unhealthy:
            (folder / "unhealthy").write_text("this version fails its health check\n")
        for relative, data in (extra or {}).items():
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            (folder / relative).write_bytes(data)
        return folder

    def close(self):
        for node in list(self.agents):
            try:
                self.kill_agent(node)
            except Exception:  # noqa: BLE001  (teardown goes on)
                pass
        try:
            self.stop_serve()
        except Exception:  # noqa: BLE001
            if self.serve:
                self.serve.kill()
        for log in self.logs:
            log.close()


@pytest.fixture(scope="session")
def cluster():
    subprocess.run([str(REPO / "tools/netns"), "up", "3"], check=True)
    root = tempfile.mkdtemp(prefix="a67-apps-")
    os.chmod(root, 0o711)  # instances run unprivileged and pass through to their releases
    cluster = Cluster(root)
    try:
        cluster.a67("init")
        cluster.a67("provider", "add", "local", "--dir", Path(root) / "provider")
        cluster.start_serve()
        for node in ("n1", "n2"):
            cluster.join(node, labels=[f"zone={node}"])
            cluster.start_agent(node)
        yield cluster
    finally:
        cluster.close()
        subprocess.run([str(REPO / "tools/netns"), "down"], check=False)
        if os.environ.get("A67_KEEP") is None:
            shutil.rmtree(root, ignore_errors=True)

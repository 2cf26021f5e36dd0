"""`a67 up --serve`: the embedded default as a live system on one machine (issue 15).

The real binary, on loopback: a repository made from nothing, a67 serve with its controller, this
machine joined as node "local" (an agent in the same process) and the demo app "hello" deployed from
a bundle in the store and answering through the proxy. Ctrl-C (SIGINT) stops the server, the agent
and the app's instance; a second run reuses all of it (no new version, the same node) and serves again.
"""

import http.client
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import A67_BIN

PORT = 7191  # loopback, away from the cluster's 7067 (which is in its own namespace anyway)
DEADLINE = 60


def documents(text):
    """The JSON documents printed one after another (a67's --json is indented)."""
    decoder, found, index = json.JSONDecoder(), [], 0
    while True:
        while index < len(text) and text[index].isspace():
            index += 1
        if index >= len(text):
            return found
        value, index = decoder.raw_decode(text, index)
        found.append(value)


def get(path, host=None):
    connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=5)
    try:
        connection.request("GET", path, headers={"Host": host} if host else {})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def wait_until(what, check):
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    pytest.fail(f"not within {DEADLINE} s: {what}", pytrace=False)


class UpServe:
    """One `a67 up --serve --json` run in the background."""

    def __init__(self, env, out):
        self.out = out
        self.stdout = open(out, "w")
        self.process = subprocess.Popen([A67_BIN, "up", "--serve", "--json", "--listen", f"127.0.0.1:{PORT}"], env=env,
                                        stdin=subprocess.DEVNULL, stdout=self.stdout, stderr=subprocess.PIPE, text=True)

    def ready(self):
        def listening():
            assert self.process.poll() is None, f"a67 up --serve exited with {self.process.returncode}: {self.process.stderr.read()}"
            try:
                printed = documents(Path(self.out).read_text())
            except json.JSONDecodeError:
                return None  # a document half-written
            return next((d for d in printed if "listening" in d), None)
        return wait_until("a67 up --serve says where it listens", listening)

    def interrupt(self):
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            self.process.kill()
            pytest.fail("a67 up --serve did not stop within a minute of Ctrl-C", pytrace=False)
        self.stdout.close()
        return self.process.returncode, self.process.stderr.read()


def test_up_serve_runs_the_whole_system_and_ctrl_c_stops_it_all():
    home = Path(tempfile.mkdtemp(prefix="a67-up-serve-"))
    passphrase = home.parent / (home.name + ".pass")
    passphrase.write_text("up serve test passphrase\n")
    env = {**os.environ, "A67_HOME": str(home / "repo"), "A67_PASSPHRASE_FILE": str(passphrase)}
    runs = []
    data = None
    try:
        run = UpServe(env, home / "first.json")
        runs.append(run)
        ready = run.ready()
        assert ready["listening"] == f"http://127.0.0.1:{PORT}" and ready["node"] == "local", ready
        assert ready["app"] == f"http://127.0.0.1:{PORT}/apps/hello/", ready
        # The demo app answers through the proxy, by path and by Host.
        status, body = wait_until("the demo app answers", lambda: (lambda r: r if r[0] == 200 else None)(get("/apps/hello/")))
        assert body.startswith("Hello from Automator67"), body
        assert get("/", host="hello.apps.local") == (200, body)
        # This machine is node "local", ready, running the app's one instance from its bundle.
        nodes = json.loads(subprocess.run([A67_BIN, "node", "ls", "--json"], env=env, capture_output=True, text=True, check=True).stdout)
        assert [(n["name"], n["state"]) for n in nodes] == [("local", "ready")], nodes
        app = json.loads(subprocess.run([A67_BIN, "app", "status", "hello", "--json"], env=env, capture_output=True, text=True,
                                        check=True).stdout)
        assert [v["number"] for v in app["versions"]] == [1], app["versions"]
        assert app["versions"][0]["bundle"].startswith("a67-apps/hello/"), app["versions"][0]
        [instance] = [i for i in app["instances"] if i["state"] == "running"]
        assert instance["healthy"] and instance["node"] == "local", instance
        pids = wait_until("the instance's process is found", lambda: demo_processes_anywhere())
        # Ctrl-C: everything stops, the app's instance too, and the port is free again.
        code, stderr = run.interrupt()
        assert code == 0, stderr
        assert "a67 up --serve: stopped" in stderr, stderr
        assert "does not answer" not in stderr, f"the local agent complained while stopping: {stderr}"
        said = [line for line in stderr.splitlines() if "joined as node local (its data: " in line]
        assert said, stderr
        data = said[0].split("its data: ", 1)[1].rstrip(")")
        for pid in pids:
            assert not Path(f"/proc/{pid}").exists(), f"the demo app's process {pid} outlived a67 up --serve"
        with pytest.raises(OSError):
            get("/apps/hello/")
        # Again: the same repository, node and version, serving again.
        run = UpServe(env, home / "second.json")
        runs.append(run)
        run.ready()
        status, body = wait_until("the demo app answers again", lambda: (lambda r: r if r[0] == 200 else None)(get("/apps/hello/")))
        assert body.startswith("Hello from Automator67"), body
        app = json.loads(subprocess.run([A67_BIN, "app", "status", "hello", "--json"], env=env, capture_output=True, text=True,
                                        check=True).stdout)
        assert [v["number"] for v in app["versions"]] == [1], "a second run deployed the demo app again"
        nodes = json.loads(subprocess.run([A67_BIN, "node", "ls", "--json"], env=env, capture_output=True, text=True, check=True).stdout)
        assert [(n["name"], n["state"]) for n in nodes] == [("local", "ready")], "a second run joined another node"
        code, stderr = run.interrupt()
        assert code == 0, stderr
    finally:
        for run in runs:
            if run.process.poll() is None:
                run.process.kill()
                run.process.wait()
        for pid in demo_processes_anywhere():
            os.killpg(pid, signal.SIGKILL)
        shutil.rmtree(home, ignore_errors=True)
        if data and data.startswith("/var/lib/a67-local/"):
            shutil.rmtree(data, ignore_errors=True)
        passphrase.unlink(missing_ok=True)


def demo_processes_anywhere():
    """Pids of processes running the demo app (their working folder a release of app hello)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cwd = os.readlink(entry / "cwd")
                if "/releases/" in cwd and (Path(cwd) / "a67app.toml").read_text().find('name = "hello"') >= 0:
                    found.append(int(entry.name))
            except OSError:
                pass
    return found

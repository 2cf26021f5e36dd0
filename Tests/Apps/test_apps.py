"""Apps on nodes, end to end: joins, deploys through the store, the proxy, updates, failures."""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import A67_BIN, CONTROLLER, NODES, URL, request, run_a67, wait_until


def deploy(cluster, folder, *extra, check=True):
    result = cluster.a67("app", "deploy", folder, "--json", *extra, check=check, timeout=300)
    return result, (json.loads(result.stdout) if result.stdout.strip().startswith("{") else None)


def answers(app, count=40, **kwargs):
    """The distinct answers of `count` requests through the proxy."""
    seen = set()
    for _ in range(count):
        status, body = request(app, **kwargs)
        assert status == 200, f"{status} {body}"
        seen.add(body.strip())
    return seen


# MARK: - Joining

def test_join_with_used_expired_or_wrong_tokens_is_refused_and_changes_nothing(cluster):
    before = cluster.json("node", "ls", "--all")
    used = cluster.token()
    cluster.join("n3", token=used)  # admits n3 (not started: its agent is not needed here)
    spare = cluster.root / "n3-refused"  # each refused join's own folder, so the refusal is the controller's
    again = cluster.join("n3", token=used, check=False, data=spare, name="n3-late")
    assert again.returncode != 0 and "already used" in again.stderr, again.stderr
    wrong = cluster.join("n3", token="0" * 64, check=False, data=spare, name="n3-late")
    assert wrong.returncode != 0 and "never issued" in wrong.stderr, wrong.stderr
    expired = cluster.token(ttl="1s")
    time.sleep(1.5)  # the token's lifetime running out is the point
    late = cluster.join("n3", token=expired, check=False, data=spare, name="n3-late")
    assert late.returncode != 0 and "expired" in late.stderr, late.stderr
    after = cluster.json("node", "ls", "--all")
    assert len(after) == len(before) + 1, "only the good token admitted a node"
    assert not (spare / "credential").exists(), "a refused join saves nothing"
    cluster.a67("node", "rm", "n3")
    assert not any(n["name"] == "n3" for n in cluster.json("node", "ls"))


def test_a_token_is_never_on_a_command_line_or_in_the_logs(cluster):
    token = cluster.token()
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert token not in out
    for name in ("serve.log", "n1.log", "n2.log"):
        assert token not in cluster.tail(name, 10_000)


# MARK: - Deploying and serving

def test_deploy_places_instances_and_the_proxy_reaches_every_one(cluster):
    result, summary = deploy(cluster, cluster.app_folder("web", "1", instances=2))
    assert summary["version"] >= 1 and summary["deployment"] == "succeeded", result.stdout + result.stderr
    assert summary["healthySeconds"] < 30
    healthy = cluster.healthy("web")
    assert len(healthy) == 2
    assert {i["node"] for i in healthy} == {"n1", "n2"}, "spread over both nodes"
    seen = answers("web")
    assert len(seen) == 2 and all(s.startswith("1 hi ") for s in seen), seen
    assert answers("web", count=20, prefix=True) == seen, "/apps/web/ reaches the same instances"
    status, body = request("nosuchapp")
    assert status in (404, 503) and "nosuchapp" in body


def test_scale_up_and_down(cluster):
    cluster.a67("app", "scale", "web", "3")
    wait_until("3 healthy instances", lambda: len(cluster.healthy("web")) == 3)
    assert len(answers("web", count=60)) == 3
    cluster.a67("app", "scale", "web", "1")
    wait_until("1 instance left", lambda: len([i for i in cluster.status("web")["instances"] if i["state"] in ("running", "starting")]) == 1)
    assert len(answers("web", count=20)) == 1
    # The two let go are reported stopped, so their nodes' room is free again.
    wait_until("the scaled-down instances stopped", lambda: all(
        i["state"] in ("stopped", "failed") for i in cluster.status("web")["instances"] if i["desired"] != "run"))
    cluster.a67("app", "scale", "web", "2")
    wait_until("2 healthy instances again", lambda: len(cluster.healthy("web")) == 2)


def test_scaling_down_lets_requests_in_flight_finish(cluster):
    """The instance scale-down drains keeps running until the proxy's request to it is answered
    (a fixed drain would stop it mid-request, and the client would get a 502)."""
    wait_until("2 healthy instances", lambda: len(cluster.healthy("web")) == 2)
    marks = Path(tempfile.mkdtemp(prefix="a67-apps-marks-"))
    os.chmod(marks, 0o1777)  # the instances run as an unprivileged user
    results = {}

    def slow(name):
        results[name] = request("web", f"/slow?ms=4000&mark={marks}/{name}", timeout=30)

    threads = []
    try:
        # One after the other, so that the balancer (least outstanding) sends them to both instances.
        for name in ("a", "b"):
            threads.append(threading.Thread(target=slow, args=(name,)))
            threads[-1].start()
            wait_until(f"slow request {name} reached an instance", lambda: (marks / name).exists())
        assert (marks / "a").read_text() != (marks / "b").read_text(), "both slow requests went to one instance"
        cluster.a67("app", "scale", "web", "1")
        for thread in threads:
            thread.join()
        assert results == {"a": (200, "1 slow\n"), "b": (200, "1 slow\n")}, results
        wait_until("the drained instance stopped once its request was answered", lambda: [
            i["state"] for i in cluster.status("web")["instances"] if i["desired"] != "run" and i["state"] not in ("stopped", "failed")] == [])
    finally:
        for thread in threads:
            thread.join()
        shutil.rmtree(marks, ignore_errors=True)
    cluster.a67("app", "scale", "web", "2")
    wait_until("2 healthy instances again", lambda: len(cluster.healthy("web")) == 2)


def test_a_killed_instance_is_restarted(cluster):
    before = {i["id"]: i["restarts"] for i in cluster.healthy("web")}
    body = request("web")[1].split()
    pid = int(body[2])
    os.kill(pid, signal.SIGKILL)
    wait_until("the killed instance restarted and healthy",
               lambda: sum(i["restarts"] for i in cluster.healthy("web")) > sum(before.values()) and len(cluster.healthy("web")) == 2)


def test_rolling_update_under_load_fails_no_request(cluster):
    failures, done, count = [], threading.Event(), [0]

    def load():
        while not done.is_set():
            try:
                status, body = request("web", timeout=5)
                if status != 200:
                    failures.append((status, body))
            except OSError as error:
                failures.append(error)
            count[0] += 1
            time.sleep(0.02)

    thread = threading.Thread(target=load)
    thread.start()
    try:
        _, summary = deploy(cluster, cluster.app_folder("web", "2", instances=2))
        assert summary["deployment"] == "succeeded"
        wait_until("every answer from version 2", lambda: all(s.startswith("2 ") for s in answers("web", count=10)))
    finally:
        done.set()
        thread.join()
    assert count[0] > 50
    assert failures == [], f"{len(failures)} of {count[0]} requests failed during the update: {failures[:5]}"


def test_a_bad_version_is_rolled_back_on_its_own(cluster):
    result, summary = deploy(cluster, cluster.app_folder("web", "3", instances=2, unhealthy=True,
                                                          toml_changes={'healthy_deadline = "10s"': 'healthy_deadline = "4s"'}),
                             check=False)
    assert result.returncode != 0
    assert summary["deployment"] == "reverted", result.stdout + result.stderr
    status = cluster.status("web")
    assert status["deployment"]["state"] == "reverted"
    assert any(v["number"] == summary["version"] and v["state"] == "failed" for v in status["versions"])
    wait_until("version 2 serving again", lambda: all(s.startswith("2 ") for s in answers("web", count=10)))


def test_rollback_to_a_kept_version(cluster):
    versions = [v["number"] for v in cluster.status("web")["versions"]]
    cluster.a67("app", "rollback", "web", "--to", str(versions[0]))
    wait_until("version 1 serving", lambda: all(s.startswith("1 ") for s in answers("web", count=10)))
    cluster.a67("app", "rollback", "web", "--to", str(versions[1]))
    wait_until("version 2 serving", lambda: all(s.startswith("2 ") for s in answers("web", count=10)))


def test_logs_come_back(cluster):
    # The log route is signed with an admin's key; the CLI finds one in the repository.
    cluster.a67("user", "add", "ops", "--admin")
    cluster.a67("key", "create", "ops")
    request("web", "/a-line-for-the-log")
    wait_until("the request in the log", lambda: "/a-line-for-the-log" in "".join(
        cluster.a67("app", "logs", "web", "--instance", i["id"], "--controller", URL).stdout for i in cluster.healthy("web")))


def test_the_app_cli_runs_from_another_machine_with_an_admin_key(cluster, tmp_path):
    """a67 app and a67 node ls with --controller, from another host (the n3 namespace) that holds no
    repository: signed with an admin's key from the environment; a user's key and a wrong one are refused."""
    admin = json.loads(cluster.a67("key", "create", "ops", "--json").stdout)
    cluster.a67("user", "add", "plain")
    plain = json.loads(cluster.a67("key", "create", "plain", "--json").stdout)
    elsewhere = {key: value for key, value in cluster.env.items() if not key.startswith("A67_")}
    elsewhere["A67_HOME"] = str(tmp_path / "no-repository-here")

    def remote(*args, key=admin, check=True):
        env = {**elsewhere, "A67_ACCESS_KEY_ID": key["accessKeyId"], "A67_SECRET_ACCESS_KEY": key["secretAccessKey"]}
        result = subprocess.run(cluster.netns("a67-n3", A67_BIN, *args, "--controller", URL), env=env, stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, timeout=60)
        if check:
            assert result.returncode == 0, f"a67 {' '.join(args)}: {result.stderr}"
        return result

    apps = json.loads(remote("app", "ls", "--json").stdout)
    assert ("web", 2) in [(a["name"], a["healthyInstances"]) for a in apps], apps
    status = json.loads(remote("app", "status", "web", "--json").stdout)
    assert status["name"] == "web" and status["desiredInstances"] == 2 and status["versions"] == cluster.status("web")["versions"], status
    nodes = json.loads(remote("node", "ls", "--json").stdout)
    assert {n["name"] for n in nodes} >= {"n1", "n2"}, nodes
    remote("app", "scale", "web", "3")
    wait_until("3 healthy instances, scaled from elsewhere", lambda: len(cluster.healthy("web")) == 3)
    remote("app", "scale", "web", "2")
    wait_until("2 again", lambda: len([i for i in cluster.status("web")["instances"] if i["desired"] == "run"]) == 2)
    assert "/a-line-for-the-log" in "".join(remote("app", "logs", "web", "--instance", i["id"]).stdout for i in cluster.healthy("web"))
    # A deploy sent from there: stored and deployed by the controller, reached through the proxy;
    # its next version, one file changed, sends the whole bundle but stores one or two new chunks.
    folder = cluster.app_folder("remote", "r1", instances=1)
    first = json.loads(remote("app", "deploy", folder, "--json").stdout)
    assert first["deployment"] == "succeeded" and first["version"] >= 1, first
    wait_until("the remotely deployed app answers", lambda: request("remote")[1].startswith("r1 "))
    (folder / "version.txt").write_text("r2\n")
    second = json.loads(remote("app", "deploy", folder, "--json").stdout)
    assert second["version"] == first["version"] + 1 and second["deployment"] == "succeeded", second
    assert 1 <= second["newChunks"] <= 2, second
    wait_until("the new version answers", lambda: request("remote")[1].startswith("r2 "))
    removed = remote("app", "rm", "remote")
    assert "remote" in removed.stdout, removed.stdout
    wait_until("the removed app is gone", lambda: "remote" not in [a["name"] for a in cluster.json("app", "ls")])
    # Refusals: each clear, non-zero, and nothing changed.
    missing = remote("app", "status", "nosuchapp", check=False)
    assert missing.returncode != 0 and "nosuchapp" in missing.stderr, missing.stderr
    bad = remote("app", "scale", "web", "-1", check=False)
    assert bad.returncode != 0 and "instances" in bad.stderr.lower(), bad.stderr
    refused = remote("app", "scale", "web", "5", key=plain, check=False)
    assert refused.returncode != 0 and "admin" in refused.stderr, refused.stderr
    wrong = remote("app", "stop", "web", key={**admin, "secretAccessKey": "x" * 40}, check=False)
    assert wrong.returncode != 0 and "refused the key" in wrong.stderr, wrong.stderr
    assert admin["secretAccessKey"] not in wrong.stderr + refused.stderr
    sent = remote("app", "deploy", cluster.app_folder("intruder", "1", instances=1), key=plain, check=False)
    assert sent.returncode != 0 and "admin" in sent.stderr, sent.stderr
    assert "intruder" not in [a["name"] for a in cluster.json("app", "ls")]
    status = cluster.status("web")
    assert not status["stopped"] and status["desiredInstances"] == 2, status


# MARK: - Failures around the apps

def test_with_the_controller_stopped_apps_keep_serving(cluster):
    instances = cluster.healthy("web")
    cluster.stop_serve()
    try:
        for instance in instances:
            address = NODES[instance["node"]]
            status, body = request(host=address, port=instance["port"])
            assert status == 200 and body.startswith("2 "), body
    finally:
        cluster.start_serve()
    wait_until("the proxy serving again", lambda: request("web")[0] == 200)


def test_a_killed_agent_adopts_its_instances_when_it_returns(cluster):
    # The node of a healthy instance (updates and rollbacks before this test decide which nodes run web).
    node = cluster.healthy("web")[0]["node"]
    on_node = [i for i in cluster.healthy("web") if i["node"] == node]
    before = {i["id"]: request(host=NODES[node], port=i["port"])[1].split()[2] for i in on_node}
    cluster.kill_agent(node)
    for instance in on_node:
        assert request(host=NODES[node], port=instance["port"])[0] == 200, "the instance outlives its agent"
    cluster.start_agent(node)
    wait_until(f"{node}'s instances healthy again", lambda: {i["id"] for i in cluster.healthy("web") if i["node"] == node} == set(before))
    after = {i["id"]: request(host=NODES[node], port=i["port"])[1].split()[2] for i in cluster.healthy("web") if i["node"] == node}
    assert after == before, "the same processes, adopted, not restarted"


def test_a_one_file_change_to_a_20_MiB_bundle_uploads_one_or_two_chunks(cluster):
    pages = {f"assets/page-{i}.bin": os.urandom(200_000) for i in range(100)}
    first = cluster.app_folder("big", "1", instances=1, extra=pages)
    _, one = deploy(cluster, first)
    assert one["bytes"] > 20_000_000
    pages["assets/page-37.bin"] = os.urandom(200_000)
    _, two = deploy(cluster, cluster.app_folder("big", "2", instances=1, extra=pages))
    assert 1 <= two["newChunks"] <= 2, two
    cluster.a67("app", "rm", "big")


# MARK: - Bad input

def test_a_malformed_manifest_is_named_with_file_line_and_key(cluster):
    folder = cluster.app_folder("broken", "1", toml_changes={'interval = "1s"': 'interval = "fast"'})
    result = cluster.a67("app", "deploy", folder, check=False)
    assert result.returncode == 64
    assert re.search(r"a67app\.toml:\d+: \[health\] interval", result.stderr), result.stderr
    assert not any(a["name"] == "broken" for a in cluster.json("app", "ls"))


def test_a_command_that_does_not_exist_fails_clearly(cluster):
    folder = cluster.app_folder("nocmd", "1", instances=1,
                                toml_changes={'command = ["python3", "server.py"]': 'command = ["./no-such-program"]',
                                              'healthy_deadline = "10s"': 'healthy_deadline = "3s"', "auto_revert = true": "auto_revert = false"})
    result, summary = deploy(cluster, folder, check=False)
    assert result.returncode != 0
    status = cluster.status("nocmd")
    messages = " ".join(i.get("message") or "" for i in status["instances"])
    assert "no-such-program" in messages, status
    cluster.a67("app", "rm", "nocmd")


def test_a_node_cannot_touch_another_nodes_allocation_or_forge_a_credential(cluster):
    on_n2 = cluster.healthy("web")[0]  # an instance, and the credential of the other node
    other = "n1" if on_n2["node"] == "n2" else "n2"
    credential = (cluster.root / other / "credential").read_text().strip()
    report = json.dumps({"allocationID": on_n2["id"], "state": "failed", "healthy": False, "port": None, "restarts": 0,
                         "exitCode": None, "message": "forged"})

    def put(authorization):
        out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "-H", "Content-Type: application/json",
                              "-H", f"Authorization: {authorization}", "--data-binary", report,
                              f"{URL}/_a67/agent/allocations/{on_n2['id']}"], capture_output=True, text=True)
        return out.stdout

    assert put(f"A67-Node {credential}") == "403"
    node_id, secret = credential.split(".", 1)
    assert put(f"A67-Node {node_id}.{'0' * len(secret)}") == "401"
    assert [i for i in cluster.healthy("web") if i["id"] == on_n2["id"]], "nothing changed"


# MARK: - Recovery

def test_recovery_on_a_new_home_brings_back_apps_and_nodes(cluster, tmp_path):
    apps = {a["name"] for a in cluster.json("app", "ls")}
    nodes = {n["name"] for n in cluster.json("node", "ls")}
    assert "web" in apps and {"n1", "n2"} <= nodes
    cluster.stop_serve()  # its last catalog snapshot carries what the controller recorded (joins, placements)
    try:
        env = dict(cluster.env, A67_HOME=str(tmp_path / "new-home"))
        result = run_a67(A67_BIN, ["recover", "--dir", cluster.root / "provider"], env)
        assert result.returncode == 0
        recovered_apps = {a["name"] for a in json.loads(run_a67(A67_BIN, ["app", "ls", "--json"], env).stdout)}
        recovered_nodes = {n["name"] for n in json.loads(run_a67(A67_BIN, ["node", "ls", "--json"], env).stdout)}
        assert recovered_apps == apps
        assert recovered_nodes == nodes
        status = json.loads(run_a67(A67_BIN, ["app", "status", "web", "--json"], env).stdout)
        assert status["versions"] == cluster.status("web")["versions"]
    finally:
        cluster.start_serve()

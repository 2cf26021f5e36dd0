"""a67 serve over HTTPS, and agents that trust it by the pin `a67 node token create` prints."""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import A67_BIN, wait_until

PORT = 7467


def test_agents_trust_a_self_signed_controller_by_its_pinned_key():
    root = Path(tempfile.mkdtemp(prefix="a67-tls-"))
    env = dict(os.environ, A67_HOME=str(root / "home"), A67_PASSPHRASE_FILE=str(root / "pass"))
    (root / "pass").write_text("tls passphrase\n")
    serve = None
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                        "-keyout", root / "key.pem", "-out", root / "cert.pem", "-days", "2", "-subj", "/CN=controller"],
                       check=True, capture_output=True)
        expected = subprocess.run("openssl x509 -in cert.pem -pubkey -noout | openssl pkey -pubin -outform der"
                                  " | openssl dgst -sha256 -binary | base64", shell=True, cwd=root, check=True,
                                  capture_output=True, text=True).stdout.strip()
        a67 = lambda *args, check=True: subprocess.run([A67_BIN, *map(str, args)], env=env, capture_output=True, text=True,  # noqa: E731
                                                         check=check, timeout=120)
        a67("init")
        # Both or neither.
        half = a67("serve", "--tls-cert", root / "cert.pem", check=False)
        assert half.returncode == 64 and "--tls-key" in half.stderr, half.stderr
        log = open(root / "serve.log", "wb")
        serve = subprocess.Popen([A67_BIN, "serve", "--listen", f"127.0.0.1:{PORT}", "--tls-cert", root / "cert.pem",
                                  "--tls-key", root / "key.pem"], env=env, stdout=log, stderr=log)

        def health():
            out = subprocess.run(["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", f"https://127.0.0.1:{PORT}/_a67/api/v1/health"],
                                 capture_output=True, text=True)
            return out.stdout == "200"

        wait_until("a67 serve answering HTTPS", health)
        plain = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{PORT}/_a67/api/v1/health"],
                               capture_output=True, text=True)
        assert plain.stdout != "200", "plain HTTP is not answered on the HTTPS port"

        token = json.loads(a67("node", "token", "create", "--json").stdout)
        assert token["pin"] == "sha256//" + expected
        url = f"https://127.0.0.1:{PORT}"

        def join(data, *trust):
            (root / "tok").write_text(token["token"] + "\n")
            return a67("agent", "join", url, "--token-file", root / "tok", "--name", "tls-node", "--data", root / data, *trust, check=False)

        untrusted = join("a1")  # the system's CAs do not know a self-signed certificate
        assert untrusted.returncode != 0 and "controller" in untrusted.stderr, untrusted.stderr
        wrong = join("a2", "--pin", "sha256//" + "A" * 43 + "=")
        assert wrong.returncode != 0, wrong.stderr
        assert not (root / "a2" / "credential").exists()
        good = join("a3", "--pin", token["pin"])
        assert good.returncode == 0, good.stderr
        assert (root / "a3" / "credential").stat().st_mode & 0o777 == 0o600
        nodes = json.loads(a67("node", "ls", "--json").stdout)
        assert [n["name"] for n in nodes] == ["tls-node"], "only the join that trusted the right key got through"
        for name in ("a1", "a2", "a3"):
            assert token["token"] not in (root / "serve.log").read_text(errors="replace")
    finally:
        if serve and serve.poll() is None:
            serve.send_signal(signal.SIGTERM)
            serve.wait(timeout=60)
        shutil.rmtree(root, ignore_errors=True)

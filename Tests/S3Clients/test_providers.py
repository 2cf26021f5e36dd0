"""Providers changing under a running `a67 serve`: a drain from the CLI, a provider folder replaced by an
empty one. Each test has its own repository (three directory providers) and server, since both change
the providers."""

import hashlib
import os
import tempfile
import shutil
import threading
import time
from pathlib import Path

import pytest

from conftest import A67_BIN, MiB, Session, unique_bucket

WATCH_SECONDS = 5  # Repository.providerWatchSeconds: how often the server checks the providers


class Repository:
    """A repository of its own with providers p1, p2, p3 (folders under tmp), user alice and a server."""

    def __init__(self, tmp):
        self.session = Session(tmp)
        self.tmp = Path(tmp)
        a67 = self.session.a67
        a67("init")
        for name in ("p1", "p2", "p3"):
            a67("provider", "add", name, "--dir", self.tmp / name)
        a67("user", "add", "alice")
        key = self.session.a67_json("key", "create", "alice")
        self.server = self.session.start_server()
        import boto3
        from botocore.config import Config
        self.s3 = boto3.session.Session().client(
            "s3", endpoint_url=self.server.endpoint, region_name="us-east-1",
            aws_access_key_id=key["accessKeyId"], aws_secret_access_key=key["secretAccessKey"],
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                          retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=120))

    def a67(self, *args, **kwargs):
        return self.session.a67(*args, **kwargs)

    def provider(self, name):
        return next(p for p in self.session.a67_json("provider", "ls") if p["name"] == name)

    def files_under(self, folder):
        """Every file below `folder` (chunks live under data/)."""
        return [Path(d) / f for d, _, names in os.walk(folder) for f in names]

    def wait_for(self, what, condition, seconds):
        deadline = time.monotonic() + seconds
        while not condition():
            assert time.monotonic() < deadline, f"{what} within {seconds} s; server log:\n{self.server.log()[-3000:]}"
            time.sleep(0.2)


@pytest.fixture
def repository():
    tmp = tempfile.mkdtemp(prefix="a67-providers-")
    repo = Repository(tmp)
    try:
        yield repo
        code = repo.server.stop()
        assert code == 0, f"a67 serve exited with {code} on SIGTERM; log:\n{repo.server.log()[-3000:]}"
    finally:
        if repo.server.alive():
            repo.server.process.kill()
            repo.server.process.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def test_drain_beside_a_running_server_leaves_nothing_on_the_provider(repository):
    """`a67 provider drain` while a67 serve takes uploads: once drain returns, no chunk is recorded on the
    drained provider and none of its files are left, `provider rm` succeeds, and every object has its two
    replicas and reads back intact."""
    s3 = repository.s3
    bucket = unique_bucket("drain")
    s3.create_bucket(Bucket=bucket)
    sent = {}  # key -> sha256
    failures = []
    done = threading.Event()

    def upload(worker):
        try:
            for i in range(20):
                body = os.urandom(6 * MiB)
                key = f"w{worker}/o{i}"
                s3.put_object(Bucket=bucket, Key=key, Body=body)
                sent[key] = hashlib.sha256(body).hexdigest()
        except Exception as e:  # reported below: the test must not hang on a dead thread
            failures.append(f"worker {worker}: {e!r}")

    workers = [threading.Thread(target=upload, args=(w,)) for w in range(2)]
    for t in workers:
        t.start()
    try:
        repository.wait_for("the first uploads did not finish", lambda: len(sent) >= 4 or failures, 120)
        repository.wait_for("p3 got no chunk", lambda: repository.provider("p3")["chunks"] > 0, 60)
        assert len(sent) < 40, "the uploads finished before the drain started: the test proves nothing"
        repository.a67("provider", "drain", "p3", timeout=300)
        assert len(sent) < 40, "the uploads finished before the drain returned: nothing ran beside it"
        # What drain reported must hold at once, while uploads go on.
        assert repository.provider("p3")["chunks"] == 0
        left = repository.files_under(repository.tmp / "p3" / "data")
        assert not left, f"{len(left)} file(s) left on the drained provider, e.g. {left[:3]}"
    finally:
        for t in workers:
            t.join(timeout=300)
    assert not failures, failures
    assert len(sent) == 40
    assert repository.provider("p3")["chunks"] == 0
    assert not repository.files_under(repository.tmp / "p3" / "data")
    repository.a67("provider", "rm", "p3")
    status = repository.session.a67_json("status")
    assert status["underReplicatedChunks"] == 0, status
    assert set(status["chunksByReplicas"]) == {"2"}, status
    for key, digest in sent.items():
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == digest, f"{key} reads back other bytes"


def test_a_provider_folder_replaced_by_an_empty_one_takes_no_chunks(repository):
    """A provider folder replaced by an empty one while a67 serve runs: within the probe interval the server
    places nothing there (no file appears, the catalog records no chunk there) while uploads go on, and
    `a67 provider ls` and the server's log say why; once the folder is back it takes chunks again."""
    s3 = repository.s3
    bucket = unique_bucket("keyring")
    s3.create_bucket(Bucket=bucket)
    p3 = repository.tmp / "p3"
    p3.rename(repository.tmp / "p3-away")
    p3.mkdir()

    def problem():
        return repository.provider("p3").get("problem")

    repository.wait_for("a67 provider ls did not say why p3 takes no chunks", problem, 3 * WATCH_SECONDS)
    assert "keyring" in problem(), problem()
    for i in range(12):
        s3.put_object(Bucket=bucket, Key=f"k{i}", Body=os.urandom(MiB))
    appeared = repository.files_under(p3)
    assert not appeared, f"{len(appeared)} file(s) were placed in the empty folder, e.g. {appeared[:3]}"
    assert repository.provider("p3")["chunks"] == 0
    listed = repository.a67("provider", "ls")
    assert "p3 takes no chunks" in listed.stderr and "keyring" in listed.stderr, listed
    assert "provider p3" in repository.server.log() and "takes no chunks" in repository.server.log()
    status = repository.session.a67_json("status")
    assert status["underReplicatedChunks"] == 0, status

    # The folder comes back: so does placement there.
    p3.rmdir()
    (repository.tmp / "p3-away").rename(p3)
    repository.wait_for("p3 was not taken back", lambda: problem() is None, 3 * WATCH_SECONDS)
    for i in range(12):
        s3.put_object(Bucket=bucket, Key=f"back{i}", Body=os.urandom(MiB))
    assert repository.provider("p3")["chunks"] > 0

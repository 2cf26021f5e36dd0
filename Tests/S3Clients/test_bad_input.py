"""What a67 serve does with requests no well-behaved client sends: bad or stale signatures, lying
lengths, dropped connections, hostile keys and names, malformed XML, header floods. Requests are made
with http.client or a bare socket and signed by hand (sigv4_sign in conftest), so nothing is fixed up
on the way; every error must be an S3 XML error with the right Code, and the server must stay up."""

import base64
import datetime
import hashlib
import http.client
import json
import os
import signal
import socket
import struct
import time
import unittest.mock
import urllib.parse

import pytest

from conftest import MiB, ServerProcess, http_request, REGION, query_string, s3_error, sigv4_sign, unique_bucket

UNSIGNED = "UNSIGNED-PAYLOAD"


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


class Raw:
    """Hand-signed requests to the session's server."""

    def __init__(self, server):
        self.server = server
        self.host = f"127.0.0.1:{server.port}"

    def headers(self, method, path, query=(), headers=None, payload_hash=None, body=b"", user="alice",
                when=None, secret=None, access=None):
        own_access, own_secret = self.server.credentials(user)
        return sigv4_sign(method, path, list(query), {"host": self.host, **(headers or {})},
                          payload_hash or hashlib.sha256(body).hexdigest(), access or own_access,
                          secret or own_secret, when or utcnow())

    def request(self, method, path, query=(), headers=None, body=b"", sign=True, timeout=60, **signing):
        """Sends one request on a new connection; returns (status, headers, body)."""
        all_headers = (self.headers(method, path, query, headers, body=body, **signing) if sign
                       else {"host": self.host, **(headers or {})})
        target = path + ("?" + query_string(query) if query else "")
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=timeout)
        try:
            conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for name, value in all_headers.items():
                conn.putheader(name, value)
            if body or method in ("PUT", "POST"):
                if not any(k.lower() == "content-length" for k in all_headers):
                    conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            response = conn.getresponse()
            return Response(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            conn.close()


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def code(self):
        return s3_error(self.body)[0]

    def message(self):
        return s3_error(self.body)[1]

    def __repr__(self):
        return f"HTTP {self.status} {self.body[:600]!r}"


def expect(response, status, *codes):
    assert response.status == status, f"expected {status} {codes}: {response}"
    if codes:
        assert response.code() in codes, f"expected {status} {codes}: {response}"


@pytest.fixture
def raw(server):
    return Raw(server)


def alive(server):
    """The server still answers, on a new connection."""
    health = http_request("GET", server.endpoint + "/_a67/api/v1/health", timeout=10)
    assert health.status == 200, f"the server no longer answers: {health}"


def exists(alice, bucket, key):
    from botocore.exceptions import ClientError
    try:
        alice.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as e:
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 404, e.response
        return False


def read_until_closed(sock, timeout):
    """The peer's answer: one whole HTTP response (by its Content-Length or chunked end), or what came before
    it closed or reset the connection (b"" for nothing); None when it neither answered nor closed in time."""
    sock.settimeout(timeout)
    received = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            block = sock.recv(65536)
            if not block:
                return received
            received += block
            if response_complete(received):
                return received
    except (ConnectionResetError, BrokenPipeError):
        return received
    except socket.timeout:
        pass
    return received if response_complete(received) else None


def response_complete(data):
    if b"\r\n\r\n" not in data:
        return False
    head, body = data.split(b"\r\n\r\n", 1)
    fields = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        fields[name.strip().lower()] = value.strip()
    if b"content-length" in fields:
        return len(body) >= int(fields[b"content-length"])
    if fields.get(b"transfer-encoding", b"").lower() == b"chunked":
        return body.endswith(b"0\r\n\r\n")
    return status_of(data) in (204, 304)


def request_head(method, target, headers):
    """An HTTP/1.1 request head, as text."""
    return f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"


def status_of(raw_response):
    if not raw_response or not raw_response.startswith(b"HTTP/1."):
        return None
    return int(raw_response.split(b" ", 2)[1])


# --- the signer itself ---

def test_hand_signer_agrees_with_botocore():
    """The negative tests below mean something only if sigv4_sign signs like botocore does."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    when = datetime.datetime(2026, 1, 2, 3, 4, 5)
    body = b"hello"
    url = "http://127.0.0.1:9/bucket/some%20key/x.txt?partNumber=3&uploadId=a%2Bb%3D"
    request = AWSRequest(method="PUT", url=url, data=body, headers={"Content-Type": "text/plain"})
    with unittest.mock.patch("botocore.auth.get_current_datetime", return_value=when):
        S3SigV4Auth(Credentials("AKID", "SECRET"), "s3", REGION).add_auth(request)
    ours = sigv4_sign("PUT", "/bucket/some%20key/x.txt", [("partNumber", "3"), ("uploadId", "a+b=")],
                      {"host": "127.0.0.1:9", "Content-Type": "text/plain"}, hashlib.sha256(body).hexdigest(),
                      "AKID", "SECRET", when)
    assert ours["Authorization"] == request.headers["Authorization"]


def test_hand_signed_requests_work(raw, alice, bucket):
    body = b"signed by hand"
    expect(raw.request("PUT", f"/{bucket}/hand", body=body), 200)
    assert alice.get_object(Bucket=bucket, Key="hand")["Body"].read() == body
    got = raw.request("GET", f"/{bucket}/hand")
    assert (got.status, got.body) == (200, body)
    expect(raw.request("PUT", f"/{bucket}/unsigned-payload", body=b"u", payload_hash=UNSIGNED), 200)
    listed = raw.request("GET", f"/{bucket}", query=[("list-type", "2")])
    assert listed.status == 200 and b"<Key>hand</Key>" in listed.body, listed


def test_error_body_shape(raw, bucket):
    """S3's error body: <Error> with no XML namespace (botocore reads no Code from a namespaced one), Code,
    Message, Resource and RequestId, as application/xml; the request ID also as x-amz-request-id."""
    import xml.etree.ElementTree as ET
    response = raw.request("GET", f"/{bucket}/no-such-key")
    assert response.status == 404
    assert response.headers.get("content-type", "").startswith("application/xml"), response.headers
    root = ET.fromstring(response.body)
    assert root.tag == "Error", f"the root is {root.tag!r}, not a bare 'Error': {response.body[:300]!r}"
    assert root.findtext("Code") == "NoSuchKey"
    assert root.findtext("Message")
    assert root.findtext("Resource") == f"/{bucket}/no-such-key"
    assert root.findtext("RequestId") == response.headers.get("x-amz-request-id"), response.headers


# --- authentication ---

def test_bad_signature(raw, alice, bucket):
    expect(raw.request("PUT", f"/{bucket}/forged", body=b"x", secret="not-the-secret"), 403, "SignatureDoesNotMatch")
    expect(raw.request("GET", f"/{bucket}", secret="not-the-secret"), 403, "SignatureDoesNotMatch")
    # A signed header changed after signing.
    headers = raw.headers("PUT", f"/{bucket}/changed", headers={"x-amz-meta-color": "blue"}, body=b"x")
    headers["x-amz-meta-color"] = "red"
    conn = http.client.HTTPConnection("127.0.0.1", raw.server.port, timeout=30)
    conn.request("PUT", f"/{bucket}/changed", body=b"x", headers=headers)
    response = conn.getresponse()
    changed = Response(response.status, {}, response.read())
    conn.close()
    expect(changed, 403, "SignatureDoesNotMatch")
    assert not exists(alice, bucket, "forged") and not exists(alice, bucket, "changed")


def test_unknown_access_key(raw, bucket):
    expect(raw.request("GET", f"/{bucket}", access="AKIANOSUCHKEY0000000"), 403, "InvalidAccessKeyId")
    expect(raw.request("GET", "/", access="AKIANOSUCHKEY0000000"), 403, "InvalidAccessKeyId")


def test_missing_authentication(raw, alice, bucket):
    alice.put_object(Bucket=bucket, Key="k", Body=b"private")
    expect(raw.request("GET", f"/{bucket}", sign=False), 403, "AccessDenied")
    expect(raw.request("GET", f"/{bucket}/k", sign=False), 403, "AccessDenied")
    expect(raw.request("PUT", f"/{bucket}/anon", body=b"x", sign=False), 403, "AccessDenied")
    expect(raw.request("GET", "/", sign=False), 403, "AccessDenied")
    assert not exists(alice, bucket, "anon")


def test_request_time_too_skewed(raw, bucket):
    stale = utcnow() - datetime.timedelta(minutes=20)
    expect(raw.request("GET", f"/{bucket}", when=stale), 403, "RequestTimeTooSkewed")
    future = utcnow() + datetime.timedelta(minutes=20)
    expect(raw.request("GET", f"/{bucket}", when=future), 403, "RequestTimeTooSkewed")
    # Within the allowed skew (15 minutes in S3) the same request is accepted.
    expect(raw.request("GET", f"/{bucket}", when=utcnow() - datetime.timedelta(minutes=2)), 200)


def test_expired_presigned_url(server, alice, bucket):
    alice.put_object(Bucket=bucket, Key="shared", Body=b"once shared")
    an_hour_ago = utcnow() - datetime.timedelta(hours=1)
    with unittest.mock.patch("botocore.auth.get_current_datetime", return_value=an_hour_ago):
        url = alice.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "shared"}, ExpiresIn=60)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert query["X-Amz-Date"] == [an_hour_ago.strftime("%Y%m%dT%H%M%SZ")] and query["X-Amz-Expires"] == ["60"]
    result = http_request("GET", url)
    assert result.status == 403, result
    code, message = result.error()
    assert code == "AccessDenied" and "expired" in message.lower(), (code, message)
    # The same URL signed now works (the refusal was the expiry, not the signature).
    fresh = alice.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "shared"}, ExpiresIn=60)
    assert http_request("GET", fresh).body == b"once shared"
    # A tampered presigned URL is a signature mismatch.
    tampered = fresh.replace("X-Amz-Expires=60", "X-Amz-Expires=600")
    result = http_request("GET", tampered)
    assert result.status == 403 and result.error()[0] == "SignatureDoesNotMatch", result


# --- bodies that lie ---

def test_payload_hash_and_length_disagree(raw, alice, bucket):
    """(a) x-amz-content-sha256 of 50 bytes, Content-Length 10 with those 10 bytes sent."""
    fifty = os.urandom(50)
    response = raw.request("PUT", f"/{bucket}/short", body=fifty[:10], payload_hash=hashlib.sha256(fifty).hexdigest())
    expect(response, 400, "XAmzContentSHA256Mismatch", "IncompleteBody")
    assert not exists(alice, bucket, "short")
    # A wrong Content-MD5 is BadDigest.
    response = raw.request("PUT", f"/{bucket}/bad-md5", body=b"abc",
                           headers={"Content-MD5": base64.b64encode(hashlib.md5(b"abd").digest()).decode()})
    expect(response, 400, "BadDigest")
    assert not exists(alice, bucket, "bad-md5")
    alive(raw.server)


def test_body_shorter_than_content_length(raw, alice, bucket):
    """(b) Content-Length 1000, 100 bytes sent, then the client's side shut."""
    body = os.urandom(1000)
    headers = raw.headers("PUT", f"/{bucket}/truncated", headers={"content-length": "1000"}, body=body)
    head = request_head("PUT", f"/{bucket}/truncated", headers)
    with socket.create_connection(("127.0.0.1", raw.server.port), timeout=30) as sock:
        sock.sendall(head.encode() + body[:100])
        sock.shutdown(socket.SHUT_WR)
        answer = read_until_closed(sock, 30)
    assert answer is not None, "after the client's EOF the server neither answered nor closed within 30 s"
    status = status_of(answer)
    assert status is None or 400 <= status < 500, f"a truncated body was answered {answer[:300]!r}"
    assert not exists(alice, bucket, "truncated")
    alive(raw.server)


def test_connection_dropped_mid_upload(server, raw, alice, bucket):
    """A 12 MiB PUT (UNSIGNED-PAYLOAD) whose client goes away: no object, and gc reclaims what it left."""
    baseline = server.a67_json("gc", "--grace", "0")
    size = 12 * MiB
    headers = raw.headers("PUT", f"/{bucket}/dropped", headers={"content-length": str(size)}, payload_hash=UNSIGNED)
    head = request_head("PUT", f"/{bucket}/dropped", headers)
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(head.encode())
        block = os.urandom(MiB)
        for _ in range(11):
            sock.sendall(block)
        sock.sendall(block[: MiB - 4096])
        # The client goes away: the server sees the end of the stream 4 KiB short.
        sock.shutdown(socket.SHUT_WR)
        answer = read_until_closed(sock, 60)
    assert answer is not None, "the server neither answered nor closed within 60 s of the client's end of stream"
    status = status_of(answer)
    assert status is None or 400 <= status < 500, f"an incomplete upload was answered {answer[:300]!r}"
    assert not exists(alice, bucket, "dropped")
    # A connection reset in the middle (RST, not FIN) leaves nothing either.
    headers = raw.headers("PUT", f"/{bucket}/reset", headers={"content-length": str(size)}, payload_hash=UNSIGNED)
    head = request_head("PUT", f"/{bucket}/reset", headers)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    sock.sendall(head.encode() + os.urandom(6 * MiB))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    alive(server)
    assert not exists(alice, bucket, "reset")
    # gc with no grace reclaims what the dropped upload stored, and the server goes on.
    result = server.a67("gc", "--grace", "0", "--json")
    assert result.returncode == 0
    collected = json.loads(result.stdout)
    reclaimed = collected.get("chunksDeleted", 0) + collected.get("orphansDeleted", 0)
    assert reclaimed >= 1, f"gc reclaimed nothing after the dropped 12 MiB upload: {collected} (baseline {baseline})"
    stat = server.a67_json("stat")
    assert stat.get("unreferencedChunks", 0) == 0, stat
    alive(server)
    alice.put_object(Bucket=bucket, Key="after", Body=b"still works")
    assert alice.get_object(Bucket=bucket, Key="after")["Body"].read() == b"still works"


# --- keys ---

@pytest.mark.parametrize("raw_key", ["a/../b", "../escape", "x%2F..%2Fy", "..%2Fy", "nul%00key", "a/%2E%2E/b"])
def test_unsafe_keys_are_refused(raw, alice, bucket, raw_key):
    response = raw.request("PUT", f"/{bucket}/{raw_key}", body=b"x")
    assert response.status == 400, f"key {raw_key!r}: {response}"
    s3_error(response.body)
    assert alice.list_objects_v2(Bucket=bucket)["KeyCount"] == 0, f"key {raw_key!r} stored something"
    alive(raw.server)


def test_encoded_slash_is_a_slash(raw, alice, bucket):
    expect(raw.request("PUT", f"/{bucket}/a%2Fb", body=b"slash"), 200)
    assert [o["Key"] for o in alice.list_objects_v2(Bucket=bucket)["Contents"]] == ["a/b"]
    assert alice.get_object(Bucket=bucket, Key="a/b")["Body"].read() == b"slash"
    assert [p["Prefix"] for p in alice.list_objects_v2(Bucket=bucket, Delimiter="/")["CommonPrefixes"]] == ["a/"]


def test_key_length_limit(raw, alice, bucket):
    expect(raw.request("PUT", f"/{bucket}/{'k' * 1025}", body=b"x"), 400, "KeyTooLongError")
    # 1,024 bytes of UTF-8 is the limit, not 1,024 characters.
    expect(raw.request("PUT", f"/{bucket}/{urllib.parse.quote('é' * 513)}", body=b"x"), 400, "KeyTooLongError")
    # 1,024 bytes is allowed (in segments of at most 255 bytes: a67 keeps keys a tree, like a file system).
    longest = "/".join(["k" * 200] * 5) + "/" + "k" * 19
    assert len(longest) == 1024
    expect(raw.request("PUT", f"/{bucket}/{longest}", body=b"x"), 200)
    assert [o["Key"] for o in alice.list_objects_v2(Bucket=bucket)["Contents"]] == [longest]


@pytest.mark.parametrize("name", ["AB", "a_b", "-abc", "a" * 64, "ab", "abc-", "a..b", "192.168.5.4", "Abc"])
def test_invalid_bucket_names(raw, alice, name):
    expect(raw.request("PUT", f"/{name}"), 400, "InvalidBucketName")
    assert name not in [b["Name"] for b in alice.list_buckets()["Buckets"]]


def test_longest_and_shortest_bucket_names(raw, alice):
    longest = ("z" * 51 + os.urandom(6).hex())[:63]
    shortest = "q" + os.urandom(1).hex()
    for name in (longest, shortest):
        assert len(name) in (3, 63)
        expect(raw.request("PUT", f"/{name}"), 200)
        assert name in [b["Name"] for b in alice.list_buckets()["Buckets"]]


# --- multipart ---

def complete_xml(parts):
    inner = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>" for n, etag in parts)
    return f'<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{inner}</CompleteMultipartUpload>'.encode()


def test_multipart_bad_input(raw, alice, bucket):
    upload_id = alice.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    for number in ("0", "10001", "-1", "abc"):
        response = raw.request("PUT", f"/{bucket}/mp", query=[("partNumber", number), ("uploadId", upload_id)], body=b"x")
        expect(response, 400, "InvalidArgument")
    first, second = os.urandom(5 * MiB), b"second part"
    e1 = raw.request("PUT", f"/{bucket}/mp", query=[("partNumber", "1"), ("uploadId", upload_id)], body=first)
    e2 = raw.request("PUT", f"/{bucket}/mp", query=[("partNumber", "2"), ("uploadId", upload_id)], body=second)
    assert e1.status == 200 and e2.status == 200, (e1, e2)
    etag1, etag2 = e1.headers["etag"], e2.headers["etag"]
    assert etag1 == f'"{hashlib.md5(first).hexdigest()}"'
    query = [("uploadId", upload_id)]
    expect(raw.request("POST", f"/{bucket}/mp", query=query, body=complete_xml([(2, etag2), (1, etag1)])),
           400, "InvalidPartOrder")
    expect(raw.request("POST", f"/{bucket}/mp", query=query, body=complete_xml([(1, etag1), (1, etag1)])),
           400, "InvalidPartOrder")
    expect(raw.request("POST", f"/{bucket}/mp", query=query, body=complete_xml([(1, etag1), (3, etag2)])),
           400, "InvalidPart")
    expect(raw.request("POST", f"/{bucket}/mp", query=query, body=complete_xml([(1, etag1), (2, etag1)])),
           400, "InvalidPart")
    expect(raw.request("POST", f"/{bucket}/mp", query=query, body=b"this is not xml <"), 400, "MalformedXML")
    expect(raw.request("POST", f"/{bucket}/mp", query=query, body=b"<CompleteMultipartUpload><Part><PartNumber>1"),
           400, "MalformedXML")
    expect(raw.request("POST", f"/{bucket}/mp", query=[("uploadId", "no-such-upload")],
                       body=complete_xml([(1, etag1)])), 404, "NoSuchUpload")
    assert not exists(alice, bucket, "mp")
    done = raw.request("POST", f"/{bucket}/mp", query=query, body=complete_xml([(1, etag1), (2, etag2)]))
    assert done.status == 200 and b"<ETag>" in done.body, done
    assert alice.get_object(Bucket=bucket, Key="mp")["Body"].read() == first + second


def test_delete_objects_malformed_xml(raw, alice, bucket):
    alice.put_object(Bucket=bucket, Key="x", Body=b"kept")
    for body in (b"<Delete><Object><Key>x</Key>", b"not xml at all", b"<Delete><Object><Key>x</Key></Object></Wrong>"):
        md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
        response = raw.request("POST", f"/{bucket}", query=[("delete", "")], body=body, headers={"Content-MD5": md5})
        expect(response, 400, "MalformedXML")
    assert exists(alice, bucket, "x")
    # More than 1,000 keys in one request is refused too (S3's limit).
    body = ("<Delete>" + "".join(f"<Object><Key>k{i}</Key></Object>" for i in range(1001)) + "</Delete>").encode()
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    response = raw.request("POST", f"/{bucket}", query=[("delete", "")], body=body, headers={"Content-MD5": md5})
    expect(response, 400, "MalformedXML", "InvalidRequest", "InvalidArgument")
    # A well-formed one works.
    body = b"<Delete><Object><Key>x</Key></Object></Delete>"
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    response = raw.request("POST", f"/{bucket}", query=[("delete", "")], body=body, headers={"Content-MD5": md5})
    assert response.status == 200 and b"<Deleted>" in response.body, response
    assert not exists(alice, bucket, "x")


def test_deeply_nested_xml(server, raw, alice, bucket):
    """A body nested 50,000 levels deep (about 850 KB, under the 2 MiB cap) once crashed the server for
    everyone; now past 32 levels it is MalformedXML, and the server keeps answering."""
    alice.put_object(Bucket=bucket, Key="x", Body=b"kept")
    depth = 50_000
    deep = "<Object>" * depth + "</Object>" * depth
    body = f"<Delete>{deep}</Delete>".encode()
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    response = raw.request("POST", f"/{bucket}", query=[("delete", "")], body=body, headers={"Content-MD5": md5})
    expect(response, 400, "MalformedXML")
    alive(server)
    upload_id = alice.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    body = f"<CompleteMultipartUpload>{'<Part>' * depth}{'</Part>' * depth}</CompleteMultipartUpload>".encode()
    response = raw.request("POST", f"/{bucket}/mp", query=[("uploadId", upload_id)], body=body)
    expect(response, 400, "MalformedXML")
    alive(server)
    assert exists(alice, bucket, "x") and not exists(alice, bucket, "mp")
    alice.abort_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload_id)


# --- what errors tell a client ---

class OwnRepository:
    """A repository of the test's own (two directory providers, one user who is not an admin) served by its
    own `a67 serve`, for faults that must not touch the session's providers."""

    def __init__(self, session, tmp, providers=("alpha-disk", "beta-disk")):
        self.env = dict(session.env, A67_HOME=str(tmp / "home"))
        self.session = session
        self.folders = {name: tmp / name for name in providers}
        session.a67("init", env=self.env)
        for name, folder in self.folders.items():
            session.a67("provider", "add", name, "--dir", folder, env=self.env)
        session.a67("user", "add", "carol", env=self.env)
        key = json.loads(session.a67("key", "create", "carol", "--json", env=self.env).stdout)
        self.keys = (key["accessKeyId"], key["secretAccessKey"])
        self.server = ServerProcess(self.env, tmp / "serve.log")
        self.port = self.server.port
        self.raw = Raw(self)

    def credentials(self, user):
        return self.keys

    def log(self):
        return self.server.log()

    def stop(self):
        assert self.server.stop() == 0, self.server.log()


def assert_tells_nothing_of_the_server(response, *secrets):
    """An error body for an S3 client: S3's code and message, nothing written for the CLI or naming the
    server's providers and files."""
    text = response.body.decode("utf-8", "replace")
    for word in ("a67 ", "--", *secrets):
        assert word not in text, f"the error body holds {word!r}: {text}"


def test_provider_failure_tells_clients_nothing_of_the_providers(server, tmp_path):
    """Both providers gone while serving: a user (not an admin) gets S3's 503 ServiceUnavailable, whose body names
    no provider, no local path and no a67 command; the server's log has the detail under the request ID."""
    own = OwnRepository(server, tmp_path)
    try:
        expect(own.raw.request("PUT", "/faults"), 200)
        expect(own.raw.request("PUT", "/faults/before", body=b"stored"), 200)
        for name, folder in own.folders.items():
            folder.rename(folder.with_name(name + ".away"))
            folder.write_text("not a folder: the provider's root was replaced\n")
        try:
            response = own.raw.request("PUT", "/faults/during", body=b"cannot be stored")
        finally:
            for name, folder in own.folders.items():
                folder.unlink()
                folder.with_name(name + ".away").rename(folder)
        expect(response, 503, "ServiceUnavailable")
        assert response.message() in ("Service is unable to handle request.", "Please reduce your request rate."), response
        assert_tells_nothing_of_the_server(response, str(tmp_path), "/tmp", *own.folders)
        request_id = response.headers["x-amz-request-id"]
        lines = [line for line in own.log().splitlines() if request_id in line]
        assert lines and any(name in line for line in lines for name in own.folders), \
            f"the log has no detail for request {request_id}:\n{own.log()}"
        missing = own.raw.request("GET", "/no-such-bucket-here/key")
        expect(missing, 404, "NoSuchBucket")
        assert_tells_nothing_of_the_server(missing)
        expect(own.raw.request("GET", "/faults/before"), 200)
    finally:
        own.stop()


def test_bucket_removed_during_an_upload(server, raw, alice):
    """A not-found the handler did not expect is named as S3 names it: here the bucket, removed while an upload
    into it was being sent, is NoSuchBucket (not NoSuchKey), with S3's message and nothing for the CLI."""
    name = unique_bucket("removed-during-upload")
    alice.create_bucket(Bucket=name)
    body = os.urandom(MiB)
    headers = raw.headers("PUT", f"/{name}/late", headers={"content-length": str(len(body))}, payload_hash=UNSIGNED)
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(request_head("PUT", f"/{name}/late", headers).encode() + body[: MiB // 2])
        alice.delete_bucket(Bucket=name)
        sock.sendall(body[MiB // 2:])
        answer = read_until_closed(sock, 60)
    assert answer is not None and status_of(answer) == 404, answer
    response = Response(404, {}, answer.split(b"\r\n\r\n", 1)[1])
    assert response.code() == "NoSuchBucket", response
    assert_tells_nothing_of_the_server(response)


# --- headers a67 cannot honour ---

SSE_C_KEY = base64.b64encode(b"k" * 32).decode()
SSE_C = {"x-amz-server-side-encryption-customer-algorithm": "AES256",
         "x-amz-server-side-encryption-customer-key": SSE_C_KEY,
         "x-amz-server-side-encryption-customer-key-MD5": base64.b64encode(hashlib.md5(b"k" * 32).digest()).decode()}
REFUSED_ON_PUT = [
    SSE_C,
    {"x-amz-server-side-encryption": "aws:kms"},
    {"x-amz-server-side-encryption": "aws:kms:dsse"},
    {"x-amz-server-side-encryption": "AES256", "x-amz-server-side-encryption-aws-kms-key-id": "some-key"},
    {"x-amz-tagging": "project=x"},
    {"x-amz-acl": "public-read"},
    {"x-amz-grant-read": 'uri="http://acs.amazonaws.com/groups/global/AllUsers"'},
    {"x-amz-object-lock-mode": "GOVERNANCE", "x-amz-object-lock-retain-until-date": "2030-01-01T00:00:00Z"},
    {"x-amz-object-lock-legal-hold": "ON"},
    {"x-amz-website-redirect-location": "/elsewhere"},
]


def expect_not_implemented(response, headers):
    expect(response, 501, "NotImplemented")
    assert any(name.lower() in response.message() for name in headers), response.message()


@pytest.mark.parametrize("headers", REFUSED_ON_PUT, ids=lambda h: ",".join(h))
def test_headers_that_change_a_write_are_refused(raw, alice, bucket, headers):
    """A write that asks for what a67 does not do (SSE-C, KMS, tags, ACL grants, object lock, redirects) is refused
    whole with 501 naming the header, before anything is stored: PUT, CopyObject and CreateMultipartUpload alike."""
    expect_not_implemented(raw.request("PUT", f"/{bucket}/refused", headers=headers, body=b"never stored"), headers)
    assert not exists(alice, bucket, "refused")
    alice.put_object(Bucket=bucket, Key="source", Body=b"source")
    copy = {"x-amz-copy-source": f"/{bucket}/source", "x-amz-metadata-directive": "REPLACE", **headers}
    expect_not_implemented(raw.request("PUT", f"/{bucket}/copied", headers=copy), headers)
    assert not exists(alice, bucket, "copied")
    expect_not_implemented(raw.request("POST", f"/{bucket}/multi", query=[("uploads", "")], headers=headers), headers)
    assert alice.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_what_a67_does_anyway_is_accepted_and_the_rest_of_copy_and_parts_refused(raw, alice, bucket):
    for headers in ({"x-amz-acl": "private"}, {"x-amz-server-side-encryption": "AES256"}, {"x-amz-object-lock-legal-hold": "OFF"}):
        response = raw.request("PUT", f"/{bucket}/fine", headers=headers, body=b"stored")
        assert response.status == 200 and response.headers.get("x-amz-server-side-encryption") == "AES256", response
    alice.put_object(Bucket=bucket, Key="source", Body=b"source")
    replace_tags = {"x-amz-copy-source": f"/{bucket}/source", "x-amz-tagging-directive": "REPLACE", "x-amz-tagging": "a=b"}
    expect_not_implemented(raw.request("PUT", f"/{bucket}/copied", headers=replace_tags), replace_tags)
    sse_c_source = {"x-amz-copy-source": f"/{bucket}/source",
                    **{k.replace("x-amz-", "x-amz-copy-source-"): v for k, v in SSE_C.items()}}
    expect_not_implemented(raw.request("PUT", f"/{bucket}/copied", headers=sse_c_source), sse_c_source)
    assert not exists(alice, bucket, "copied")
    upload_id = alice.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    part = raw.request("PUT", f"/{bucket}/mp", query=[("partNumber", "1"), ("uploadId", upload_id)], headers=SSE_C, body=b"part")
    expect_not_implemented(part, SSE_C)
    assert alice.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id).get("Parts", []) == []
    alice.abort_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload_id)


# --- ownership ---

def test_other_users_bucket(raw, alice, bucket):
    alice.put_object(Bucket=bucket, Key="mine", Body=b"alice's")
    for method, path, query, body in [("GET", f"/{bucket}", [], b""), ("GET", f"/{bucket}", [("list-type", "2")], b""),
                                      ("GET", f"/{bucket}/mine", [], b""), ("PUT", f"/{bucket}/bobs", [], b"x"),
                                      ("DELETE", f"/{bucket}/mine", [], b""), ("DELETE", f"/{bucket}", [], b""),
                                      ("POST", f"/{bucket}/up", [("uploads", "")], b"")]:
        response = raw.request(method, path, query=query, body=body, user="bob")
        expect(response, 403, "AccessDenied")
        assert b"alice" not in response.body.lower(), response
    head = raw.request("HEAD", f"/{bucket}", user="bob")
    assert head.status == 403 and head.body == b""
    assert alice.get_object(Bucket=bucket, Key="mine")["Body"].read() == b"alice's"
    assert not exists(alice, bucket, "bobs")


# --- hostile headers ---

def send_and_classify(server, request_bytes):
    """'closed' when the server closes (or resets) the connection, else the status it answered."""
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            try:
                sock.sendall(request_bytes)
            except (BrokenPipeError, ConnectionResetError):
                return "closed"
            answer = read_until_closed(sock, 30)
    except (BrokenPipeError, ConnectionResetError):
        return "closed"
    assert answer is not None, "the server neither answered nor closed within 30 s"
    status = status_of(answer)
    return "closed" if status is None else status


def test_header_flood(server):
    head = f"GET /_a67/api/v1/health HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
    flood = "".join(f"X-Flood-{i:04d}: {'v' * 16}\r\n" for i in range(2000))
    outcome = send_and_classify(server, (head + flood + "Connection: close\r\n\r\n").encode())
    assert outcome == "closed" or 400 <= outcome < 500, f"2,000 headers were answered {outcome}"
    alive(server)


def test_oversized_header(server):
    head = f"GET /_a67/api/v1/health HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
    outcome = send_and_classify(server, (head + f"X-Big: {'b' * 100_000}\r\nConnection: close\r\n\r\n").encode())
    assert outcome == "closed" or 400 <= outcome < 500, f"a 100 KB header was answered {outcome}"
    alive(server)


def test_garbage_request_line(server):
    outcome = send_and_classify(server, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n")
    assert outcome == "closed" or 400 <= outcome < 500, f"a garbage request was answered {outcome}"
    alive(server)


# --- connection floods ---

def closed_within(socks, seconds):
    """The sockets of `socks` the server closed (EOF or reset) within `seconds`."""
    import selectors
    closed = set()
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        deadline = time.monotonic() + seconds
        while len(closed) < len(socks) and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=max(0.01, deadline - time.monotonic())):
                try:
                    data = key.fileobj.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    closed.add(key.fileobj)
                    selector.unregister(key.fileobj)
    return closed


def test_connection_flood(server):
    """1,100 idle connections from one client once used up the server's descriptors (it ran with a soft limit of
    1,024) and it answered no one. Now: past --max-connections-per-client the excess is closed at accept, another
    client is answered at once, idle connections are closed after --idle-timeout, and a request head that is not
    whole within --request-head-timeout of its first byte (slowloris) is closed sooner. Loopback only, bounded."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2400:
        pytest.fail(f"this test opens 1,100 connections: it needs a hard descriptor limit of 2,400 or more (ulimit -Hn: {hard})")
    per_client, idle, head_timeout = 128, 10, 2
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, soft), hard))  # the server starts with 1,024, as before
    try:
        extra_cm = server.extra_server("--max-connections-per-client", str(per_client), "--idle-timeout", str(idle),
                                       "--request-head-timeout", str(head_timeout))
        extra = extra_cm.__enter__()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard))
    flood = []
    try:
        for _ in range(1100):
            flood.append(socket.create_connection(("127.0.0.1", extra.port), timeout=10))
        refused = closed_within(flood, 2)
        assert len(flood) - len(refused) == per_client, \
            f"{len(flood) - len(refused)} of 1,100 connections from one client are held; at most {per_client} may be"
        # Another client is answered at once, signed, while the flood's connections are held.
        signer = Raw(server)
        signer.host = f"127.0.0.1:{extra.port}"
        started = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", extra.port, timeout=10, source_address=("127.0.0.2", 0))
        try:
            conn.putrequest("GET", "/", skip_host=True, skip_accept_encoding=True)
            for name, value in signer.headers("GET", "/").items():
                conn.putheader(name, value)
            conn.endheaders()
            answer = conn.getresponse()
            assert answer.status == 200 and b"ListAllMyBucketsResult" in answer.read(), answer.status
        finally:
            conn.close()
        assert time.monotonic() - started < 3, f"another client waited {time.monotonic() - started:.1f} s"
        # A slow request head is closed after --request-head-timeout, before the idle timeout.
        slow = socket.create_connection(("127.0.0.1", extra.port), timeout=10, source_address=("127.0.0.2", 0))
        started = time.monotonic()
        slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        slow.setblocking(False)
        closed_at = None
        for byte in b"X-Slow: " + b"s" * 200:
            try:
                slow.sendall(bytes([byte]))
                if slow.recv(1) == b"":
                    closed_at = time.monotonic()
                    break
            except BlockingIOError:
                pass
            except OSError:
                closed_at = time.monotonic()
                break
            time.sleep(0.25)
        slow.close()
        assert closed_at is not None and closed_at - started < idle - 1, \
            f"a slow request head was not closed within {idle - 1} s (the head timeout is {head_timeout} s)"
        # The idle ones are closed by the server within the idle timeout (with some slack for the timer).
        held = [sock for sock in flood if sock not in refused]
        closed = closed_within(held, idle + 4)
        assert len(closed) == len(held), f"{len(held) - len(closed)} idle connections were still open after {idle + 4} s"
    finally:
        for sock in flood:
            sock.close()
        extra_cm.__exit__(None, None, None)
    assert "descriptors" not in extra.log(), extra.log()


# --- shutdown ---

def test_sigterm_with_an_upload_in_flight(server, alice, bucket):
    """SIGTERM while a PUT is half sent: the upload finishes whole (200, every byte) or leaves nothing,
    and the server exits 0 by itself once it is done."""
    with server.extra_server() as extra:
        signer = Raw(server)
        signer.host = f"127.0.0.1:{extra.port}"
        body = os.urandom(8 * MiB)
        headers = signer.headers("PUT", f"/{bucket}/in-flight", headers={"content-length": str(len(body))},
                                 payload_hash=UNSIGNED)
        head = request_head("PUT", f"/{bucket}/in-flight", headers)
        with socket.create_connection(("127.0.0.1", extra.port), timeout=60) as sock:
            sock.sendall(head.encode() + body[: 4 * MiB])
            extra.process.send_signal(signal.SIGTERM)
            try:
                sock.sendall(body[4 * MiB:])
            except (BrokenPipeError, ConnectionResetError):
                pass
            answer = read_until_closed(sock, 60)
        assert extra.process.wait(timeout=60) == 0, extra.log()
        if status_of(answer) == 200:
            assert alice.get_object(Bucket=bucket, Key="in-flight")["Body"].read() == body
        else:
            assert not exists(alice, bucket, "in-flight"), f"a cut upload left an object: {answer[:300]!r}"

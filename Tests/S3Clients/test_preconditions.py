"""Conditional requests as S3 answers them: If-Match, If-None-Match, If-Modified-Since and If-Unmodified-Since
on GET and HEAD (RFC 7232's order: 412 before 304), conditional writes (PutObject, CopyObject's destination,
CompleteMultipartUpload), conditional deletes (DeleteObject's If-Match, DeleteObjects' per-object ETag) and
CopyObject's x-amz-copy-source-if-* on the source. Clients build locks on these (Terraform's state locking,
Delta and Iceberg commits), so a write's condition must hold atomically with the write: N racing
If-None-Match: * PUTs of one key give exactly one success."""

import datetime
import hashlib
import os
import threading

from conftest import MiB, quoted_md5
from test_boto3 import expect_error, now_utc, put

OTHER_ETAG = '"0123456789abcdef0123456789abcdef"'


def body(client, bucket, key):
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()


# --- GET and HEAD ---

def test_get_and_head_follow_rfc7232_order(alice, bucket):
    data = b"read me conditionally"
    etag = put(alice, bucket, "r", data)["ETag"]
    past = now_utc() - datetime.timedelta(days=1)
    future = now_utc() + datetime.timedelta(days=1)
    # If-Match holds: If-Unmodified-Since is not looked at (S3 answers 200 with the data).
    assert alice.get_object(Bucket=bucket, Key="r", IfMatch=etag, IfUnmodifiedSince=past)["Body"].read() == data
    # If-None-Match is present and holds (another ETag): If-Modified-Since is not looked at.
    assert alice.get_object(Bucket=bucket, Key="r", IfNoneMatch=OTHER_ETAG, IfModifiedSince=future)["Body"].read() == data
    # If-None-Match fails: 304 even though If-Modified-Since alone would have served it.
    expect_error(304, "304", alice.get_object, Bucket=bucket, Key="r", IfNoneMatch=etag, IfModifiedSince=past)
    # 412 goes before 304: a failed If-Match wins over a matching If-None-Match.
    expect_error(412, "PreconditionFailed", alice.get_object, Bucket=bucket, Key="r", IfMatch=OTHER_ETAG, IfNoneMatch=etag)
    expect_error(412, "PreconditionFailed", alice.get_object, Bucket=bucket, Key="r", IfUnmodifiedSince=past,
                 IfModifiedSince=future)
    # A list, a * and an unquoted ETag match as well.
    assert body(alice, bucket, "r") == data
    assert alice.get_object(Bucket=bucket, Key="r", IfMatch=f'{OTHER_ETAG}, {etag}')["Body"].read() == data
    assert alice.get_object(Bucket=bucket, Key="r", IfMatch="*")["Body"].read() == data
    assert alice.get_object(Bucket=bucket, Key="r", IfMatch=etag.strip('"'))["Body"].read() == data
    expect_error(304, "304", alice.head_object, Bucket=bucket, Key="r", IfNoneMatch="*")
    # The 304 carries the validators, as S3's does.
    response = expect_error(304, "304", alice.head_object, Bucket=bucket, Key="r", IfModifiedSince=future)
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert headers.get("etag") == etag and headers.get("last-modified"), headers
    expect_error(412, "412", alice.head_object, Bucket=bucket, Key="r", IfUnmodifiedSince=past)
    # No object: 404 whatever the conditions.
    expect_error(404, "NoSuchKey", alice.get_object, Bucket=bucket, Key="absent", IfMatch=etag)


# --- PutObject ---

def test_put_if_none_match_refuses_an_existing_key(alice, bucket):
    first = put(alice, bucket, "lock", b"first", IfNoneMatch="*")
    assert first["ETag"] == quoted_md5(b"first")
    response = expect_error(412, "PreconditionFailed", put, alice, bucket, "lock", b"second", IfNoneMatch="*")
    assert response["Error"].get("Condition") == "If-None-Match", response["Error"]
    assert body(alice, bucket, "lock") == b"first", "a refused conditional PUT must not replace the object"
    # A large body is refused too (early, before it is stored, and again at the commit).
    expect_error(412, "PreconditionFailed", put, alice, bucket, "lock", os.urandom(6 * MiB), IfNoneMatch="*")
    assert body(alice, bucket, "lock") == b"first"
    # Once the key is deleted, the create succeeds again.
    alice.delete_object(Bucket=bucket, Key="lock")
    put(alice, bucket, "lock", b"third", IfNoneMatch="*")
    assert body(alice, bucket, "lock") == b"third"


def test_put_if_none_match_takes_only_a_star(alice, bucket):
    etag = put(alice, bucket, "k", b"v")["ETag"]
    expect_error(501, "NotImplemented", put, alice, bucket, "k", b"w", IfNoneMatch=etag)
    assert body(alice, bucket, "k") == b"v"


def test_put_if_match_is_compare_and_swap(alice, bucket):
    etag = put(alice, bucket, "cas", b"v1")["ETag"]
    response = expect_error(412, "PreconditionFailed", put, alice, bucket, "cas", b"v2", IfMatch=OTHER_ETAG)
    assert response["Error"].get("Condition") == "If-Match", response["Error"]
    assert body(alice, bucket, "cas") == b"v1"
    etag2 = put(alice, bucket, "cas", b"v2", IfMatch=etag)["ETag"]
    assert body(alice, bucket, "cas") == b"v2"
    # The old ETag no longer matches; an unquoted current one does; so does *.
    expect_error(412, "PreconditionFailed", put, alice, bucket, "cas", b"v3", IfMatch=etag)
    put(alice, bucket, "cas", b"v3", IfMatch=etag2.strip('"'))
    put(alice, bucket, "cas", b"v4", IfMatch="*")
    assert body(alice, bucket, "cas") == b"v4"
    # No object at the key: S3 answers NoSuchKey.
    expect_error(404, "NoSuchKey", put, alice, bucket, "never", b"x", IfMatch=etag)
    expect_error(404, "NoSuchKey", put, alice, bucket, "never", b"x", IfMatch="*")
    expect_error(404, "404", alice.head_object, Bucket=bucket, Key="never")


def test_if_match_uses_the_etag_of_every_kind_of_object(server, alice, bucket, scratch):
    # `a67 put` computes no MD5: its objects' ETag is a form of the manifest's ID; a multipart object's is md5-N.
    source = scratch / "cli.txt"
    source.write_bytes(b"from the cli")
    server.a67("put", source, f"{bucket}/cli")
    etag = alice.head_object(Bucket=bucket, Key="cli")["ETag"]
    expect_error(412, "PreconditionFailed", put, alice, bucket, "cli", b"x", IfMatch=OTHER_ETAG)
    put(alice, bucket, "cli", b"replaced through S3", IfMatch=etag)
    assert body(alice, bucket, "cli") == b"replaced through S3"

    upload = alice.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    part = alice.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=1, Body=b"one part")["ETag"]
    done = alice.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload,
                                           MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part}]})
    assert done["ETag"].endswith('-1"')
    expect_error(412, "PreconditionFailed", alice.delete_object, Bucket=bucket, Key="mp", IfMatch=etag)
    assert alice.delete_object(Bucket=bucket, Key="mp", IfMatch=done["ETag"])["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_racing_creates_of_one_key_have_one_winner(server, bucket):
    # Each thread its own client (boto3 clients are thread-safe, but one each makes the race real).
    clients = [server.s3("alice") for _ in range(8)]
    bodies = [bytes([i]) * (MiB + i) for i in range(len(clients))]
    start = threading.Barrier(len(clients))
    outcomes = [None] * len(clients)

    def create(i):
        start.wait()
        try:
            clients[i].put_object(Bucket=bucket, Key="race", Body=bodies[i], IfNoneMatch="*")
            outcomes[i] = 200
        except Exception as e:  # a ClientError: its status
            outcomes[i] = getattr(e, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode", repr(e))

    threads = [threading.Thread(target=create, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for i, outcome in enumerate(outcomes) if outcome == 200]
    assert len(winners) == 1 and outcomes.count(412) == len(clients) - 1, outcomes
    stored = body(clients[0], bucket, "race")
    assert hashlib.sha256(stored).digest() == hashlib.sha256(bodies[winners[0]]).digest(), \
        f"the stored body ({len(stored)} bytes) is not the winner's (thread {winners[0]})"


# --- DeleteObject and DeleteObjects ---

def test_delete_if_match(alice, bucket):
    etag = put(alice, bucket, "d", b"keep me")["ETag"]
    expect_error(412, "PreconditionFailed", alice.delete_object, Bucket=bucket, Key="d", IfMatch=OTHER_ETAG)
    assert body(alice, bucket, "d") == b"keep me", "a DELETE whose If-Match fails must not delete"
    assert alice.delete_object(Bucket=bucket, Key="d", IfMatch=etag)["ResponseMetadata"]["HTTPStatusCode"] == 204
    expect_error(404, "NoSuchKey", alice.get_object, Bucket=bucket, Key="d")
    expect_error(404, "NoSuchKey", alice.delete_object, Bucket=bucket, Key="d", IfMatch=etag)
    # Without a condition a missing key is still no error.
    assert alice.delete_object(Bucket=bucket, Key="d")["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_delete_objects_checks_each_etag(alice, bucket):
    e1 = put(alice, bucket, "o1", b"one")["ETag"]
    put(alice, bucket, "o2", b"two")
    result = alice.delete_objects(Bucket=bucket, Delete={"Objects": [
        {"Key": "o1", "ETag": e1}, {"Key": "o2", "ETag": OTHER_ETAG}, {"Key": "o3", "ETag": OTHER_ETAG}]})
    assert [d["Key"] for d in result.get("Deleted", [])] == ["o1"], result
    errors = {e["Key"]: e["Code"] for e in result.get("Errors", [])}
    assert errors == {"o2": "PreconditionFailed", "o3": "NoSuchKey"}, result
    assert body(alice, bucket, "o2") == b"two"
    expect_error(404, "NoSuchKey", alice.get_object, Bucket=bucket, Key="o1")


# --- CopyObject ---

def test_copy_source_conditions(alice, bucket):
    data = b"copy source"
    etag = put(alice, bucket, "src", data)["ETag"]
    past = now_utc() - datetime.timedelta(days=1)
    future = now_utc() + datetime.timedelta(days=1)
    copy = alice.copy_object
    source = {"Bucket": bucket, "Key": "src"}
    for condition in ({"CopySourceIfMatch": OTHER_ETAG}, {"CopySourceIfNoneMatch": etag},
                      {"CopySourceIfModifiedSince": future}, {"CopySourceIfUnmodifiedSince": past}):
        expect_error(412, "PreconditionFailed", copy, Bucket=bucket, Key="dst", CopySource=source, **condition)
    expect_error(404, "NoSuchKey", alice.get_object, Bucket=bucket, Key="dst")
    # S3's pairs: a matching if-match with a failing if-unmodified-since copies; a failing if-none-match with a
    # holding if-modified-since does not (412 for a copy, never 304); a holding if-none-match makes S3 ignore
    # if-modified-since.
    copy(Bucket=bucket, Key="dst", CopySource=source, CopySourceIfMatch=etag, CopySourceIfUnmodifiedSince=past)
    assert body(alice, bucket, "dst") == data
    expect_error(412, "PreconditionFailed", copy, Bucket=bucket, Key="dst2", CopySource=source,
                 CopySourceIfNoneMatch=etag, CopySourceIfModifiedSince=past)
    copy(Bucket=bucket, Key="dst2", CopySource=source, CopySourceIfNoneMatch=OTHER_ETAG, CopySourceIfModifiedSince=future)
    assert body(alice, bucket, "dst2") == data


def test_copy_destination_conditions(alice, bucket):
    put(alice, bucket, "src", b"new content")
    old = put(alice, bucket, "dst", b"old content")["ETag"]
    source = {"Bucket": bucket, "Key": "src"}
    response = expect_error(412, "PreconditionFailed", alice.copy_object, Bucket=bucket, Key="dst", CopySource=source,
                            IfNoneMatch="*")
    assert response["Error"].get("Condition") == "If-None-Match", response["Error"]
    expect_error(412, "PreconditionFailed", alice.copy_object, Bucket=bucket, Key="dst", CopySource=source,
                 IfMatch=OTHER_ETAG)
    assert body(alice, bucket, "dst") == b"old content"
    expect_error(404, "NoSuchKey", alice.copy_object, Bucket=bucket, Key="fresh", CopySource=source, IfMatch=old)
    alice.copy_object(Bucket=bucket, Key="dst", CopySource=source, IfMatch=old)
    assert body(alice, bucket, "dst") == b"new content"
    alice.copy_object(Bucket=bucket, Key="fresh", CopySource=source, IfNoneMatch="*")
    assert body(alice, bucket, "fresh") == b"new content"


# --- CompleteMultipartUpload ---

def test_complete_multipart_conditions(alice, bucket):
    old = put(alice, bucket, "mp", b"already here")["ETag"]
    upload = alice.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    part = alice.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=1, Body=b"the new object")["ETag"]
    parts = {"Parts": [{"PartNumber": 1, "ETag": part}]}
    complete = alice.complete_multipart_upload
    response = expect_error(412, "PreconditionFailed", complete, Bucket=bucket, Key="mp", UploadId=upload,
                            MultipartUpload=parts, IfNoneMatch="*")
    assert response["Error"].get("Condition") == "If-None-Match", response["Error"]
    expect_error(412, "PreconditionFailed", complete, Bucket=bucket, Key="mp", UploadId=upload, MultipartUpload=parts,
                 IfMatch=OTHER_ETAG)
    assert body(alice, bucket, "mp") == b"already here"
    # The refused completions left the upload as it was: it completes once the condition holds.
    assert [p["PartNumber"] for p in alice.list_parts(Bucket=bucket, Key="mp", UploadId=upload)["Parts"]] == [1]
    complete(Bucket=bucket, Key="mp", UploadId=upload, MultipartUpload=parts, IfMatch=old)
    assert body(alice, bucket, "mp") == b"the new object"

    fresh = alice.create_multipart_upload(Bucket=bucket, Key="fresh")["UploadId"]
    part = alice.upload_part(Bucket=bucket, Key="fresh", UploadId=fresh, PartNumber=1, Body=b"created")["ETag"]
    expect_error(404, "NoSuchKey", complete, Bucket=bucket, Key="fresh", UploadId=fresh,
                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part}]}, IfMatch=old)
    complete(Bucket=bucket, Key="fresh", UploadId=fresh, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part}]},
             IfNoneMatch="*")
    assert body(alice, bucket, "fresh") == b"created"

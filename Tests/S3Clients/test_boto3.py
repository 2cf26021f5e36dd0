"""Every S3 operation a67 serve offers, through boto3, plus ownership, quotas, the shared namespace with
the CLI, rate limiting, metrics and the JSON control API."""

import datetime
import hashlib
import io
import os
import re
import time
import urllib.request

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from conftest import MiB, http_request, quoted_md5, unique_bucket


def expect_error(status, code, fn, *args, **kwargs):
    """Calls fn, which must fail with HTTP `status` and S3 error `code` (for HEAD, boto3 reports the status as
    the code: there is no body)."""
    with pytest.raises(ClientError) as caught:
        fn(*args, **kwargs)
    response = caught.value.response
    got_status = response["ResponseMetadata"]["HTTPStatusCode"]
    got_code = response["Error"].get("Code")
    assert (got_status, got_code) == (status, code), f"expected {status} {code}, got {got_status} {response['Error']}"
    return response


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc)


def put(client, bucket, key, data, **kwargs):
    return client.put_object(Bucket=bucket, Key=key, Body=data, **kwargs)


def keys_of(page):
    return [o["Key"] for o in page.get("Contents", [])]


def prefixes_of(page):
    return [p["Prefix"] for p in page.get("CommonPrefixes", [])]


# --- buckets ---

def test_list_buckets_shows_only_the_callers(alice, bob):
    mine, theirs = unique_bucket("alice-own"), unique_bucket("bob-own")
    alice.create_bucket(Bucket=mine)
    bob.create_bucket(Bucket=theirs)
    alices = [b["Name"] for b in alice.list_buckets()["Buckets"]]
    bobs = [b["Name"] for b in bob.list_buckets()["Buckets"]]
    assert mine in alices and theirs not in alices, alices
    assert theirs in bobs and mine not in bobs, bobs
    assert alices == sorted(alices), "ListBuckets is in name order"
    for b in alice.list_buckets()["Buckets"]:
        assert isinstance(b["CreationDate"], datetime.datetime)


def test_create_head_delete_bucket(alice):
    name = unique_bucket("lifecycle")
    created = alice.create_bucket(Bucket=name)
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert alice.head_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 200
    put(alice, name, "k", b"x")
    expect_error(409, "BucketNotEmpty", alice.delete_bucket, Bucket=name)
    assert alice.head_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 200, "a refused delete keeps it"
    alice.delete_object(Bucket=name, Key="k")
    assert alice.delete_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 204
    expect_error(404, "404", alice.head_bucket, Bucket=name)
    expect_error(404, "NoSuchBucket", alice.delete_bucket, Bucket=name)
    expect_error(404, "NoSuchBucket", alice.list_objects_v2, Bucket=name)
    assert name not in [b["Name"] for b in alice.list_buckets()["Buckets"]]


def test_create_bucket_name_taken(alice, bob):
    name = unique_bucket("taken")
    alice.create_bucket(Bucket=name)
    expect_error(409, "BucketAlreadyOwnedByYou", alice.create_bucket, Bucket=name)
    expect_error(409, "BucketAlreadyExists", bob.create_bucket, Bucket=name)
    assert name not in [b["Name"] for b in bob.list_buckets()["Buckets"]]


# --- objects ---

def test_put_and_get_object(alice, bucket):
    data = os.urandom(1000) + b"end"
    response = put(alice, bucket, "dir/obj.bin", data, ContentType="application/x-a67-test", Metadata={"color": "blue"})
    assert response["ETag"] == quoted_md5(data)
    got = alice.get_object(Bucket=bucket, Key="dir/obj.bin")
    assert got["Body"].read() == data
    assert got["ContentLength"] == len(data)
    assert got["ContentType"] == "application/x-a67-test"
    assert got["Metadata"] == {"color": "blue"}
    assert got["ETag"] == quoted_md5(data)
    # Overwriting replaces the content and the metadata.
    put(alice, bucket, "dir/obj.bin", b"second")
    got = alice.get_object(Bucket=bucket, Key="dir/obj.bin")
    assert got["Body"].read() == b"second"
    assert got["Metadata"] == {}
    # An empty object is an object.
    assert put(alice, bucket, "empty", b"")["ETag"] == quoted_md5(b"")
    empty = alice.get_object(Bucket=bucket, Key="empty")
    assert empty["ContentLength"] == 0 and empty["Body"].read() == b""
    expect_error(404, "NoSuchKey", alice.get_object, Bucket=bucket, Key="missing")
    expect_error(404, "NoSuchBucket", alice.get_object, Bucket=unique_bucket("nobucket"), Key="k")


def test_range_reads(alice, bucket):
    data = bytes(range(100))
    put(alice, bucket, "r", data)
    part = alice.get_object(Bucket=bucket, Key="r", Range="bytes=3-9")
    assert part["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert part["Body"].read() == data[3:10]
    assert part["ContentRange"] == "bytes 3-9/100"
    assert part["ContentLength"] == 7
    suffix = alice.get_object(Bucket=bucket, Key="r", Range="bytes=-5")
    assert suffix["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert suffix["Body"].read() == data[-5:]
    assert suffix["ContentRange"] == "bytes 95-99/100"
    open_ended = alice.get_object(Bucket=bucket, Key="r", Range="bytes=90-")
    assert open_ended["Body"].read() == data[90:]
    clamped = alice.get_object(Bucket=bucket, Key="r", Range="bytes=95-500")
    assert clamped["Body"].read() == data[95:], "a range running past the end stops at the end"
    assert clamped["ContentRange"] == "bytes 95-99/100"
    expect_error(416, "InvalidRange", alice.get_object, Bucket=bucket, Key="r", Range="bytes=100-110")
    expect_error(416, "InvalidRange", alice.get_object, Bucket=bucket, Key="r", Range="bytes=500-")


def test_conditional_get(alice, bucket):
    data = b"conditional body"
    etag = put(alice, bucket, "c", data)["ETag"]
    future = now_utc() + datetime.timedelta(days=1)
    past = now_utc() - datetime.timedelta(days=1)
    expect_error(304, "304", alice.get_object, Bucket=bucket, Key="c", IfNoneMatch=etag)
    assert alice.get_object(Bucket=bucket, Key="c", IfNoneMatch='"0123456789abcdef0123456789abcdef"')["Body"].read() == data
    assert alice.get_object(Bucket=bucket, Key="c", IfMatch=etag)["Body"].read() == data
    expect_error(412, "PreconditionFailed", alice.get_object, Bucket=bucket, Key="c",
                 IfMatch='"0123456789abcdef0123456789abcdef"')
    expect_error(304, "304", alice.get_object, Bucket=bucket, Key="c", IfModifiedSince=future)
    assert alice.get_object(Bucket=bucket, Key="c", IfModifiedSince=past)["Body"].read() == data
    expect_error(412, "PreconditionFailed", alice.get_object, Bucket=bucket, Key="c", IfUnmodifiedSince=past)
    assert alice.get_object(Bucket=bucket, Key="c", IfUnmodifiedSince=future)["Body"].read() == data
    # HEAD honours them too.
    expect_error(304, "304", alice.head_object, Bucket=bucket, Key="c", IfNoneMatch=etag)
    expect_error(412, "412", alice.head_object, Bucket=bucket, Key="c", IfMatch='"00000000000000000000000000000000"')


def test_head_object(alice, bucket):
    data = os.urandom(4321)
    before = now_utc().replace(microsecond=0) - datetime.timedelta(seconds=2)
    put(alice, bucket, "h", data, ContentType="image/png", Metadata={"color": "blue", "shape": "round"})
    head = alice.head_object(Bucket=bucket, Key="h")
    assert head["ContentLength"] == 4321
    assert head["ETag"] == quoted_md5(data)
    assert head["ContentType"] == "image/png"
    assert head["Metadata"] == {"color": "blue", "shape": "round"}
    assert before <= head["LastModified"] <= now_utc() + datetime.timedelta(seconds=2), head["LastModified"]
    listed = alice.list_objects_v2(Bucket=bucket)["Contents"][0]
    assert listed["LastModified"].replace(microsecond=0) == head["LastModified"] and listed["ETag"] == head["ETag"] and listed["Size"] == 4321
    expect_error(404, "404", alice.head_object, Bucket=bucket, Key="missing")


def test_delete_object(alice, bucket):
    put(alice, bucket, "d", b"doomed")
    assert alice.delete_object(Bucket=bucket, Key="d")["ResponseMetadata"]["HTTPStatusCode"] == 204
    expect_error(404, "NoSuchKey", alice.get_object, Bucket=bucket, Key="d")
    assert alice.delete_object(Bucket=bucket, Key="never-there")["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert alice.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_delete_objects_batch(alice, bucket):
    for key in ("b1", "b2", "dir/b3"):
        put(alice, bucket, key, key.encode())
    result = alice.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "b1"}, {"Key": "dir/b3"},
                                                                      {"Key": "not-there"}]})
    assert sorted(d["Key"] for d in result.get("Deleted", [])) == ["b1", "dir/b3", "not-there"]
    assert not result.get("Errors"), result.get("Errors")
    assert keys_of(alice.list_objects_v2(Bucket=bucket)) == ["b2"]
    put(alice, bucket, "q1", b"1")
    quiet = alice.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "q1"}, {"Key": "b2"}], "Quiet": True})
    assert not quiet.get("Deleted") and not quiet.get("Errors"), quiet
    assert alice.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_copy_object(alice, bucket):
    other = unique_bucket("copy-dest")
    alice.create_bucket(Bucket=other)
    data = os.urandom(3000)
    etag = put(alice, bucket, "src", data, ContentType="text/x-src", Metadata={"color": "blue"})["ETag"]
    same = alice.copy_object(Bucket=bucket, Key="same-copy", CopySource={"Bucket": bucket, "Key": "src"})
    assert same["CopyObjectResult"]["ETag"] == etag
    got = alice.get_object(Bucket=bucket, Key="same-copy")
    assert got["Body"].read() == data
    assert got["Metadata"] == {"color": "blue"}, "COPY is the default directive: metadata goes along"
    assert got["ContentType"] == "text/x-src"
    assert got["ETag"] == etag
    across = alice.copy_object(Bucket=other, Key="a/b", CopySource={"Bucket": bucket, "Key": "src"})
    assert across["CopyObjectResult"]["ETag"] == etag
    assert alice.get_object(Bucket=other, Key="a/b")["Body"].read() == data
    replaced = alice.copy_object(Bucket=other, Key="replaced", CopySource=f"{bucket}/src", MetadataDirective="REPLACE",
                                 Metadata={"size": "large"}, ContentType="text/x-new")
    assert replaced["CopyObjectResult"]["ETag"] == etag
    head = alice.head_object(Bucket=other, Key="replaced")
    assert head["Metadata"] == {"size": "large"}
    assert head["ContentType"] == "text/x-new"
    # The source is untouched, and a missing source is NoSuchKey.
    assert alice.head_object(Bucket=bucket, Key="src")["Metadata"] == {"color": "blue"}
    expect_error(404, "NoSuchKey", alice.copy_object, Bucket=other, Key="x", CopySource={"Bucket": bucket, "Key": "nope"})


# --- listing ---

def test_list_objects_v2_prefix_and_delimiter(alice, bucket):
    for key in ("a/1", "a/2", "a/b/3", "b/4", "c", "Zeta", "alpha-", "alpha/beta", "alpha0", "\u00e9t\u00e9"):
        put(alice, bucket, key, b"x")
    top = alice.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert keys_of(top) == ["Zeta", "alpha-", "alpha0", "c", "\u00e9t\u00e9"]
    assert prefixes_of(top) == ["a/", "alpha/", "b/"]
    assert top["KeyCount"] == 8
    under_a = alice.list_objects_v2(Bucket=bucket, Prefix="a/", Delimiter="/")
    assert keys_of(under_a) == ["a/1", "a/2"]
    assert prefixes_of(under_a) == ["a/b/"]
    assert under_a["KeyCount"] == 3 and under_a["Prefix"] == "a/"
    everything = alice.list_objects_v2(Bucket=bucket)
    assert keys_of(everything) == ["Zeta", "a/1", "a/2", "a/b/3", "alpha-", "alpha/beta", "alpha0", "b/4", "c",
                                   "\u00e9t\u00e9"], "keys come in UTF-8 byte order ('-' < '/' < '0')"
    assert everything["KeyCount"] == 10 and everything["IsTruncated"] is False
    assert keys_of(alice.list_objects_v2(Bucket=bucket, Prefix="alpha")) == ["alpha-", "alpha/beta", "alpha0"]


def test_object_and_folder_of_one_name(alice, bucket):
    """S3 lets "photos" and "photos/1.jpg" coexist; a67 keeps its namespace a tree (a67 ls, the mount), so the
    second of the two is refused, cleanly: 409 with an S3 error, the first left as it was, nothing half made."""
    put(alice, bucket, "photos", b"an object")
    expect_error(409, "OperationAborted", put, alice, bucket, "photos/1.jpg", b"x")
    put(alice, bucket, "docs/a.txt", b"in a folder")
    expect_error(409, "OperationAborted", put, alice, bucket, "docs", b"x")
    assert keys_of(alice.list_objects_v2(Bucket=bucket)) == ["docs/a.txt", "photos"]
    assert alice.get_object(Bucket=bucket, Key="photos")["Body"].read() == b"an object"
    assert alice.list_objects_v2(Bucket=bucket, Prefix="nothing")["KeyCount"] == 0


def test_listing_keys_that_need_escaping(alice, bucket):
    keys = sorted(["odd key+%.txt", "amp&ersand", "<angle>", 'quote"s', "semi;colon", "tab\there", "\u65e5\u672c"])
    for key in keys:
        put(alice, bucket, key, key.encode())
    assert keys_of(alice.list_objects_v2(Bucket=bucket)) == keys, "EncodingType=url (boto3's default) round-trips"
    assert keys_of(alice.list_objects(Bucket=bucket)) == keys
    assert [v["Key"] for v in alice.list_object_versions(Bucket=bucket)["Versions"]] == keys
    for key in keys:
        assert alice.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode()
    deleted = alice.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys]})
    assert sorted(d["Key"] for d in deleted["Deleted"]) == keys
    assert alice.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_list_objects_v2_paging(alice, bucket):
    keys = [f"k/{i:03d}" for i in range(25)]
    for key in keys:
        put(alice, bucket, key, key.encode())
    collected, pages, token = [], 0, None
    while True:
        kwargs = {"ContinuationToken": token} if token else {}
        page = alice.list_objects_v2(Bucket=bucket, MaxKeys=7, **kwargs)
        pages += 1
        assert page["KeyCount"] == len(keys_of(page)) <= 7
        collected += keys_of(page)
        if not page["IsTruncated"]:
            assert "NextContinuationToken" not in page
            break
        token = page["NextContinuationToken"]
        assert pages < 10, "paging does not end"
    assert collected == keys, "every key exactly once, in order"
    assert pages == 4
    after = alice.list_objects_v2(Bucket=bucket, StartAfter="k/010")
    assert keys_of(after) == keys[11:]
    assert after["KeyCount"] == 14
    paged_after = alice.list_objects_v2(Bucket=bucket, StartAfter="k/010", MaxKeys=5)
    assert keys_of(paged_after) == keys[11:16] and paged_after["IsTruncated"] is True
    # boto3's paginator agrees.
    paginated = [k for p in alice.get_paginator("list_objects_v2").paginate(Bucket=bucket, PaginationConfig={"PageSize": 4})
                 for k in keys_of(p)]
    assert paginated == keys


def test_list_objects_v1(alice, bucket):
    keys = ["d/1", "d/2", "e/3", "f", "g", "h/4", "i"]
    for key in keys:
        put(alice, bucket, key, b"v1")
    # Without a delimiter, the next Marker is the last key of the page.
    collected, marker = [], ""
    for _ in range(10):
        page = alice.list_objects(Bucket=bucket, MaxKeys=3, Marker=marker)
        collected += keys_of(page)
        if not page["IsTruncated"]:
            break
        marker = page.get("NextMarker") or keys_of(page)[-1]
    assert collected == keys
    # With one, NextMarker is given and every key or common prefix shows exactly once.
    entries, marker = [], ""
    for _ in range(10):
        page = alice.list_objects(Bucket=bucket, MaxKeys=2, Delimiter="/", Marker=marker)
        page_entries = keys_of(page) + prefixes_of(page)
        assert 0 < len(page_entries) <= 2, page
        entries += page_entries
        if not page["IsTruncated"]:
            break
        assert page.get("NextMarker"), "a truncated v1 listing with a delimiter gives NextMarker"
        marker = page["NextMarker"]
    assert sorted(entries) == ["d/", "e/", "f", "g", "h/", "i"] and len(entries) == 6, entries
    whole = alice.list_objects(Bucket=bucket, Delimiter="/")
    assert whole["IsTruncated"] is False
    assert keys_of(whole) == ["f", "g", "i"] and prefixes_of(whole) == ["d/", "e/", "h/"]


def test_list_object_versions_and_emptying_a_bucket(alice, bucket):
    keys = [f"v/{i:02d}" for i in range(12)]
    for key in keys:
        put(alice, bucket, key, key.encode())
    versions = alice.list_object_versions(Bucket=bucket)
    assert [v["Key"] for v in versions["Versions"]] == keys
    for v in versions["Versions"]:
        assert v["VersionId"] == "null" and v["IsLatest"] is True, v
        assert v["Size"] == len(v["Key"]) and v["ETag"] == quoted_md5(v["Key"].encode())
    assert not versions.get("DeleteMarkers")
    # The idiom every tool uses to empty a bucket: page through versions, delete (Key, VersionId) pairs.
    for page in alice.get_paginator("list_object_versions").paginate(Bucket=bucket, PaginationConfig={"PageSize": 5}):
        objects = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in page.get("Versions", [])]
        objects += [{"Key": m["Key"], "VersionId": m["VersionId"]} for m in page.get("DeleteMarkers", [])]
        if objects:
            result = alice.delete_objects(Bucket=bucket, Delete={"Objects": objects})
            assert not result.get("Errors"), result["Errors"]
    assert alice.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    assert alice.delete_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 204


# --- multipart ---

def test_multipart_upload(alice, bucket):
    parts_data = [os.urandom(5 * MiB), os.urandom(5 * MiB), os.urandom(1 * MiB)]
    upload = alice.create_multipart_upload(Bucket=bucket, Key="big/mp.bin", ContentType="application/x-mp",
                                           Metadata={"color": "blue"})
    upload_id = upload["UploadId"]
    assert upload["Key"] == "big/mp.bin" and upload["Bucket"] == bucket and upload_id
    etags = []
    for number, data in enumerate(parts_data, start=1):
        etag = alice.upload_part(Bucket=bucket, Key="big/mp.bin", UploadId=upload_id, PartNumber=number, Body=data)["ETag"]
        assert etag == quoted_md5(data)
        etags.append(etag)
    listed = alice.list_parts(Bucket=bucket, Key="big/mp.bin", UploadId=upload_id)
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed["Parts"]] == \
        [(i + 1, etags[i], len(parts_data[i])) for i in range(3)]
    uploads = alice.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [("big/mp.bin", upload_id)]
    expect_error(404, "NoSuchKey", alice.get_object, Bucket=bucket, Key="big/mp.bin")  # not visible before completion
    done = alice.complete_multipart_upload(Bucket=bucket, Key="big/mp.bin", UploadId=upload_id, MultipartUpload={
        "Parts": [{"PartNumber": i + 1, "ETag": etags[i]} for i in range(3)]})
    expected = hashlib.md5(b"".join(hashlib.md5(d).digest() for d in parts_data)).hexdigest() + "-3"
    assert re.fullmatch(r'"[0-9a-f]{32}-3"', done["ETag"]), done["ETag"]
    assert done["ETag"] == f'"{expected}"'
    got = alice.get_object(Bucket=bucket, Key="big/mp.bin")
    assert got["ContentLength"] == 11 * MiB
    assert got["ETag"] == done["ETag"]
    assert got["ContentType"] == "application/x-mp" and got["Metadata"] == {"color": "blue"}
    assert hashlib.sha256(got["Body"].read()).digest() == hashlib.sha256(b"".join(parts_data)).digest()
    assert not alice.list_multipart_uploads(Bucket=bucket).get("Uploads"), "a completed upload is no longer listed"
    # A range across the part boundary.
    boundary = alice.get_object(Bucket=bucket, Key="big/mp.bin", Range=f"bytes={5 * MiB - 10}-{5 * MiB + 9}")
    assert boundary["Body"].read() == parts_data[0][-10:] + parts_data[1][:10]


def test_multipart_abort(alice, bucket):
    upload_id = alice.create_multipart_upload(Bucket=bucket, Key="aborted")["UploadId"]
    alice.upload_part(Bucket=bucket, Key="aborted", UploadId=upload_id, PartNumber=1, Body=os.urandom(1000))
    assert alice.abort_multipart_upload(Bucket=bucket, Key="aborted", UploadId=upload_id)[
        "ResponseMetadata"]["HTTPStatusCode"] == 204
    expect_error(404, "NoSuchUpload", alice.list_parts, Bucket=bucket, Key="aborted", UploadId=upload_id)
    expect_error(404, "NoSuchUpload", alice.upload_part, Bucket=bucket, Key="aborted", UploadId=upload_id,
                 PartNumber=2, Body=b"late")
    expect_error(404, "NoSuchUpload", alice.complete_multipart_upload, Bucket=bucket, Key="aborted", UploadId=upload_id,
                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"00000000000000000000000000000000"'}]})
    expect_error(404, "404", alice.head_object, Bucket=bucket, Key="aborted")
    assert not alice.list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_multipart_errors(alice, bucket):
    key = "mp-errors"
    upload_id = alice.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    for number in (0, 10001):
        expect_error(400, "InvalidArgument", alice.upload_part, Bucket=bucket, Key=key, UploadId=upload_id,
                     PartNumber=number, Body=b"x")
    first, second = os.urandom(5 * MiB), b"tail"
    e1 = alice.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=first)["ETag"]
    e2 = alice.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=2, Body=second)["ETag"]
    complete = alice.complete_multipart_upload
    expect_error(400, "InvalidPartOrder", complete, Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={
        "Parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]})
    expect_error(400, "InvalidPart", complete, Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 3, "ETag": e2}]})
    expect_error(400, "InvalidPart", complete, Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": '"0123456789abcdef0123456789abcdef"'}]})
    expect_error(404, "NoSuchUpload", alice.upload_part, Bucket=bucket, Key=key, UploadId="no-such-upload",
                 PartNumber=1, Body=b"x")
    # The failed completions left the upload as it was.
    done = complete(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    assert done["ETag"].endswith('-2"')
    assert alice.get_object(Bucket=bucket, Key=key)["Body"].read() == first + second


def test_managed_transfer_round_trip(alice, bucket, scratch):
    source, back = scratch / "twenty.bin", scratch / "back.bin"
    data = os.urandom(20 * MiB)
    source.write_bytes(data)
    config = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB, max_concurrency=4)
    alice.upload_file(str(source), bucket, "transfer/twenty.bin", Config=config)
    head = alice.head_object(Bucket=bucket, Key="transfer/twenty.bin")
    assert head["ContentLength"] == 20 * MiB
    assert re.fullmatch(r'"[0-9a-f]{32}-3"', head["ETag"]), f"upload_file made 3 parts: {head['ETag']}"
    alice.download_file(bucket, "transfer/twenty.bin", str(back), Config=config)
    assert back.read_bytes() == data


def test_presigned_urls(server, alice, bucket):
    data = os.urandom(2048)
    put(alice, bucket, "shared.bin", data)
    url = alice.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "shared.bin"}, ExpiresIn=300)
    assert "X-Amz-Signature=" in url and url.startswith(server.endpoint)
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        assert response.read() == data
    upload = os.urandom(3000)
    put_url = alice.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "uploaded.bin"}, ExpiresIn=300)
    result = http_request("PUT", put_url, body=upload, headers={"Content-Type": "application/octet-stream"})
    assert result.status == 200, result
    assert alice.get_object(Bucket=bucket, Key="uploaded.bin")["Body"].read() == upload
    # The signature covers the key: the same query on another key is refused.
    other = put_url.replace("/uploaded.bin?", "/other.bin?")
    refused = http_request("PUT", other, body=b"x", headers={"Content-Type": "application/octet-stream"})
    assert refused.status == 403 and refused.error()[0] == "SignatureDoesNotMatch", refused


# --- ownership ---

def test_other_users_bucket_is_forbidden(server, alice, bob):
    name = unique_bucket("private")
    alice.create_bucket(Bucket=name)
    put(alice, name, "secret.txt", b"alice's")
    checks = [
        (bob.get_object, {"Bucket": name, "Key": "secret.txt"}, "AccessDenied"),
        (bob.head_bucket, {"Bucket": name}, "403"),
        (bob.head_object, {"Bucket": name, "Key": "secret.txt"}, "403"),
        (bob.list_objects_v2, {"Bucket": name}, "AccessDenied"),
        (bob.list_objects, {"Bucket": name}, "AccessDenied"),
        (bob.put_object, {"Bucket": name, "Key": "bob.txt", "Body": b"bob's"}, "AccessDenied"),
        (bob.delete_object, {"Bucket": name, "Key": "secret.txt"}, "AccessDenied"),
        (bob.delete_objects, {"Bucket": name, "Delete": {"Objects": [{"Key": "secret.txt"}]}}, "AccessDenied"),
        (bob.delete_bucket, {"Bucket": name}, "AccessDenied"),
        (bob.create_multipart_upload, {"Bucket": name, "Key": "mp"}, "AccessDenied"),
        (bob.list_multipart_uploads, {"Bucket": name}, "AccessDenied"),
        (bob.list_object_versions, {"Bucket": name}, "AccessDenied"),
    ]
    for fn, kwargs, code in checks:
        response = expect_error(403, code, fn, **kwargs)
        assert "alice" not in str(response["Error"]).lower(), f"{fn.__name__} names the owner: {response['Error']}"
    # Bob cannot copy alice's object into his own bucket either.
    his = unique_bucket("bobs")
    bob.create_bucket(Bucket=his)
    expect_error(403, "AccessDenied", bob.copy_object, Bucket=his, Key="stolen", CopySource={"Bucket": name, "Key": "secret.txt"})
    # Nor presign his way in.
    url = bob.generate_presigned_url("get_object", Params={"Bucket": name, "Key": "secret.txt"}, ExpiresIn=60)
    presigned = http_request("GET", url)
    assert presigned.status == 403 and presigned.error()[0] == "AccessDenied"
    assert b"alice" not in presigned.body.lower() and "alice" not in str(presigned.headers).lower()
    # Raw bodies name no owner.
    raw = server.signed("GET", f"/{name}/secret.txt", user="bob")
    assert raw.status == 403 and raw.error()[0] == "AccessDenied", raw
    assert b"alice" not in raw.body.lower()
    # Nothing changed.
    assert keys_of(alice.list_objects_v2(Bucket=name)) == ["secret.txt"]
    assert alice.get_object(Bucket=name, Key="secret.txt")["Body"].read() == b"alice's"
    assert name not in [b["Name"] for b in bob.list_buckets()["Buckets"]]


# --- quota ---

def usage(server, user="alice"):
    result = server.signed("GET", "/_a67/api/v1/usage", user=user)
    assert result.status == 200, result
    return result.json()


def test_quota(server, alice, bucket):
    # 30 MiB more than alice holds now (earlier tests left objects): a bare number is bytes.
    used = usage(server)["bytes"]
    server.a67("user", "quota", "alice", str(used + 30 * MiB))
    try:
        assert usage(server)["quota"] == used + 30 * MiB
        big = io.BytesIO(os.urandom(40 * MiB))
        expect_error(403, "QuotaExceeded", alice.put_object, Bucket=bucket, Key="too-big", Body=big)
        expect_error(404, "404", alice.head_object, Bucket=bucket, Key="too-big")
        assert put(alice, bucket, "fits", os.urandom(MiB))["ResponseMetadata"]["HTTPStatusCode"] == 200
        # A multipart upload cannot get around it.
        upload_id = alice.create_multipart_upload(Bucket=bucket, Key="mp-too-big")["UploadId"]
        try:
            with pytest.raises(ClientError) as caught:
                for number in range(1, 9):
                    alice.upload_part(Bucket=bucket, Key="mp-too-big", UploadId=upload_id, PartNumber=number,
                                      Body=os.urandom(5 * MiB))
                alice.complete_multipart_upload(Bucket=bucket, Key="mp-too-big", UploadId=upload_id, MultipartUpload={
                    "Parts": [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]}
                              for p in alice.list_parts(Bucket=bucket, Key="mp-too-big", UploadId=upload_id)["Parts"]]})
            assert caught.value.response["Error"]["Code"] == "QuotaExceeded", caught.value.response
            expect_error(404, "404", alice.head_object, Bucket=bucket, Key="mp-too-big")
        finally:
            try:
                alice.abort_multipart_upload(Bucket=bucket, Key="mp-too-big", UploadId=upload_id)
            except ClientError:
                pass
    finally:
        server.a67("user", "quota", "alice", "none")
    assert usage(server)["quota"] is None
    assert put(alice, bucket, "after-reset", os.urandom(40 * MiB))["ResponseMetadata"]["HTTPStatusCode"] == 200
    alice.delete_object(Bucket=bucket, Key="after-reset")


def test_quota_holds_under_concurrent_uploads(server, alice, bucket):
    """Eight 10 MiB PUTs at once with 20 MiB of quota left: exactly two succeed, the others get QuotaExceeded,
    and the stored bytes stay within the quota (each upload reserves its room in the catalog, checked against
    every other upload in flight, before it stores a byte)."""
    from concurrent.futures import ThreadPoolExecutor
    used = usage(server)["bytes"]
    server.a67("user", "quota", "alice", str(used + 20 * MiB))
    bodies = [os.urandom(10 * MiB) for _ in range(8)]

    def attempt(i):
        try:
            put(alice, bucket, f"race-{i}", bodies[i])
            return "ok"
        except ClientError as e:
            return e.response["Error"]["Code"]

    try:
        with ThreadPoolExecutor(8) as pool:
            outcomes = list(pool.map(attempt, range(8)))
        assert sorted(set(outcomes)) == ["QuotaExceeded", "ok"] and outcomes.count("ok") == 2, outcomes
        assert usage(server)["bytes"] <= used + 20 * MiB
        for i, outcome in enumerate(outcomes):
            if outcome == "ok":
                assert alice.get_object(Bucket=bucket, Key=f"race-{i}")["Body"].read() == bodies[i]
            else:
                expect_error(404, "404", alice.head_object, Bucket=bucket, Key=f"race-{i}")
    finally:
        server.a67("user", "quota", "alice", "none")
        for i in range(8):
            alice.delete_object(Bucket=bucket, Key=f"race-{i}")


# --- one namespace with the CLI ---

def test_objects_are_shared_with_the_cli(server, alice, bucket, scratch):
    data = os.urandom(6 * MiB + 17)
    put(alice, bucket, "from-s3/data.bin", data)
    listed = server.a67_json("ls", bucket, "--recursive")
    assert [(e["key"], e["size"]) for e in listed] == [("from-s3/data.bin", len(data))], listed
    out = scratch / "out.bin"
    server.a67("get", f"{bucket}/from-s3/data.bin", out)
    assert out.read_bytes() == data
    small = b"written by the cli\n" * 100
    source = scratch / "in.txt"
    source.write_bytes(small)
    server.a67("put", source, f"{bucket}/from-cli/in.txt")
    got = alice.get_object(Bucket=bucket, Key="from-cli/in.txt")
    assert got["Body"].read() == small
    # Clients take a plain 32-hex ETag for the MD5 of the bytes (rclone and s3cmd check it); a "-N" one for multipart.
    assert got["ETag"] == quoted_md5(small) or re.fullmatch(r'"[0-9a-f]{32}-[0-9]+"', got["ETag"]), got["ETag"]
    assert keys_of(alice.list_objects_v2(Bucket=bucket)) == ["from-cli/in.txt", "from-s3/data.bin"]
    server.a67("rm", f"{bucket}/from-cli/in.txt")
    expect_error(404, "NoSuchKey", alice.get_object, Bucket=bucket, Key="from-cli/in.txt")


# --- rate limit ---

def test_rate_limit(server, alice, bucket):
    with server.extra_server("--rate-limit", "5", "--burst", "5") as limited:
        client = server.s3("alice", endpoint=limited.endpoint)
        outcomes = []
        started = time.monotonic()
        for i in range(40):
            try:
                if i % 2:
                    client.head_bucket(Bucket=bucket)
                else:
                    client.list_objects_v2(Bucket=bucket, MaxKeys=1)
                outcomes.append("ok")
            except ClientError as e:
                status = e.response["ResponseMetadata"]["HTTPStatusCode"]
                code = e.response["Error"]["Code"]
                outcomes.append(f"{status} {code}")
        elapsed = time.monotonic() - started
        allowed = {"ok", "503 SlowDown", "503 503"}
        assert set(outcomes) <= allowed, outcomes
        assert "ok" in outcomes, outcomes
        assert "503 SlowDown" in outcomes, outcomes
        # A token bucket of 5 refilled at 5 a second lets at most 5 + 5 per second elapsed through.
        assert outcomes.count("ok") <= 5 + 5 * elapsed + 1, f"{outcomes} in {elapsed:.2f} s"
        # The main server has no limit.
        for _ in range(20):
            alice.head_bucket(Bucket=bucket)


# --- metrics ---

def s3_request_total(text):
    total = 0.0
    for line in text.splitlines():
        if line.startswith("a67_s3_requests_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics(server, alice, bucket):
    put(alice, bucket, "m", b"metrics")
    first = http_request("GET", server.endpoint + "/_a67/metrics")
    assert first.status == 200, first
    assert first.headers.get("content-type", "").startswith("text/plain"), first.headers
    text = first.body.decode()
    assert "# TYPE a67_s3_requests_total counter" in text
    assert re.search(r'^a67_s3_requests_total\{[^}]*operation="[^"]+"[^}]*\} \d', text, re.M), text[:2000]
    before = s3_request_total(text)
    for _ in range(3):
        alice.list_buckets()
    after = s3_request_total(http_request("GET", server.endpoint + "/_a67/metrics").body.decode())
    assert after >= before + 3, (before, after)


def test_server_paths_leave_every_bucket_name_to_s3(server, alice):
    """`metrics` and `api` are bucket names like any other: S3 answers for them (the server's own pages
    are under /_a67/, which no bucket can be named)."""
    for name in ("metrics", "api"):
        alice.create_bucket(Bucket=name)
        try:
            put(alice, name, "v1/health", b"an object, not the health page")
            assert alice.get_object(Bucket=name, Key="v1/health")["Body"].read() == b"an object, not the health page"
            assert [o["Key"] for o in alice.list_objects_v2(Bucket=name)["Contents"]] == ["v1/health"]
            unsigned = http_request("PUT", server.endpoint + f"/{name}", body=b"")
            assert unsigned.status == 403 and unsigned.error()[0] == "AccessDenied", unsigned
            unsigned = http_request("GET", server.endpoint + f"/{name}")
            assert unsigned.status == 403 and unsigned.error()[0] == "AccessDenied", unsigned
        finally:
            alice.delete_object(Bucket=name, Key="v1/health")
            alice.delete_bucket(Bucket=name)
    page = http_request("GET", server.endpoint + "/_a67/metrics")
    assert page.status == 200 and b"a67_s3_requests_total" in page.body, page
    assert http_request("PUT", server.endpoint + "/_a67/metrics", body=b"").status == 405
    assert http_request("GET", server.endpoint + "/_a67/nothing").status == 404


# --- the control API ---

def test_control_api(server, alice, bob):
    health = http_request("GET", server.endpoint + "/_a67/api/v1/health")
    assert health.status == 200
    assert health.headers.get("content-type", "").startswith("application/json"), health.headers
    assert health.json()["status"] == "ok"
    for path in ("/_a67/api/v1/buckets", "/_a67/api/v1/usage", "/_a67/api/v1/users", "/_a67/api/v1/providers"):
        unsigned = http_request("GET", server.endpoint + path)
        assert unsigned.status == 403, f"{path} without a signature: {unsigned}"
    name = unique_bucket("control")
    alice.create_bucket(Bucket=name)
    put(alice, name, "one", b"1" * 100)
    put(alice, name, "two", b"2" * 250)
    theirs = unique_bucket("control-bob")
    bob.create_bucket(Bucket=theirs)
    result = server.signed("GET", "/_a67/api/v1/buckets", user="alice")
    assert result.status == 200, result
    buckets = result.json()["buckets"]
    names = [b["name"] for b in buckets]
    assert name in names and theirs not in names, names
    assert set(names) == {b["Name"] for b in alice.list_buckets()["Buckets"]}
    mine = next(b for b in buckets if b["name"] == name)
    assert (mine["objects"], mine["bytes"]) == (2, 350), mine
    use = usage(server)
    assert use["user"] == "alice"
    assert isinstance(use["bytes"], int) and use["bytes"] >= 350
    assert isinstance(use["objects"], int) and use["objects"] >= 2
    assert use["quota"] is None or isinstance(use["quota"], int)
    assert usage(server, "bob")["user"] == "bob"
    # A wrong signature on the control API is refused too.
    tampered = http_request("GET", server.endpoint + "/_a67/api/v1/buckets", headers={
        "Authorization": "AWS4-HMAC-SHA256 Credential=" + server.credentials("alice")[0]
        + time.strftime("/%Y%m%d", time.gmtime()) + "/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature="
        + "0" * 64,
        "X-Amz-Date": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
        "X-Amz-Content-SHA256": hashlib.sha256(b"").hexdigest()})
    assert tampered.status == 403, tampered


def test_providers_added_while_serving_are_used(server, alice):
    """A provider added with the CLI while the server runs is taken up by new uploads within seconds."""
    server.a67("provider", "add", "p3", "--dir", server.tmp / "p3")
    deadline = time.monotonic() + 30
    while "the providers changed" not in server.servers[0].log():
        assert time.monotonic() < deadline, "the server did not pick up the new provider within 30 s"
        time.sleep(0.2)
    name = unique_bucket("three")
    server.a67("bucket", "create", name, "--replicas", "3", "--owner", "alice")
    put(alice, name, "k", os.urandom(MiB))
    chunks = {p["name"]: p["chunks"] for p in server.a67_json("provider", "ls")}
    assert chunks.get("p3", 0) >= 2, f"the new provider holds no replica of the new object: {chunks}"


def test_subresource_requests_never_touch_objects_or_buckets(alice, bucket):
    """PUT ?acl must not replace an object, DELETE ?tagging must not delete it, DELETE ?cors must not remove
    an empty bucket: subresources a67 does not keep are refused (501) or already absent (204)."""
    put(alice, bucket, "keep", b"precious")
    expect_error(501, "NotImplemented", alice.put_object_acl, Bucket=bucket, Key="keep", ACL="private")
    expect_error(501, "NotImplemented", alice.put_object_tagging, Bucket=bucket, Key="keep",
                 Tagging={"TagSet": [{"Key": "a", "Value": "b"}]})
    alice.delete_object_tagging(Bucket=bucket, Key="keep")
    assert alice.get_object(Bucket=bucket, Key="keep")["Body"].read() == b"precious"
    empty = unique_bucket("subres")
    alice.create_bucket(Bucket=empty)
    alice.delete_bucket_cors(Bucket=empty)
    alice.delete_bucket_tagging(Bucket=empty)
    expect_error(501, "NotImplemented", alice.put_bucket_versioning, Bucket=empty,
                 VersioningConfiguration={"Status": "Enabled"})
    alice.head_bucket(Bucket=empty)
    alice.delete_bucket(Bucket=empty)


# --- encryption and metadata as S3 answers them ---

def test_every_object_answers_sse_s3(alice, bucket):
    """Every object is encrypted at rest, so SSE-S3 is accepted and every object operation says AES256, as S3 does
    for a bucket with default encryption."""
    assert put(alice, bucket, "e", b"sealed", ServerSideEncryption="AES256")["ServerSideEncryption"] == "AES256"
    assert put(alice, bucket, "plain", b"sealed too")["ServerSideEncryption"] == "AES256"
    assert alice.get_object(Bucket=bucket, Key="e")["ServerSideEncryption"] == "AES256"
    assert alice.head_object(Bucket=bucket, Key="plain")["ServerSideEncryption"] == "AES256"
    copied = alice.copy_object(Bucket=bucket, Key="c", CopySource={"Bucket": bucket, "Key": "e"}, ServerSideEncryption="AES256")
    assert copied["ServerSideEncryption"] == "AES256"
    upload = alice.create_multipart_upload(Bucket=bucket, Key="mp", ServerSideEncryption="AES256")
    assert upload["ServerSideEncryption"] == "AES256"
    part = alice.upload_part(Bucket=bucket, Key="mp", UploadId=upload["UploadId"], PartNumber=1, Body=b"one part")
    assert part["ServerSideEncryption"] == "AES256"
    done = alice.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload["UploadId"],
                                           MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert done["ServerSideEncryption"] == "AES256"
    rule = alice.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"


def test_non_ascii_metadata_round_trips_as_s3_returns_it(alice, bucket):
    """S3 decodes RFC 2047 encoded words before it stores a metadata value and returns a value that is not US-ASCII
    RFC 2047-encoded (=?UTF-8?B?...?=); US-ASCII values come back as they are. boto3 refuses non-ASCII metadata
    unless its check is taken out; it then sends UTF-8, and returns the encoded form for the caller to decode."""
    from email.header import decode_header, make_header
    from botocore.handlers import validate_ascii_metadata
    alice.meta.events.unregister("before-parameter-build.s3.PutObject", validate_ascii_metadata)
    put(alice, bucket, "m", b"x", Metadata={"name": "café", "plain": "ascii only"})
    got = alice.head_object(Bucket=bucket, Key="m")["Metadata"]
    assert got["plain"] == "ascii only"
    assert got["name"] == "=?UTF-8?B?Y2Fmw6k=?=", got
    assert str(make_header(decode_header(got["name"]))) == "café"
    # A client that encodes the value itself: stored decoded, so it comes back the same way.
    put(alice, bucket, "q", b"x", Metadata={"name": "=?UTF-8?Q?caf=C3=A9?="})
    assert alice.get_object(Bucket=bucket, Key="q")["Metadata"]["name"] == "=?UTF-8?B?Y2Fmw6k=?="

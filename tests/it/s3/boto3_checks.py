"""Harbour's S3 API through boto3, the AWS SDK for Python: one check per
command-line argument, run by tests/it/s3/boto3.rs against a test cluster.
The endpoint and keys come from the environment (S3_URL, S3_KEY_ID,
S3_SECRET); every check raises on the first thing that is not as S3 says."""

import datetime
import hashlib
import base64
import os
import sys
import threading
import time
import urllib.request
from unittest import mock

import boto3
import botocore
from botocore.config import Config
from botocore.exceptions import ClientError

URL = os.environ["S3_URL"]


def client(key_id=None, secret=None, **config):
    return boto3.client(
        "s3",
        endpoint_url=URL,
        aws_access_key_id=key_id or os.environ["S3_KEY_ID"],
        aws_secret_access_key=secret or os.environ["S3_SECRET"],
        region_name="us-east-1",
        verify=os.environ.get("S3_CA_FILE"),
        config=Config(
            signature_version="s3v4",
            retries={"max_attempts": 1},
            s3={"addressing_style": "path"},
            **config,
        ),
    )


S3 = None


def error_of(call, *args, **kwargs):
    """The S3 error code and HTTP status a call fails with."""
    try:
        call(*args, **kwargs)
    except ClientError as err:
        return err.response["Error"]["Code"], err.response["ResponseMetadata"]["HTTPStatusCode"]
    raise AssertionError(f"{call.__name__} succeeded, an error was expected")


def expect(code, status, call, *args, **kwargs):
    got = error_of(call, *args, **kwargs)
    assert got == (code, status), f"expected {code} {status}, got {got}"


def data(size, seed=1):
    """Bytes no two offsets of which repeat in a short period."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def md5_etag(body):
    return '"' + hashlib.md5(body).hexdigest() + '"'


def fresh_bucket(name):
    S3.create_bucket(Bucket=name)
    return name


def check_buckets():
    assert S3.list_buckets()["Buckets"] == []
    fresh_bucket("alpha")
    fresh_bucket("beta.example-2")
    names = [bucket["Name"] for bucket in S3.list_buckets()["Buckets"]]
    assert names == ["alpha", "beta.example-2"], names
    S3.head_bucket(Bucket="alpha")
    assert S3.get_bucket_location(Bucket="alpha")["LocationConstraint"] is None
    expect("BucketAlreadyOwnedByYou", 409, S3.create_bucket, Bucket="alpha")
    for bad in ["Upper", "ab", "a_b", "-ab", "192.168.1.1", "a" * 64]:
        expect("InvalidBucketName", 400, S3.create_bucket, Bucket=bad)
    S3.put_object(Bucket="alpha", Key="x", Body=b"1")
    expect("BucketNotEmpty", 409, S3.delete_bucket, Bucket="alpha")
    S3.delete_object(Bucket="alpha", Key="x")
    S3.delete_bucket(Bucket="alpha")
    expect("404", 404, S3.head_bucket, Bucket="alpha")
    expect("NoSuchBucket", 404, S3.delete_bucket, Bucket="alpha")
    expect("NoSuchBucket", 404, S3.put_object, Bucket="alpha", Key="x", Body=b"1")
    expect("NoSuchBucket", 404, S3.list_objects_v2, Bucket="alpha")
    print("buckets ok")


def check_objects():
    bucket = fresh_bucket("objects")
    # Byte-exact at the chunk boundaries of the 1 KiB chunks and a batch.
    for size in [0, 1, 1023, 1024, 1025, 3 * 1024, 1024 * 1024 + 1, 5 * 1024 * 1024 + 7]:
        body = data(size, size)
        key = f"sizes/{size}.bin"
        put = S3.put_object(Bucket=bucket, Key=key, Body=body)
        assert put["ETag"] == md5_etag(body), (put["ETag"], size)
        got = S3.get_object(Bucket=bucket, Key=key)
        assert got["Body"].read() == body, size
        assert got["ContentLength"] == size and got["ETag"] == md5_etag(body)
        head = S3.head_object(Bucket=bucket, Key=key)
        assert head["ContentLength"] == size and head["ETag"] == md5_etag(body)
    # Content-Type, the standard headers and user metadata round-trip.
    S3.put_object(
        Bucket=bucket,
        Key="meta.txt",
        Body=b"hello",
        ContentType="text/plain; charset=utf-8",
        CacheControl="max-age=60",
        ContentDisposition='attachment; filename="m.txt"',
        ContentLanguage="en",
        Metadata={"mtime": "1796198221.123", "Owner-Name": "plain ascii, ok"},
    )
    head = S3.head_object(Bucket=bucket, Key="meta.txt")
    assert head["ContentType"] == "text/plain; charset=utf-8", head
    assert head["CacheControl"] == "max-age=60" and head["ContentLanguage"] == "en", head
    assert head["ContentDisposition"] == 'attachment; filename="m.txt"', head
    assert head["Metadata"] == {"mtime": "1796198221.123", "owner-name": "plain ascii, ok"}, head["Metadata"]
    assert S3.head_object(Bucket=bucket, Key="sizes/1.bin")["ContentType"] == "binary/octet-stream"
    # An overwrite replaces bytes and metadata together.
    S3.put_object(Bucket=bucket, Key="meta.txt", Body=b"second")
    got = S3.get_object(Bucket=bucket, Key="meta.txt")
    assert got["Body"].read() == b"second" and got["Metadata"] == {}
    # Content-MD5 is checked; a wrong one stores nothing.
    good_md5 = base64.b64encode(hashlib.md5(b"abc").digest()).decode()
    S3.put_object(Bucket=bucket, Key="md5", Body=b"abc", ContentMD5=good_md5)
    wrong_md5 = base64.b64encode(hashlib.md5(b"abd").digest()).decode()
    expect("BadDigest", 400, S3.put_object, Bucket=bucket, Key="md5", Body=b"xyz", ContentMD5=wrong_md5)
    assert S3.get_object(Bucket=bucket, Key="md5")["Body"].read() == b"abc"
    expect("InvalidDigest", 400, S3.put_object, Bucket=bucket, Key="md5", Body=b"x", ContentMD5="nope")
    # Keys a Harbour name cannot hold are refused, not altered.
    for bad in ["a//b", "./x", "a/../b", "tab\there"]:
        expect("InvalidArgument", 400, S3.put_object, Bucket=bucket, Key=bad, Body=b"1")
    expect("KeyTooLongError", 400, S3.put_object, Bucket=bucket, Key="k" * 1100, Body=b"1")
    # Odd but valid keys work.
    for key in ["with space", "ü/ñ/日本", "a+b=c&d", "trailing.dot.", "%41"]:
        S3.put_object(Bucket=bucket, Key=key, Body=key.encode())
        assert S3.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode(), key
    expect("NoSuchKey", 404, S3.get_object, Bucket=bucket, Key="missing")
    expect("404", 404, S3.head_object, Bucket=bucket, Key="missing")
    S3.delete_object(Bucket=bucket, Key="meta.txt")
    S3.delete_object(Bucket=bucket, Key="meta.txt")  # gone already: still fine
    expect("NoSuchKey", 404, S3.get_object, Bucket=bucket, Key="meta.txt")
    print("objects ok")


def check_checksums():
    bucket = fresh_bucket("checksums")
    body = data(300_000, 3)
    for algorithm in ["CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME"]:
        key = f"sum-{algorithm}"
        S3.put_object(Bucket=bucket, Key=key, Body=body, ChecksumAlgorithm=algorithm)
        assert S3.get_object(Bucket=bucket, Key=key)["Body"].read() == body, algorithm
    # A checksum header that does not match the bytes stores nothing.
    bad = base64.b64encode(b"\0\0\0\0").decode()
    expect("BadDigest", 400, S3.put_object, Bucket=bucket, Key="bad", Body=b"data", ChecksumCRC32=bad)
    expect("NoSuchKey", 404, S3.get_object, Bucket=bucket, Key="bad")
    print("checksums ok")


def check_streaming():
    """Over HTTPS the SDK streams bodies aws-chunked, unsigned, with the
    checksum in the trailer: each is decoded and its checksum checked."""
    bucket = fresh_bucket("streaming")
    modes = []

    def seen(request, **kwargs):
        modes.append(request.headers.get("x-amz-content-sha256"))

    S3.meta.events.register("before-send.s3.PutObject", seen)
    for size in [0, 1, 1024, 65_536, 65_537, 3 * 1024 * 1024 + 3]:
        body = data(size, 40 + size)
        for algorithm in ["CRC32", "CRC32C", "SHA256"]:
            key = f"s-{size}-{algorithm}"
            put = S3.put_object(Bucket=bucket, Key=key, Body=body, ChecksumAlgorithm=algorithm)
            assert put["ETag"] == md5_etag(body), key
            assert S3.get_object(Bucket=bucket, Key=key)["Body"].read() == body, key
    assert set(modes) == {b"STREAMING-UNSIGNED-PAYLOAD-TRAILER"}, set(modes)
    print("streaming ok")


def check_big_stream():
    """One object of BIG_BYTES put from a file and read back whole and by
    ranges, streamed both ways (the Rust side checks every process's peak
    memory)."""
    size = int(os.environ["BIG_BYTES"])
    bucket = fresh_bucket("big")
    path = os.path.join(os.environ["HOME"], "big.bin")
    digest = hashlib.md5()
    with open(path, "wb") as out:
        for at in range(0, size, 1 << 20):
            block = data(min(1 << 20, size - at), at)
            digest.update(block)
            out.write(block)
    with open(path, "rb") as body:
        put = S3.put_object(Bucket=bucket, Key="big.bin", Body=body)
    assert put["ETag"] == '"' + digest.hexdigest() + '"', put["ETag"]
    got = S3.get_object(Bucket=bucket, Key="big.bin")["Body"]
    back = hashlib.md5()
    while True:
        block = got.read(1 << 20)
        if not block:
            break
        back.update(block)
    assert back.hexdigest() == digest.hexdigest()
    start = size // 2 + 12_345
    ranged = S3.get_object(Bucket=bucket, Key="big.bin", Range=f"bytes={start}-{start + 3_000_000}")
    with open(path, "rb") as local:
        local.seek(start)
        assert ranged["Body"].read() == local.read(3_000_001)
    os.remove(path)
    print("big stream ok")


def check_ranges_and_conditions():
    bucket = fresh_bucket("ranges")
    body = data(10_000, 9)
    etag = S3.put_object(Bucket=bucket, Key="r", Body=body)["ETag"]
    for header, want in [
        ("bytes=0-0", body[:1]),
        ("bytes=1000-2047", body[1000:2048]),
        ("bytes=9990-", body[9990:]),
        ("bytes=-5", body[-5:]),
        ("bytes=9000-20000", body[9000:]),
    ]:
        got = S3.get_object(Bucket=bucket, Key="r", Range=header)
        assert got["Body"].read() == want, header
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206, header
        assert got["ContentRange"].endswith("/10000"), got["ContentRange"]
    expect("InvalidRange", 416, S3.get_object, Bucket=bucket, Key="r", Range="bytes=10000-")
    assert S3.get_object(Bucket=bucket, Key="r", IfMatch=etag)["Body"].read() == body
    expect("PreconditionFailed", 412, S3.get_object, Bucket=bucket, Key="r", IfMatch='"0000"')
    expect("304", 304, S3.get_object, Bucket=bucket, Key="r", IfNoneMatch=etag)
    S3.get_object(Bucket=bucket, Key="r", IfNoneMatch='"other"')
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    earlier = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
    expect("304", 304, S3.get_object, Bucket=bucket, Key="r", IfModifiedSince=later)
    S3.get_object(Bucket=bucket, Key="r", IfModifiedSince=earlier)
    expect("PreconditionFailed", 412, S3.get_object, Bucket=bucket, Key="r", IfUnmodifiedSince=earlier)
    S3.get_object(Bucket=bucket, Key="r", IfUnmodifiedSince=later)
    # If-Match that holds wins over If-Unmodified-Since that does not (RFC 9110).
    S3.get_object(Bucket=bucket, Key="r", IfMatch=etag, IfUnmodifiedSince=earlier)
    expect("412", 412, S3.head_object, Bucket=bucket, Key="r", IfMatch='"x"')
    print("ranges and conditions ok")


def all_keys(pages, field="Contents"):
    return [item["Key"] for page in pages for item in page.get(field, [])]


def check_listing():
    bucket = fresh_bucket("listing")
    keys = sorted(
        ["a.txt", "b/1", "b/2", "b/c/3", "b-x", "c/d/e/f", "z"]
        + [f"many/{i:03}" for i in range(25)]
    )
    for key in keys:
        S3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    assert all_keys([S3.list_objects_v2(Bucket=bucket)]) == keys
    # V2 pages, followed by continuation tokens, cover every key once.
    pages, token = [], None
    while True:
        kwargs = {"Bucket": bucket, "MaxKeys": 4}
        if token:
            kwargs["ContinuationToken"] = token
        page = S3.list_objects_v2(**kwargs)
        assert page["KeyCount"] == len(page.get("Contents", []))
        pages.append(page)
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert all_keys(pages) == keys and len(pages) == 8, len(pages)
    paginator = S3.get_paginator("list_objects_v2")
    assert all_keys(paginator.paginate(Bucket=bucket, PaginationConfig={"PageSize": 7})) == keys
    # V1 with markers.
    v1 = S3.get_paginator("list_objects")
    assert all_keys(v1.paginate(Bucket=bucket, PaginationConfig={"PageSize": 3})) == keys
    # Delimiter, prefix, start-after.
    top = S3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert all_keys([top]) == ["a.txt", "b-x", "z"], all_keys([top])
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["b/", "c/", "many/"]
    under_b = S3.list_objects_v2(Bucket=bucket, Delimiter="/", Prefix="b/")
    assert all_keys([under_b]) == ["b/1", "b/2"]
    assert [p["Prefix"] for p in under_b["CommonPrefixes"]] == ["b/c/"]
    dashed = S3.list_objects_v2(Bucket=bucket, Delimiter="-")
    assert [p["Prefix"] for p in dashed["CommonPrefixes"]] == ["b-"], dashed
    after = S3.list_objects_v2(Bucket=bucket, StartAfter="many/020")
    assert all_keys([after]) == [k for k in keys if k > "many/020"]
    # Common prefixes page too: a page of 2 with the delimiter.
    prefixes = []
    for page in paginator.paginate(Bucket=bucket, Delimiter="/", PaginationConfig={"PageSize": 2}):
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
    assert prefixes == ["b/", "c/", "many/"], prefixes
    # V1 too, where the next page starts at the NextMarker, a prefix here.
    prefixes, keys_v1 = [], []
    for page in v1.paginate(Bucket=bucket, Delimiter="/", PaginationConfig={"PageSize": 2}):
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        keys_v1 += [item["Key"] for item in page.get("Contents", [])]
    assert prefixes == ["b/", "c/", "many/"] and keys_v1 == ["a.txt", "b-x", "z"], (prefixes, keys_v1)
    encoded = S3.list_objects_v2(Bucket=bucket, Prefix="b/", EncodingType="url")
    assert all_keys([encoded]) == ["b/1", "b/2", "b/c/3"]
    assert S3.list_objects_v2(Bucket=bucket, MaxKeys=0)["KeyCount"] == 0
    print("listing ok")


def check_copy():
    bucket = fresh_bucket("copies")
    body = data(2_500_000, 5)
    S3.put_object(Bucket=bucket, Key="src", Body=body, ContentType="image/png", Metadata={"k": "v"})
    copied = S3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert copied["CopyObjectResult"]["ETag"] == md5_etag(body)
    # The copy's time is the new version's, as GET then says it.
    stamped = copied["CopyObjectResult"]["LastModified"].replace(microsecond=0)
    assert stamped == S3.head_object(Bucket=bucket, Key="dst")["LastModified"], stamped
    got = S3.get_object(Bucket=bucket, Key="dst")
    assert got["Body"].read() == body and got["ContentType"] == "image/png" and got["Metadata"] == {"k": "v"}
    S3.copy_object(
        Bucket=bucket,
        Key="dst",
        CopySource=f"{bucket}/src",
        MetadataDirective="REPLACE",
        ContentType="text/csv",
        Metadata={"new": "1"},
    )
    head = S3.head_object(Bucket=bucket, Key="dst")
    assert head["ContentType"] == "text/csv" and head["Metadata"] == {"new": "1"}, head
    expect("InvalidRequest", 400, S3.copy_object, Bucket=bucket, Key="src", CopySource=f"{bucket}/src")
    S3.copy_object(Bucket=bucket, Key="src", CopySource=f"{bucket}/src", MetadataDirective="REPLACE", ContentType="a/b")
    assert S3.head_object(Bucket=bucket, Key="src")["ContentType"] == "a/b"
    expect("NoSuchKey", 404, S3.copy_object, Bucket=bucket, Key="x", CopySource=f"{bucket}/missing")
    expect("PreconditionFailed", 412, S3.copy_object, Bucket=bucket, Key="x", CopySource=f"{bucket}/src", CopySourceIfMatch='"nope"')
    fresh_bucket("other")
    S3.copy_object(Bucket="other", Key="across/buckets", CopySource=f"{bucket}/src")
    assert S3.get_object(Bucket="other", Key="across/buckets")["Body"].read() == body
    print("copy ok")


def check_delete_objects():
    bucket = fresh_bucket("deletes")
    for i in range(10):
        S3.put_object(Bucket=bucket, Key=f"k{i}", Body=b"x")
    result = S3.delete_objects(
        Bucket=bucket,
        Delete={"Objects": [{"Key": f"k{i}"} for i in range(6)] + [{"Key": "never-was"}, {"Key": "bad//key"}]},
    )
    deleted = sorted(item["Key"] for item in result["Deleted"])
    assert deleted == sorted([f"k{i}" for i in range(6)] + ["never-was"]), deleted
    assert [(e["Key"], e["Code"]) for e in result["Errors"]] == [("bad//key", "InvalidArgument")]
    quiet = S3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k6"}], "Quiet": True})
    assert "Deleted" not in quiet
    assert all_keys([S3.list_objects_v2(Bucket=bucket)]) == ["k7", "k8", "k9"]
    print("delete objects ok")


def check_folders():
    bucket = fresh_bucket("folders")
    S3.put_object(Bucket=bucket, Key="empty/", Body=b"")
    S3.put_object(Bucket=bucket, Key="full/", Body=b"")
    S3.put_object(Bucket=bucket, Key="full/file", Body=b"x")
    listed = S3.list_objects_v2(Bucket=bucket)
    assert all_keys([listed]) == ["empty/", "full/", "full/file"], all_keys([listed])
    assert S3.head_object(Bucket=bucket, Key="empty/")["ContentLength"] == 0
    expect("InvalidArgument", 400, S3.put_object, Bucket=bucket, Key="bytes/", Body=b"not empty")
    # Deleting a marker leaves what is under it.
    S3.delete_object(Bucket=bucket, Key="full/")
    assert all_keys([S3.list_objects_v2(Bucket=bucket)]) == ["empty/", "full/file"]
    S3.delete_object(Bucket=bucket, Key="empty/")
    expect("404", 404, S3.head_object, Bucket=bucket, Key="empty/")
    print("folders ok")


def check_durable_put():
    """Before a kill -9 of the naming server: an object with its metadata,
    and a folder marker removed while a file is still under it."""
    bucket = fresh_bucket("durable")
    S3.put_object(Bucket=bucket, Key="o", Body=b"kept", ContentType="text/x-kept", Metadata={"m": "1"})
    S3.put_object(Bucket=bucket, Key="dir/", Body=b"")
    S3.put_object(Bucket=bucket, Key="dir/file", Body=b"under")
    S3.delete_object(Bucket=bucket, Key="dir/")
    print("durable put ok")


def check_durable_after():
    """After the restart: all of it as acknowledged."""
    got = S3.get_object(Bucket="durable", Key="o")
    assert got["Body"].read() == b"kept" and got["ContentType"] == "text/x-kept", got
    assert got["Metadata"] == {"m": "1"} and got["ETag"] == md5_etag(b"kept"), got
    assert all_keys([S3.list_objects_v2(Bucket="durable")]) == ["dir/file", "o"]
    print("durable after ok")


def check_presigned():
    bucket = fresh_bucket("presigned")
    S3.put_object(Bucket=bucket, Key="p", Body=b"presigned bytes")
    url = S3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "p"}, ExpiresIn=60)
    assert "X-Amz-Signature" in url
    assert urllib.request.urlopen(url).read() == b"presigned bytes"
    put_url = S3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "up"}, ExpiresIn=60)
    request = urllib.request.Request(put_url, data=b"uploaded", method="PUT")
    assert urllib.request.urlopen(request).status == 200
    assert S3.get_object(Bucket=bucket, Key="up")["Body"].read() == b"uploaded"
    tampered = url.replace("/p?", "/up?")
    assert http_error(tampered) == 403
    short = S3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "p"}, ExpiresIn=1)
    time.sleep(2.1)
    assert http_error(short) == 403
    print("presigned ok")


def http_error(url, method="GET"):
    try:
        urllib.request.urlopen(urllib.request.Request(url, method=method))
    except urllib.error.HTTPError as err:
        return err.code
    raise AssertionError(f"{url} was served")


def check_refusals():
    bucket = fresh_bucket("refusals")
    S3.put_object(Bucket=bucket, Key="k", Body=b"secret")
    wrong = client(secret="not-the-secret-at-all-000")
    expect("SignatureDoesNotMatch", 403, wrong.get_object, Bucket=bucket, Key="k")
    stranger = client(key_id="nobody-at-all")
    expect("InvalidAccessKeyId", 403, stranger.list_buckets)
    # Anonymous requests are refused.
    assert http_error(f"{URL}/{bucket}/k") == 403
    assert http_error(f"{URL}/") == 403
    # A request signed 20 minutes ago is past the clock skew allowed; one
    # signed a minute ago is not.
    expect("RequestTimeTooSkewed", 403, signed_at(-20), S3.get_object, Bucket=bucket, Key="k")
    signed_at(-1)(S3.get_object, Bucket=bucket, Key="k")
    expect("RequestTimeTooSkewed", 403, signed_at(20), S3.get_object, Bucket=bucket, Key="k")
    print("refusals ok")


def signed_at(minutes):
    """A caller of `call` that signs as if the clock were `minutes` off,
    in both of botocore's signers (its own and, with awscrt, the CRT's)."""
    def now(remove_tzinfo=True):
        when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=minutes)
        return when.replace(tzinfo=None) if remove_tzinfo else when

    def caller(call, *args, **kwargs):
        patches = [mock.patch("botocore.auth.get_current_datetime", now)]
        try:
            import botocore.crt.auth  # noqa: F401 (present with awscrt)
            patches.append(mock.patch("botocore.crt.auth.get_current_datetime", now))
        except ImportError:
            pass
        for patch in patches:
            patch.start()
        try:
            return call(*args, **kwargs)
        finally:
            for patch in patches:
                patch.stop()

    caller.__name__ = "signed_at"
    return caller


def check_key_rights():
    reader = client(key_id="reader", secret="reader-secret-0123456789")
    alpha_only = client(key_id="alpha", secret="alpha-secret-0123456789")
    fresh_bucket("alpha")
    fresh_bucket("beta")
    S3.put_object(Bucket="beta", Key="b", Body=b"beta's")
    # A read key reads and lists, and writes nothing.
    assert reader.get_object(Bucket="beta", Key="b")["Body"].read() == b"beta's"
    assert [b["Name"] for b in reader.list_buckets()["Buckets"]] == ["alpha", "beta"]
    expect("AccessDenied", 403, reader.put_object, Bucket="beta", Key="n", Body=b"1")
    expect("AccessDenied", 403, reader.delete_object, Bucket="beta", Key="b")
    expect("AccessDenied", 403, reader.create_bucket, Bucket="gamma")
    # A key limited to alpha sees and reaches alpha alone.
    assert [b["Name"] for b in alpha_only.list_buckets()["Buckets"]] == ["alpha"]
    alpha_only.put_object(Bucket="alpha", Key="a", Body=b"1")
    expect("AccessDenied", 403, alpha_only.list_objects_v2, Bucket="beta")
    expect("AccessDenied", 403, alpha_only.get_object, Bucket="beta", Key="b")
    expect("AccessDenied", 403, alpha_only.copy_object, Bucket="alpha", Key="c", CopySource="beta/b")
    print("key rights ok")


def main():
    global S3
    S3 = client()
    for name in sys.argv[1:]:
        globals()[f"check_{name}"]()


if __name__ == "__main__":
    main()

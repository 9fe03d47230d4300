"""Harbour's multipart uploads through boto3: one check per command-line
argument, run by tests/it/s3/boto3.rs. Shares the client and helpers of
boto3_checks.py."""

import hashlib
import json
import os
import sys
import threading
import time
import urllib.request

from boto3.s3.transfer import TransferConfig

import boto3_checks as base
from boto3_checks import data, expect, fresh_bucket

MiB = 1 << 20
# Every part but the last has at least 5 MiB (S3's rule); these sizes are
# not whole chunks, so pieces meet mid-chunk.
PART_SIZES = [5 * MiB + 7, 5 * MiB + 1023, 3001]


def multipart_etag(parts):
    digests = b"".join(hashlib.md5(part).digest() for part in parts)
    return f'"{hashlib.md5(digests).hexdigest()}-{len(parts)}"'


def upload_parts(s3, bucket, key, upload_id, parts):
    """Uploads `parts` (numbered from 1) from one thread each, out of order;
    their ETags by number."""
    etags = {}
    errors = []

    def send(number, body):
        try:
            put = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body)
            assert put["ETag"] == base.md5_etag(body), put
            etags[number] = put["ETag"]
        except Exception as err:  # reported by the main thread
            errors.append(err)

    threads = [threading.Thread(target=send, args=(number, body))
               for number, body in reversed(list(enumerate(parts, start=1)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert sorted(etags) == list(range(1, len(parts) + 1)), etags
    return etags


def completion(etags, numbers=None):
    numbers = numbers or sorted(etags)
    return {"Parts": [{"PartNumber": n, "ETag": etags[n]} for n in numbers]}


def check_multipart():
    """Parts from several threads; invisible until completed; then one
    object with the multipart ETag, its metadata, and every byte."""
    s3 = base.S3
    bucket = fresh_bucket("multipart")
    parts = [data(size, seed) for seed, size in enumerate(PART_SIZES)]
    whole = b"".join(parts)
    created = s3.create_multipart_upload(
        Bucket=bucket, Key="dir/big.bin", ContentType="application/x-big", Metadata={"who": "boto3"})
    upload_id = created["UploadId"]
    assert created["Key"] == "dir/big.bin" and created["Bucket"] == bucket, created
    etags = upload_parts(s3, bucket, "dir/big.bin", upload_id, parts)
    uploads = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [("dir/big.bin", upload_id)], uploads
    listed = s3.list_parts(Bucket=bucket, Key="dir/big.bin", UploadId=upload_id)
    assert [(p["PartNumber"], p["Size"], p["ETag"]) for p in listed["Parts"]] == [
        (n, len(parts[n - 1]), etags[n]) for n in (1, 2, 3)], listed["Parts"]
    page = s3.list_parts(Bucket=bucket, Key="dir/big.bin", UploadId=upload_id, MaxParts=2)
    assert page["IsTruncated"] and [p["PartNumber"] for p in page["Parts"]] == [1, 2], page
    rest = s3.list_parts(Bucket=bucket, Key="dir/big.bin", UploadId=upload_id,
                         PartNumberMarker=page["NextPartNumberMarker"])
    assert [p["PartNumber"] for p in rest["Parts"]] == [3] and not rest["IsTruncated"], rest
    # Not an object before it is completed.
    expect("404", 404, s3.head_object, Bucket=bucket, Key="dir/big.bin")
    assert s3.list_objects_v2(Bucket=bucket).get("Contents", []) == []
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="dir/big.bin", UploadId=upload_id, MultipartUpload=completion(etags))
    assert done["ETag"] == multipart_etag(parts), (done, multipart_etag(parts))
    head = s3.head_object(Bucket=bucket, Key="dir/big.bin")
    assert head["ContentLength"] == len(whole) and head["ETag"] == done["ETag"], head
    assert head["ContentType"] == "application/x-big" and head["Metadata"] == {"who": "boto3"}, head
    assert s3.get_object(Bucket=bucket, Key="dir/big.bin")["Body"].read() == whole
    # Ranges within a part, across each boundary between parts, and
    # across chunks at those boundaries.
    first, second = PART_SIZES[0], PART_SIZES[0] + PART_SIZES[1]
    for start, end in [(0, 0), (1000, 5000), (first - 1, first), (first - 1500, first + 1500),
                       (second - 3, second + 2), (first - 10, second + 10), (len(whole) - 1, len(whole) - 1)]:
        got = s3.get_object(Bucket=bucket, Key="dir/big.bin", Range=f"bytes={start}-{end}")["Body"].read()
        assert got == whole[start:end + 1], (start, end)
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [(o["Key"], o["Size"], o["ETag"]) for o in listed] == [("dir/big.bin", len(whole), done["ETag"])]
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    expect("NoSuchUpload", 404, s3.list_parts, Bucket=bucket, Key="dir/big.bin", UploadId=upload_id)
    # The native API sees the same bytes.
    assert native(f"/files/{bucket}/dir/big.bin") == whole
    print("multipart ok")


def check_multipart_rules():
    """What a completion must list, and what a part number may be."""
    s3 = base.S3
    bucket = fresh_bucket("rules")
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    parts = [data(5 * MiB, 1), data(1000, 2), data(5 * MiB, 3), data(10, 4)]
    etags = upload_parts(s3, bucket, "k", upload_id, parts)
    complete = s3.complete_multipart_upload

    def refused(code, parts_listed):
        expect(code, 400, complete, Bucket=bucket, Key="k", UploadId=upload_id,
               MultipartUpload={"Parts": parts_listed})

    # Part 2 is small and not last.
    refused("EntityTooSmall", completion(etags, [1, 2, 3])["Parts"])
    refused("InvalidPartOrder", completion(etags, [3, 1])["Parts"])
    refused("InvalidPart", [{"PartNumber": 1, "ETag": etags[3]}])
    refused("InvalidPart", [{"PartNumber": 9, "ETag": etags[1]}])
    expect("InvalidArgument", 400, s3.upload_part, Bucket=bucket, Key="k", UploadId=upload_id,
           PartNumber=10001, Body=b"x")
    # Another key's upload id, and an unknown one.
    for key, uid in [("other", upload_id), ("k", "00000000deadbeef"), ("k", "not-an-id")]:
        expect("NoSuchUpload", 404, s3.upload_part, Bucket=bucket, Key=key, UploadId=uid,
               PartNumber=1, Body=b"x")
        expect("NoSuchUpload", 404, s3.list_parts, Bucket=bucket, Key=key, UploadId=uid)
        expect("NoSuchUpload", 404, s3.abort_multipart_upload, Bucket=bucket, Key=key, UploadId=uid)
    # A part sent again replaces the first; parts left out are not kept.
    parts[2] = data(5 * MiB + 1, 5)
    again = s3.upload_part(Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=3, Body=parts[2])
    assert again["ETag"] == base.md5_etag(parts[2])
    refused("InvalidPart", [{"PartNumber": 1, "ETag": etags[1]}, {"PartNumber": 3, "ETag": etags[3]}])
    etags[3] = again["ETag"]
    done = complete(Bucket=bucket, Key="k", UploadId=upload_id, MultipartUpload=completion(etags, [1, 3, 4]))
    kept = [parts[0], parts[2], parts[3]]
    assert done["ETag"] == multipart_etag(kept)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"".join(kept)
    # One part alone may be small; an upload over an object replaces it.
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    etags = upload_parts(s3, bucket, "k", upload_id, [b"tiny"])
    complete(Bucket=bucket, Key="k", UploadId=upload_id, MultipartUpload=completion(etags))
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"tiny"
    expect("NoSuchUpload", 404, complete, Bucket=bucket, Key="k", UploadId=upload_id,
           MultipartUpload=completion(etags))
    # Keys Harbour cannot hold are refused at creation.
    expect("InvalidArgument", 400, s3.create_multipart_upload, Bucket=bucket, Key="a//b")
    print("multipart rules ok")


def native(path):
    """The body of GET `path` on the native API."""
    with urllib.request.urlopen(os.environ["NATIVE_URL"] + path, timeout=60) as answer:
        return answer.read()


def placed_chunks():
    return sum(server["placed_chunks"] for server in json.loads(native("/status"))["servers"])


def blobs_reclaimed():
    for line in native("/metrics").decode().splitlines():
        if line.startswith("harbour_blobs_reclaimed_total "):
            return int(float(line.split()[1]))
    return 0


def check_multipart_abort():
    """An aborted upload is gone, never was an object, and its parts'
    chunks are deleted from the storage servers."""
    s3 = base.S3
    bucket = fresh_bucket("aborted")
    assert placed_chunks() == 0
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="gone")["UploadId"]
    upload_parts(s3, bucket, "gone", upload_id, [data(5 * MiB, 1), data(100, 2)])
    # The parts' chunks are placed (and so kept replicated) while under way.
    assert placed_chunks() == 2 * (5 * 1024 + 1), placed_chunks()
    reclaimed_before = blobs_reclaimed()
    s3.abort_multipart_upload(Bucket=bucket, Key="gone", UploadId=upload_id)
    assert placed_chunks() == 0
    deadline = time.monotonic() + 30
    while blobs_reclaimed() < reclaimed_before + 2:
        assert time.monotonic() < deadline, "the parts were never deleted"
        time.sleep(0.1)
    expect("NoSuchUpload", 404, s3.list_parts, Bucket=bucket, Key="gone", UploadId=upload_id)
    expect("NoSuchUpload", 404, s3.upload_part, Bucket=bucket, Key="gone", UploadId=upload_id,
           PartNumber=3, Body=b"late")
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    expect("404", 404, s3.head_object, Bucket=bucket, Key="gone")
    print("multipart abort ok")


def check_upload_part_copy():
    """Parts copied from an object, whole and by byte range."""
    s3 = base.S3
    bucket = fresh_bucket("partcopy")
    source = data(6 * MiB + 5, 9)
    s3.put_object(Bucket=bucket, Key="source", Body=source)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="copied")["UploadId"]
    whole = s3.upload_part_copy(Bucket=bucket, Key="copied", UploadId=upload_id, PartNumber=1,
                                CopySource={"Bucket": bucket, "Key": "source"})
    ranged = s3.upload_part_copy(Bucket=bucket, Key="copied", UploadId=upload_id, PartNumber=2,
                                 CopySource={"Bucket": bucket, "Key": "source"},
                                 CopySourceRange="bytes=1000-5999")
    assert whole["CopyPartResult"]["ETag"] == base.md5_etag(source)
    assert ranged["CopyPartResult"]["ETag"] == base.md5_etag(source[1000:6000])
    expect("InvalidRange", 416, s3.upload_part_copy, Bucket=bucket, Key="copied", UploadId=upload_id,
           PartNumber=3, CopySource={"Bucket": bucket, "Key": "source"},
           CopySourceRange=f"bytes=0-{len(source)}")
    expect("NoSuchKey", 404, s3.upload_part_copy, Bucket=bucket, Key="copied", UploadId=upload_id,
           PartNumber=3, CopySource={"Bucket": bucket, "Key": "nothing"})
    etags = {1: whole["CopyPartResult"]["ETag"], 2: ranged["CopyPartResult"]["ETag"]}
    s3.complete_multipart_upload(Bucket=bucket, Key="copied", UploadId=upload_id,
                                 MultipartUpload=completion(etags))
    got = s3.get_object(Bucket=bucket, Key="copied")["Body"].read()
    assert got == source + source[1000:6000]
    print("upload part copy ok")


def check_list_uploads():
    """ListMultipartUploads: by key then by start, with prefix, delimiter
    and pages."""
    s3 = base.S3
    bucket = fresh_bucket("listuploads")
    ids = {}
    for key in ["a/1", "a/2", "b", "b", "c/d/e"]:
        ids.setdefault(key, []).append(s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"])
    everything = s3.list_multipart_uploads(Bucket=bucket)
    listed = [(u["Key"], u["UploadId"]) for u in everything["Uploads"]]
    expected = [(key, uid) for key in sorted(ids) for uid in ids[key]]
    assert listed == expected, (listed, expected)
    seen = []
    marker = {}
    for _ in range(10):
        page = s3.list_multipart_uploads(Bucket=bucket, MaxUploads=2, **marker)
        seen += [(u["Key"], u["UploadId"]) for u in page.get("Uploads", [])]
        if not page["IsTruncated"]:
            break
        marker = {"KeyMarker": page["NextKeyMarker"], "UploadIdMarker": page["NextUploadIdMarker"]}
    assert seen == expected, seen
    grouped = s3.list_multipart_uploads(Bucket=bucket, Delimiter="/")
    assert [u["Key"] for u in grouped["Uploads"]] == ["b", "b"], grouped
    assert [p["Prefix"] for p in grouped["CommonPrefixes"]] == ["a/", "c/"], grouped
    under = s3.list_multipart_uploads(Bucket=bucket, Prefix="c/", Delimiter="/")
    assert [p["Prefix"] for p in under["CommonPrefixes"]] == ["c/d/"], under
    for key, uids in ids.items():
        for uid in uids:
            s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=uid)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    print("list uploads ok")


def check_durable_begin():
    """Before a kill -9 of the naming server: an upload with two parts."""
    s3 = base.S3
    bucket = fresh_bucket("durableparts")
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="k", Metadata={"m": "2"})["UploadId"]
    upload_parts(s3, bucket, "k", upload_id, [data(5 * MiB, 1), data(77, 2)])
    print("durable begin ok")


def check_durable_end():
    """After the restart: the upload and its parts, completed now."""
    s3 = base.S3
    uploads = s3.list_multipart_uploads(Bucket="durableparts")["Uploads"]
    assert len(uploads) == 1 and uploads[0]["Key"] == "k", uploads
    upload_id = uploads[0]["UploadId"]
    parts = s3.list_parts(Bucket="durableparts", Key="k", UploadId=upload_id)["Parts"]
    etags = {p["PartNumber"]: p["ETag"] for p in parts}
    assert [p["Size"] for p in parts] == [5 * MiB, 77], parts
    s3.complete_multipart_upload(Bucket="durableparts", Key="k", UploadId=upload_id,
                                 MultipartUpload=completion(etags))
    got = s3.get_object(Bucket="durableparts", Key="k")
    assert got["Body"].read() == data(5 * MiB, 1) + data(77, 2) and got["Metadata"] == {"m": "2"}
    print("durable end ok")


def check_expiry():
    """An unfinished upload is abandoned after S3_UPLOAD_EXPIRY_MS."""
    s3 = base.S3
    bucket = fresh_bucket("expiry")
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    upload_parts(s3, bucket, "k", upload_id, [data(1000, 1)])
    deadline = time.monotonic() + 30
    while s3.list_multipart_uploads(Bucket=bucket).get("Uploads"):
        assert time.monotonic() < deadline, "the upload never expired"
        time.sleep(0.2)
    expect("NoSuchUpload", 404, s3.upload_part, Bucket=bucket, Key="k", UploadId=upload_id,
           PartNumber=2, Body=b"late")
    expect("404", 404, s3.head_object, Bucket=bucket, Key="k")
    print("expiry ok")


def check_big_multipart():
    """BIG_BYTES through upload_file in 8 MiB parts, four threads at once,
    then read back whole and by ranges (the Rust side checks every
    process's peak memory)."""
    size = int(os.environ["BIG_BYTES"])
    bucket = fresh_bucket("bigparts")
    path = os.path.join(os.environ["HOME"], "big.bin")
    digest = hashlib.md5()
    with open(path, "wb") as out:
        block = data(MiB, 3)
        for at in range(0, size, MiB):
            # Each MiB differs from the last: a part out of place shows.
            piece = (at.to_bytes(8, "big") + block[8:])[:min(MiB, size - at)]
            digest.update(piece)
            out.write(piece)
    config = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB, max_concurrency=4)
    base.S3.upload_file(path, bucket, "big.bin", Config=config)
    head = base.S3.head_object(Bucket=bucket, Key="big.bin")
    parts_count = -(-size // (8 * MiB))
    assert head["ETag"].endswith(f'-{parts_count}"') and head["ContentLength"] == size, head
    got = base.S3.get_object(Bucket=bucket, Key="big.bin")["Body"]
    back = hashlib.md5()
    while True:
        block = got.read(MiB)
        if not block:
            break
        back.update(block)
    assert back.hexdigest() == digest.hexdigest()
    with open(path, "rb") as local:
        for start in [8 * MiB - 100, size // 2 + 12_345, size - 5000]:
            ranged = base.S3.get_object(Bucket=bucket, Key="big.bin", Range=f"bytes={start}-{start + 2_000_000}")
            local.seek(start)
            assert ranged["Body"].read() == local.read(2_000_001), start
    os.remove(path)
    print("big multipart ok")


def main():
    base.S3 = base.client()
    for name in sys.argv[1:]:
        globals()[f"check_{name}"]()


if __name__ == "__main__":
    main()

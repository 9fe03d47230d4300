"""One multipart upload through two naming servers sharing their metadata
in etcd (S3_URL and S3_URL_B): begun on one, its parts sent to both,
completed on the other, read back whole from each. Run by tests/it/ha.rs."""

import hashlib
import os

import boto3_checks as base
from boto3_checks import data

MiB = 1 << 20

a = base.client()
base.URL = os.environ["S3_URL_B"]
b = base.client()

a.create_bucket(Bucket="shared")
parts = [data(5 * MiB + 11, seed=1), data(5 * MiB, seed=2), data(777, seed=3)]
upload = a.create_multipart_upload(Bucket="shared", Key="big/object")["UploadId"]
listed = []
for number, (body, via) in enumerate(zip(parts, [b, a, b]), start=1):
    answer = via.upload_part(
        Bucket="shared", Key="big/object", UploadId=upload, PartNumber=number, Body=body
    )
    listed.append({"PartNumber": number, "ETag": answer["ETag"]})
seen = b.list_parts(Bucket="shared", Key="big/object", UploadId=upload)["Parts"]
assert [part["PartNumber"] for part in seen] == [1, 2, 3], seen
b.complete_multipart_upload(
    Bucket="shared", Key="big/object", UploadId=upload, MultipartUpload={"Parts": listed}
)
whole = b"".join(parts)
for via in (a, b):
    got = via.get_object(Bucket="shared", Key="big/object")["Body"].read()
    assert hashlib.md5(got).digest() == hashlib.md5(whole).digest(), len(got)
    ranged = via.get_object(Bucket="shared", Key="big/object", Range="bytes=5242875-5242900")
    assert ranged["Body"].read() == whole[5242875:5242901]
assert not a.list_multipart_uploads(Bucket="shared").get("Uploads")
print("two servers ok")

"""`make bench`'s S3 client: COUNT objects of SIZE bytes put then got,
through boto3 (`s3`; `s3-multipart`: upload_fileobj in 8 MiB parts, four
at once) or the native API over one keep-alive connection
(`native`), one phase per run; prints the phase's wall seconds. The
endpoints and keys come from the environment (S3_URL, NATIVE_URL, S3_KEY_ID,
S3_SECRET)."""

import http.client
import os
import sys
import time
import urllib.parse

import io

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

API, PHASE, COUNT, SIZE = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
BODY = os.urandom(SIZE)
BUCKET = "bench"


def s3_client():
    return boto3.client(
        "s3",
        endpoint_url=os.environ["S3_URL"],
        aws_access_key_id=os.environ["S3_KEY_ID"],
        aws_secret_access_key=os.environ["S3_SECRET"],
        region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


def run_s3():
    s3 = s3_client()
    if PHASE == "setup":
        s3.create_bucket(Bucket=BUCKET)
        return
    started = time.monotonic()
    for i in range(COUNT):
        key = f"{API}-{SIZE}/{i}"
        if PHASE == "put" and API == "s3-multipart":
            parts = TransferConfig(multipart_threshold=8 << 20, multipart_chunksize=8 << 20, max_concurrency=int(os.environ.get("PARTS_AT_ONCE", "4")))
            s3.upload_fileobj(io.BytesIO(BODY), BUCKET, key, Config=parts)
        elif PHASE == "put":
            s3.put_object(Bucket=BUCKET, Key=key, Body=BODY)
        else:
            body = s3.get_object(Bucket=BUCKET, Key=key)["Body"]
            while body.read(1 << 20):
                pass
    print(f"{time.monotonic() - started:.4f}")


def run_native():
    url = urllib.parse.urlparse(os.environ["NATIVE_URL"])
    connection = http.client.HTTPConnection(url.hostname, url.port)
    started = time.monotonic()
    for i in range(COUNT):
        path = f"/files/{BUCKET}/native-{SIZE}/{i}"
        if PHASE == "put":
            connection.request("PUT", path + "?overwrite=true", body=BODY)
        else:
            connection.request("GET", path)
        answer = connection.getresponse()
        while answer.read(1 << 20):
            pass
        assert answer.status in (200, 201), answer.status
    print(f"{time.monotonic() - started:.4f}")


if PHASE != "setup" or API == "s3":
    {"s3": run_s3, "s3-multipart": run_s3, "native": run_native}[API]()

"""s3:// inputs against moto's S3 server on loopback (a real S3-protocol server; s3fs and
botocore talk to it over TCP), pointed at by AWS_ENDPOINT_URL as a user would for MinIO or R2."""

from __future__ import annotations

import socket

import pytest
from moto import server as moto_server  # in the test extra

from fwpipe import remote
from fwpipe.dataset import read_manifest
from fwpipe.errors import InputNotFoundError
from fwpipe.pipeline.estimate import estimate
from fwpipe.pipeline.prepare import prepare
from tests.pipeline.remote_helpers import OPTS, assert_same_dataset


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3(remote_files):
    files = remote_files
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    mp = pytest.MonkeyPatch()
    for k, v in env.items():
        mp.setenv(k, v)
    import boto3

    client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"])
    client.create_bucket(Bucket="fineweb")
    for name, p in files.items():
        client.put_object(Bucket="fineweb", Key=f"sample/10BT/{name}", Body=p.read_bytes())
    yield files, client
    mp.undo()
    server.stop()


def test_s3_glob_prepare_matches_local(s3, local_ref, tmp_path):
    files, client = s3
    ref = local_ref
    out = tmp_path / "ds"
    prepare(["s3://fineweb/sample/10BT/[ab].parquet"], out, options=OPTS, progress=False)
    urls = ["s3://fineweb/sample/10BT/a.parquet", "s3://fineweb/sample/10BT/b.parquet"]
    assert_same_dataset(out, ref, urls)
    sources = read_manifest(out).sources
    etag = client.head_object(Bucket="fineweb", Key="sample/10BT/a.parquet")["ETag"].strip('"')
    assert sources[0]["revision"] == etag


def test_s3_estimate_counts_fetched_bytes(s3):
    files, _ = s3
    before = remote.STATS.snapshot()
    est = estimate(["s3://fineweb/sample/10BT/fw.parquet"])
    assert est["total"]["est_tokens"] == estimate([files["fw.parquet"]])["total"]["est_tokens"]
    g = est["fetched"]
    assert g["bytes"] == remote.since(before)["fetched_bytes"] > 0
    assert g["input_bytes"] == files["fw.parquet"].stat().st_size and g["fraction"] <= 0.02


def test_s3_missing_key_and_empty_glob_name_the_url(s3):
    with pytest.raises(InputNotFoundError, match=r"s3://fineweb/sample/10BT/nope\.parquet: not found"):
        prepare(["s3://fineweb/sample/10BT/nope.parquet"], "unused", options=OPTS, progress=False)
    with pytest.raises(InputNotFoundError, match="the glob matches no files"):
        estimate(["s3://fineweb/sample/100BT/*.parquet"])

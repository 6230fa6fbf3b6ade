"""A remote input is one revision from first byte to last, or the run stops (issue 19): servers
on loopback with weak, missing or strong ETags replace a file mid-prepare; servers that ignore
Range, trickle bytes, redirect off HTTP or do not speak TLS give one line at once."""

from __future__ import annotations

import hashlib
import logging

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from fwpipe import remote
from fwpipe.cli import main
from fwpipe.dataset import read_manifest
from fwpipe.errors import RemoteError
from fwpipe.pipeline.prepare import prepare
from tests.pipeline.remote_helpers import OPTS, assert_same_dataset
from tests.pipeline.servers import FileServer


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setattr(remote, "RETRY_BASE_S", 0.01)
    srv = FileServer()
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def versions(tmp_path_factory, sample1400):
    """Two versions of one file, the same size: uncompressed, so one text edited in place (the
    same length) is a valid parquet file holding other rows."""
    d = tmp_path_factory.mktemp("versions")
    pq.write_table(pq.read_table(sample1400).slice(0, 600), d / "v1.parquet", row_group_size=100, compression="none")
    v1 = (d / "v1.parquet").read_bytes()
    at = v1.index(b" the ", len(v1) * 3 // 4)  # in a late row group
    v2 = v1[:at] + b" THE " + v1[at + 5 :]
    assert len(v2) == len(v1) and pq.read_table(pa.BufferReader(v2)).num_rows == 600
    return v1, v2


@pytest.mark.parametrize(
    "etag,modified",
    [("weak", True), (None, True), ("weak", False), ("strong", True)],
    ids=["weak-etag", "last-modified-only", "weak-etag-only", "strong-etag"],
)
def test_a_file_replaced_mid_prepare_stops_the_run(server, versions, tmp_path, etag, modified):
    v1, v2 = versions
    server.put("a.parquet", v1, etag=etag, modified=modified)
    server.faults = [{"name": "a.parquet", "replace": v2, "skip": 3}]  # after the footer and two row groups
    url = server.url("a.parquet")
    out = tmp_path / "ds"
    with pytest.raises(RemoteError, match="changed on the server while being read"):
        prepare([url], out, options=OPTS, progress=False, workers=1)
    assert server.faults == []
    m = read_manifest(out)
    assert m is None or m.status != "complete"  # nothing that looks finished


def test_a_file_with_no_revision_is_refused_unless_cache_dir_holds_a_whole_copy(server, versions, tmp_path):
    v1, v2 = versions
    server.put("a.parquet", v1, etag=None, modified=False)
    url = server.url("a.parquet")
    r = CliRunner().invoke(main, ["prepare", url, "-o", str(tmp_path / "no"), "--dedup", "none"])
    assert r.exit_code == 1 and len(r.output.splitlines()) == 1, r.output
    assert r.output.startswith(f"Error: {url}: the server gives no ETag or Last-Modified") and "--cache-dir" in r.output
    assert not (tmp_path / "no" / "manifest.json").exists()
    # with --cache-dir: one whole read (no Range) is the file, even if the server replaces it meanwhile
    (tmp_path / "v1.parquet").write_bytes(v1)
    ref = tmp_path / "ref"
    prepare([tmp_path / "v1.parquet"], ref, options=OPTS, progress=False)
    server.faults = [{"name": "a.parquet", "replace": v2, "skip": 1}]
    server.requests.clear()
    try:
        r = CliRunner().invoke(
            main,
            [
                "prepare",
                url,
                "-o",
                str(tmp_path / "yes"),
                "--dedup",
                "none",
                "--shard-tokens",
                "100000",
                "--val-fraction",
                "0.05",
                "--cache-dir",
                str(tmp_path / "cache"),
                "--workers",
                "2",
            ],
        )
        assert r.exit_code == 0, r.output
    finally:
        remote.set_cache_dir(None)
    assert [(m, rng) for m, n, rng in server.requests] == [("HEAD", None), ("GET", None)]
    assert_same_dataset(tmp_path / "yes", ref, [url])
    assert read_manifest(tmp_path / "yes").sources[0]["revision"] == "sha256:" + hashlib.sha256(v1).hexdigest()


def test_a_server_that_ignores_range_is_named_and_cache_dir_reads_it_whole(server, versions, tmp_path):
    server.put("a.parquet", versions[0])
    server.ignore_range = True
    url = server.url("a.parquet")
    r = CliRunner().invoke(main, ["prepare", url, "-o", str(tmp_path / "no"), "--dedup", "none"])
    assert r.exit_code == 1 and len(r.output.splitlines()) == 1, r.output
    assert "the server does not honour Range requests" in r.output and "--cache-dir" in r.output
    assert server.gets() == 1  # at once, not retried as a network fault
    try:
        r = CliRunner().invoke(
            main, ["prepare", url, "-o", str(tmp_path / "yes"), "--dedup", "none", "--cache-dir", str(tmp_path / "c")]
        )
        assert r.exit_code == 0, r.output
    finally:
        remote.set_cache_dir(None)
    # the refused run's one, the second run's footer request (answered whole, left unread), then one whole read
    assert server.gets() == 3 and server.requests[-1] == ("GET", "a.parquet", None)


def test_a_trickling_response_hits_the_request_deadline_and_is_retried_visibly(
    server, versions, tmp_path, monkeypatch, caplog
):
    monkeypatch.setattr(remote, "REQUEST_DEADLINE_S", 1.0)
    server.put("a.parquet", versions[0])
    server.faults = [
        {"name": "a.parquet", "trickle": 0.05, "skip": 1}
    ]  # a row group, a byte every 50 ms (read timeout never trips)
    before = remote.STATS.snapshot()
    with caplog.at_level(logging.WARNING, logger="fwpipe.remote"):
        prepare([server.url("a.parquet")], tmp_path / "ds", options=OPTS, progress=False, workers=1)
    assert remote.since(before)["retries"] == 1
    assert any("TimeoutError); retry 1 of 6" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("case", ["redirect to file://", "TLS to a plain-HTTP port"])
def test_permanent_failures_fail_at_once_with_the_reason(server, tmp_path, case):
    if case == "redirect to file://":
        server.put("a.parquet", b"x")

        def redirect(self, *a, **k):
            h = a[0]
            h.send_response(302)
            h.send_header("Location", "file:///etc/passwd")
            h.send_header("Content-Length", "0")
            h.end_headers()

        server._handle = redirect.__get__(server)
        url, why = server.url("a.parquet"), "redirected to a URL that is not http(s)"
    else:
        url, why = (
            server.url("a.parquet").replace("http://", "https://"),
            "the TLS handshake failed (WRONG_VERSION_NUMBER",
        )
    r = CliRunner().invoke(main, ["prepare", url, "-o", str(tmp_path / "d")])
    assert r.exit_code == 1 and len(r.output.splitlines()) == 1, r.output
    assert why in r.output and "again later" not in r.output

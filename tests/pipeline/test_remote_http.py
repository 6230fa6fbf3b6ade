"""http(s):// inputs against a real HTTP server on loopback that misbehaves on demand: every
prepared dataset is byte-identical to the same files prepared locally."""

from __future__ import annotations

import json
import logging

import pytest
from click.testing import CliRunner

from fwpipe import remote
from fwpipe.cli import main
from fwpipe.dataset import read_manifest
from fwpipe.errors import DatasetMismatchError, RemoteError
from fwpipe.fmt import pct, size
from fwpipe.pipeline.estimate import estimate
from fwpipe.pipeline.prepare import prepare
from tests.pipeline.remote_helpers import OPTS, assert_same_dataset, estimate_gets, streaming_gets
from tests.pipeline.servers import FileServer


@pytest.fixture
def files(remote_files):
    return remote_files


@pytest.fixture
def server(files, monkeypatch):
    monkeypatch.setattr(remote, "RETRY_BASE_S", 0.01)
    srv = FileServer()
    for name, p in files.items():
        srv.put(name, p.read_bytes())
    yield srv
    srv.close()


def test_prepare_from_urls_matches_local_and_records_no_credentials(server, files, local_ref, tmp_path):
    urls = [server.url("a.parquet", "alice:s3cret@", "token=hunter2"), server.url("b.parquet")]
    out = tmp_path / "ds"
    prepare(urls, out, options=OPTS, progress=False)
    assert_same_dataset(out, local_ref, [server.url("a.parquet"), server.url("b.parquet")])
    text = (out / "manifest.json").read_text() + (out / "docs.parquet").read_bytes().decode("latin-1")
    assert "s3cret" not in text and "hunter2" not in text and "alice" not in text
    sources = read_manifest(out).sources
    assert [s["revision"] for s in sources] == [server.etags["a.parquet"], server.etags["b.parquet"]]
    # streamed by row group: one GET per row group plus each file's footer
    assert server.gets("a.parquet") == streaming_gets(files["a.parquet"]) >= 1 + 5
    assert server.gets("b.parquet") == streaming_gets(files["b.parquet"])


@pytest.mark.parametrize("workers", [1, 2])
def test_transient_failures_are_retried_with_a_visible_count(server, files, local_ref, tmp_path, caplog, workers):
    server.faults = [
        {"method": "HEAD", "name": "a.parquet", "status": 503},
        {"name": "a.parquet", "status": 503},  # the footer
        {"name": "a.parquet", "drop": True, "skip": 2},  # the 2nd row group: connection dropped mid-body
        {"name": "a.parquet", "status": 429, "skip": 4},
        {"name": "b.parquet", "stall": 0.3},  # slow but within the read timeout
        {"name": "b.parquet", "drop": True},
    ]
    with caplog.at_level(logging.WARNING, logger="fwpipe.remote"):
        s = prepare(
            [server.url("a.parquet"), server.url("b.parquet")],
            tmp_path / "ds",
            options=OPTS,
            progress=False,
            workers=workers,
        )
    assert server.faults == []
    assert_same_dataset(tmp_path / "ds", local_ref, [server.url("a.parquet"), server.url("b.parquet")])
    assert s["fetched"]["retries"] == 5  # the driver's and the units' wherever they ran
    if workers > 1:
        return  # a worker process logs to its own stderr (the CLI's handler, inherited), not to caplog
    retries = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert len(retries) == 5 and "(HTTP 503); retry 1 of 6" in retries[0] and any("(HTTP 429)" in m for m in retries)
    assert sum("(ClientPayloadError)" in m for m in retries) == 2


def test_a_stalled_response_times_out_and_is_retried(server, files, tmp_path, monkeypatch):
    monkeypatch.setattr(remote, "READ_TIMEOUT_S", 0.5)
    server.faults = [{"name": "b.parquet", "stall": 2.0}]
    before = remote.STATS.snapshot()
    est = estimate([server.url("b.parquet")])
    assert remote.since(before)["retries"] == 1
    assert est["total"]["est_tokens"] == estimate([files["b.parquet"]])["total"]["est_tokens"]


@pytest.mark.parametrize("status, words", [(404, "not found (HTTP 404)"), (403, "access denied (HTTP 403)")])
def test_a_permanent_failure_is_one_line_naming_the_url_without_credentials(server, tmp_path, status, words):
    if status == 404:
        url = server.url("missing.parquet", "bob:pw123@", "sig=abc")
    else:
        server.faults = [{"method": "HEAD", "name": "a.parquet", "status": 403}]
        url = server.url("a.parquet", "bob:pw123@", "sig=abc")
    r = CliRunner().invoke(main, ["prepare", url, "-o", str(tmp_path / "ds")])
    assert r.exit_code == 1
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: http://127.0.0.1:{server.port}/") and words in lines[0]
    assert "pw123" not in r.output and "sig=" not in r.output and "bob" not in r.output
    assert not (tmp_path / "ds").exists()


@pytest.mark.slow
def test_interrupted_run_resumes_refetching_only_unfinished_work_and_a_changed_file_is_refused(
    server, files, local_ref, tmp_path
):
    urls = [server.url("a.parquet"), server.url("b.parquet")]
    out = tmp_path / "ds"
    # b's footer comes (prepare inspects every input first), then its first row group never does
    server.faults = [{"name": "b.parquet", "status": 500, "skip": 1}] + [
        {"name": "b.parquet", "status": 500}
    ] * remote.MAX_RETRIES
    with pytest.raises(RemoteError, match="failed 7 times"):
        prepare(urls, out, options=OPTS, progress=False)
    server.faults = []
    server.requests.clear()
    prepare(urls, out, options=OPTS, progress=False)
    assert_same_dataset(out, local_ref, urls)
    # prepare resumes after the rows both splits' finished shards hold (here val's shard is not
    # finished, so from a's start): at most one more stream of a, whose shards are kept, not redone
    assert server.gets("a.parquet") <= streaming_gets(files["a.parquet"])
    assert server.gets("b.parquet") == streaming_gets(files["b.parquet"])

    server.put("b.parquet", files["b.parquet"].read_bytes() + b"")  # same bytes, same ETag: nothing to do
    assert prepare(urls, out, options=OPTS, progress=False)["did_work"] is False
    server.put("a.parquet", files["fw.parquet"].read_bytes())  # replaced on the server: a new ETag
    with pytest.raises(DatasetMismatchError, match=r"a\.parquet: changed since"):
        prepare(urls, out, options=OPTS, progress=False)


def test_a_file_replaced_mid_run_is_refused(server, files, tmp_path):
    url = server.url("a.parquet")
    pf_source = remote.stat(url)
    remote.tail(pf_source)
    server.put("a.parquet", files["fw.parquet"].read_bytes())  # If-Match now fails with 412
    rf = remote.RangeFile(pf_source)
    with pytest.raises(RemoteError, match="changed on the server while being read"):
        rf.read_at(0, 100)


def test_estimate_reads_footers_and_token_count_only(server, files):
    """FineWeb-shaped file (1,000-row row groups, token_count): a few % of its bytes at most."""
    before, sent = remote.STATS.snapshot(), server.body_bytes
    est = estimate([server.url("fw.parquet")])
    local = estimate([files["fw.parquet"]])
    assert est["total"]["est_tokens"] == local["total"]["est_tokens"] and est["files"][0]["method"] == "token_count"
    g = est["fetched"]
    assert g["bytes"] == remote.since(before)["fetched_bytes"] == server.body_bytes - sent  # counted = sent
    assert g["input_bytes"] == files["fw.parquet"].stat().st_size and g["fraction"] <= 0.02
    assert g["requests"] == 1 + estimate_gets(files["fw.parquet"])  # HEAD, the footer, token_count's column chunks
    assert server.gets("fw.parquet") == estimate_gets(files["fw.parquet"])
    assert local["fetched"] is None


def test_cli_estimate_prints_and_records_fetched_bytes(server, tmp_path):
    r = CliRunner().invoke(
        main, ["prepare", server.url("fw.parquet"), "--estimate", "--json", str(tmp_path / "e.json")]
    )
    assert r.exit_code == 0, r.output
    g = json.loads((tmp_path / "e.json").read_text())["fetched"]
    assert f"fetched {size(g['bytes'])} of {size(g['input_bytes'])} remote input ({pct(g['fraction'])})" in r.output
    assert g["bytes"] > 0


@pytest.mark.slow
def test_cache_dir_keeps_whole_copies_that_a_rerun_reads_locally(server, files, local_ref, tmp_path):
    urls = [server.url("a.parquet"), server.url("b.parquet")]
    args = [
        "--shard-tokens",
        "100000",
        "--dedup",
        "none",
        "--val-fraction",
        "0.05",
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    try:
        r = CliRunner().invoke(main, ["prepare", *urls, "-o", str(tmp_path / "one"), *args])
        assert r.exit_code == 0, r.output
        assert "fetched " in r.output
        assert sorted(p.name.split("-", 1)[1] for p in (tmp_path / "cache").iterdir()) == ["a.parquet", "b.parquet"]
        assert_same_dataset(tmp_path / "one", local_ref, urls)
        server.requests.clear()
        r = CliRunner().invoke(main, ["prepare", *urls, "-o", str(tmp_path / "two"), *args])
        assert r.exit_code == 0, r.output
        assert_same_dataset(tmp_path / "two", local_ref, urls)
        # a HEAD each for the revision; footer and rows come from the copies
        assert server.gets("a.parquet") == server.gets("b.parquet") == 0
        assert [m for m, n, _ in server.requests if n == "a.parquet"] == ["HEAD"]
    finally:
        remote.set_cache_dir(None)


def test_without_the_remote_extra_a_url_gets_one_line_saying_what_to_install(monkeypatch, tmp_path):
    remote.drop_filesystems()  # the s3 filesystem is made afresh, so its import is tried
    monkeypatch.setitem(__import__("sys").modules, "s3fs", None)  # as if not installed: import fails
    r = CliRunner().invoke(main, ["prepare", "s3://bucket/fineweb/*.parquet", "--estimate"])
    assert r.exit_code == 1
    assert r.output.strip().splitlines() == [
        "Error: s3://bucket/fineweb/*.parquet: reading s3:// URLs needs s3fs; pip install 'fwpipe[remote]'"
    ]


def test_with_a_budget_files_after_the_stopping_point_are_never_streamed(server, files, tmp_path):
    from dataclasses import replace

    s = prepare(
        [server.url("a.parquet"), server.url("b.parquet")],
        tmp_path / "ds",
        options=replace(OPTS, budget_tokens=50_000),
        progress=False,
    )
    assert s["sizing"]["reached"] and s["sizing"]["inputs_unused"] == [server.url("b.parquet")]
    assert server.gets("b.parquet") == 1  # its footer (prepare checks every input first), no row group


@pytest.mark.slow
def test_default_near_dedup_from_urls_matches_local(server, files, tmp_path):
    from dataclasses import replace

    opts = replace(OPTS, dedup="near")
    prepare([files["a.parquet"], files["b.parquet"]], tmp_path / "ref", options=opts, progress=False)
    urls = [server.url("a.parquet"), server.url("b.parquet")]
    prepare(urls, tmp_path / "ds", options=opts, progress=False)
    assert_same_dataset(tmp_path / "ds", tmp_path / "ref", urls)

"""hf:// inputs through huggingface_hub's HfFileSystem, pointed (HF_ENDPOINT) at a loopback server
that answers the Hub endpoints it calls, so the real client code runs."""

from __future__ import annotations

import hashlib

import pytest

from fwpipe import remote
from fwpipe.dataset import read_manifest
from fwpipe.errors import InputNotFoundError, RemoteError
from fwpipe.pipeline.estimate import estimate
from fwpipe.pipeline.prepare import prepare
from tests.pipeline.remote_helpers import OPTS, assert_same_dataset, estimate_gets, streaming_gets
from tests.pipeline.servers import HubServer

REPO = "HuggingFaceFW/fineweb"
A, B = "sample/10BT/000_00000.parquet", "sample/10BT/001_00000.parquet"
FW = "data/CC-MAIN-2024-10/000_00000.parquet"


@pytest.fixture
def files(remote_files):
    return remote_files


@pytest.fixture
def hub(files, monkeypatch):
    srv = HubServer(REPO)
    for path, name in ((A, "a.parquet"), (B, "b.parquet"), (FW, "fw.parquet")):
        srv.put(path, files[name].read_bytes())
    monkeypatch.setenv("HF_ENDPOINT", srv.endpoint)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setattr(remote, "RETRY_BASE_S", 0.01)
    yield srv
    srv.close()


def test_hf_glob_prepare_matches_local_pinned_to_the_commit(hub, files, local_ref, tmp_path):
    ref = local_ref
    out = tmp_path / "ds"
    prepare([f"hf://datasets/{REPO}/sample/10BT/*.parquet"], out, options=OPTS, progress=False)
    urls = [f"hf://datasets/{REPO}/{A}", f"hf://datasets/{REPO}/{B}"]
    assert_same_dataset(out, ref, urls)
    sources = read_manifest(out).sources
    assert [s["revision"] for s in sources] == [hub.commit, hub.commit]
    assert sources[0]["sha256"] == hashlib.sha256(files["a.parquet"].read_bytes()).hexdigest()  # the Hub's LFS sha256
    assert hub.unknown == []
    assert hub.gets(A) == streaming_gets(files["a.parquet"])  # the footer, then one request per row group


def test_hf_estimate_counts_fetched_bytes(hub, files):
    before = remote.STATS.snapshot()
    est = estimate([f"hf://datasets/{REPO}/{FW}"])
    assert est["total"]["est_tokens"] == estimate([files["fw.parquet"]])["total"]["est_tokens"]
    g = est["fetched"]
    assert g["bytes"] == remote.since(before)["fetched_bytes"] > 0 and g["fraction"] <= 0.02
    assert hub.gets(FW) == estimate_gets(files["fw.parquet"])  # the footer, token_count's column chunks


def test_hf_streamed_bytes_are_checked_against_the_hubs_sha256(hub, files, tmp_path):
    """The Hub says one sha256, the bytes served hash to another: refused once streamed whole."""
    from tests.pipeline import servers

    data = files["b.parquet"].read_bytes()
    hub.put(B, data)
    real_entry = servers.HubServer.entry
    hub.entry = lambda p: (
        {**real_entry(hub, p), "lfs": {"oid": "0" * 64, "size": len(data), "pointerSize": 134}}
        if p == B
        else real_entry(hub, p)
    )
    with pytest.raises(RemoteError, match="sha256"):
        prepare([f"hf://datasets/{REPO}/{B}"], tmp_path / "ds", options=OPTS, progress=False)


def test_hf_missing_file_and_revision_name_the_url(hub):
    with pytest.raises(InputNotFoundError, match=f"hf://datasets/{REPO}/sample/10BT/nope.parquet: not found"):
        estimate([f"hf://datasets/{REPO}/sample/10BT/nope.parquet"])
    with pytest.raises(InputNotFoundError, match="not found"):
        estimate([f"hf://datasets/{REPO}@v9/{A}"])


def test_hf_glob_pinned_to_a_commit_in_the_url(hub, files):
    est = estimate([f"hf://datasets/{REPO}@{hub.commit}/sample/10BT/*.parquet"])
    assert [f["path"] for f in est["files"]] == [
        f"hf://datasets/{REPO}@{hub.commit}/{A}",
        f"hf://datasets/{REPO}@{hub.commit}/{B}",
    ]
    assert est["total"]["docs"] == estimate([files["a.parquet"], files["b.parquet"]])["total"]["docs"]

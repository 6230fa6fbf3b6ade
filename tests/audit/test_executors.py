"""The signature units through each executor: the same scratch bytes and the same audit, inline
or on local processes (the Ray executor: tests/cluster)."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest

from fwpipe.audit import audit
from fwpipe.dedup import DedupConfig, engine, open_scratch, sign
from fwpipe.executors import Inline, LocalExecutor
from fwpipe.shards import open_tokens, read_shard, token_source, write_shard


@pytest.mark.slow  # starts a process pool: ~2-6 s on 2 busy cores
def test_local_processes_write_the_inline_units_and_audit(planted_dirs, tmp_path, monkeypatch):
    monkeypatch.setattr(engine, "UNIT_DOCS", 64)  # 13 units of <= 64 documents, enough work for the pool
    ds = shutil.copytree(planted_dirs["fwpipe"], tmp_path / "ds")
    runs = []
    for ex in (Inline(), LocalExecutor(2)):
        with ex:
            report = audit(ds, tmp_dir=tmp_path / "scratch", executor=ex)
        report.pop("seconds")
        runs.append(
            (json.dumps(report, sort_keys=True), hashlib.sha256((ds / "clusters.parquet").read_bytes()).hexdigest())
        )
        (ds / "clusters.parquet").unlink()
    assert runs[0] == runs[1]
    assert (
        json.loads(runs[0][0])["near_duplicates"]["clusters"] >= 3
    )  # the planted copies: the bytes compared mean something


@pytest.mark.slow
def test_a_forkserver_pool_signs_every_unit_after_numba_threads_run(planted_dirs, tmp_path, monkeypatch):
    """Once this process runs numba's OpenMP threads a forked child breaks, so sign's workers
    then come from a forkserver: they do the work (not a fall-back to this process) and give
    the inline bytes."""
    monkeypatch.setattr(engine, "UNIT_DOCS", 64)
    ds = shutil.copytree(planted_dirs["fwpipe"], tmp_path / "ds")
    ref = audit(ds, tmp_dir=tmp_path / "s0", executor=Inline())
    (ds / "clusters.parquet").unlink()
    with LocalExecutor(2, start_method="forkserver").start() as ex:
        got = audit(ds, tmp_dir=tmp_path / "s1", executor=ex)
    assert ex.units_run >= 13  # 13 units of <= 64 documents, all signed by the pool
    ref.pop("seconds"), got.pop("seconds")
    assert json.dumps(got, sort_keys=True) == json.dumps(ref, sort_keys=True)


@pytest.mark.slow
def test_units_carry_the_shard_file_not_its_tokens(planted_dirs, tmp_path, monkeypatch):
    from fwpipe.audit.corpus import index
    from fwpipe.dataset import open_dataset

    corpus = index(open_dataset(planted_dirs["fwpipe"]))
    src = token_source(corpus.shards[0])
    assert src[0] == str(planted_dirs["fwpipe"] / "train_000000.bin") and src[2] == len(corpus.shards[0])
    assert np.array_equal(open_tokens(src), corpus.shards[0])
    assert token_source(corpus.shards[0][5:])[0] is None  # a slice travels as its tokens: its offset is not the file's

    monkeypatch.setattr(engine, "UNIT_DOCS", 128)
    cfg = DedupConfig()
    keys = []
    for ex in (Inline(), LocalExecutor(2)):
        sc = open_scratch(
            tmp_path / type(ex).__name__, {}, n_docs=corpus.n_docs, num_perm=cfg.num_perm, bands=cfg.bands
        )
        with ex:
            sign(sc, corpus, cfg, executor=ex)
        keys.append([p.read_bytes() for p in sorted(sc.root.glob("keys.*"))])
    assert len(keys[0]) == len(engine.units(corpus)) >= 7 and keys[0] == keys[1]


def test_a_shard_shorter_than_when_it_was_opened_is_refused(tmp_path):
    from fwpipe.errors import ShardFormatError

    write_shard(tmp_path / "s.bin", np.arange(1000, dtype=np.uint16))
    src = token_source(read_shard(tmp_path / "s.bin"))
    with open(tmp_path / "s.bin", "r+b") as f:
        f.truncate(1200)
    with pytest.raises(
        ShardFormatError, match="s.bin: 1200 bytes, 3024 when the run started: the shard changed while it was read"
    ):
        open_tokens(src)

"""prepare --dedup: hostile inputs (copies and edited copies across files and splits) come out
with no duplicates and no leakage by audit's own numbers, and removed.parquet accounts for
every document that went missing."""

import random

import numpy as np
import polars as pl
import pytest

from fwpipe.audit import audit
from fwpipe.dataset import read_manifest
from fwpipe.pipeline.prepare import PrepareOptions, prepare
from fwpipe.tokenizer import encode
from tests.corpus import dir_digest, edit_words
from tests.pipeline.helpers import write_parquet

N_BASE = 120


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, sample1400):
    """Three files: 120 real documents, then copies and ~2%-word-edited copies of 40 of them
    (up to 6 per family) spread over all three files under fresh ids, so that a per-document
    hash split would put many families on both sides."""
    d = tmp_path_factory.mktemp("hostile")
    texts = [t for t in pl.read_parquet(sample1400, columns=["text"])["text"].to_list() if len(t.split()) >= 80][
        :N_BASE
    ]
    rng = random.Random(0)
    files = [{"text": [], "id": []} for _ in range(3)]
    for i, t in enumerate(texts):
        files[i % 3]["text"].append(t)
        files[i % 3]["id"].append(f"orig-{i}")
    planted = 0
    for fam in range(40):
        for c in range(rng.randint(2, 6)):
            copy = texts[fam] if c % 2 == 0 else edit_words(texts[fam], 0.02, rng)
            f = files[rng.randrange(3)]
            f["text"].append(copy)
            f["id"].append(f"copy-{fam}-{c}")
            planted += 1
    paths = [write_parquet(d / f"part-{k}.parquet", files[k]) for k in range(3)]
    return paths, planted


def shingles(tokens, n=5):
    return {tuple(tokens[i : i + n]) for i in range(max(1, len(tokens) - n + 1))}


def test_dedup_near_leaves_no_duplicates_and_no_leakage(tmp_path, hostile):
    paths, planted = hostile
    opts = dict(val_fraction=0.2, shard_tokens=60_000)
    plain = audit(
        prepare(paths, tmp_path / "plain", options=PrepareOptions(dedup="none", **opts), progress=False)["out_dir"],
        quality=False,
    )
    # the hostile input really is hostile: without dedup, val leaks and clusters exist
    assert plain["leakage"]["near_docs"] > 0 and plain["near_duplicates"]["clusters"] >= 30

    s = prepare(paths, tmp_path / "near", options=PrepareOptions(dedup="near", **opts), progress=False)
    rep = audit(tmp_path / "near", quality=False)
    assert rep["leakage"]["exact_docs"] == 0 and rep["leakage"]["near_docs"] == 0
    assert rep["near_duplicates"]["clusters"] == 0 and rep["exact_duplicates"]["docs"] == 0
    assert rep["splits"]["val"]["docs"] > 0
    removed = pl.read_parquet(tmp_path / "near" / "removed.parquet")
    assert s["dedup"]["removed_docs"] == removed.height == s["docs"] * 0 + (N_BASE + planted) - s["docs"]
    assert removed.height == plain["near_duplicates"]["removable_docs"]


def test_removed_parquet_accounts_for_every_missing_document(tmp_path, hostile):
    paths, planted = hostile
    prepare(paths, tmp_path / "ds", options=PrepareOptions(val_fraction=0.2), progress=False)
    docs = pl.read_parquet(tmp_path / "ds" / "docs.parquet").with_columns(pl.col("source_file").cast(pl.String))
    removed = pl.read_parquet(tmp_path / "ds" / "removed.parquet")
    all_ids = set()
    texts = {}
    for p in paths:
        t = pl.read_parquet(p)
        all_ids |= set(t["id"].to_list())
        texts.update(zip(t["id"].to_list(), t["text"].to_list()))
    kept_ids = set(docs["id"].to_list())
    assert kept_ids.isdisjoint(removed["id"].to_list())
    assert kept_ids | set(removed["id"].to_list()) == all_ids  # nothing lost unaccounted
    assert set(removed["kept_id"].to_list()) <= kept_ids  # each points at a document that stayed
    assert all(i.startswith("copy-") or i.startswith("orig-") for i in removed["id"].to_list())
    for row in removed.iter_rows(named=True):  # none removed that had no duplicate
        a, b = encode(texts[row["id"]]).tolist(), encode(texts[row["kept_id"]]).tolist()
        if row["reason"] == "exact":
            assert a == b
        else:
            sa, sb = shingles(a), shingles(b)
            assert len(sa & sb) / len(sa | sb) >= 0.6, row
    m = read_manifest(tmp_path / "ds")
    assert m.dedup["removed_docs"] == removed.height and m.files["removed"] == "removed.parquet"


def test_dedup_is_deterministic_for_any_workers(tmp_path, hostile):
    paths, _ = hostile
    prepare(
        paths, tmp_path / "a", options=PrepareOptions(val_fraction=0.2, shard_tokens=50_000), workers=1, progress=False
    )
    prepare(
        paths, tmp_path / "b", options=PrepareOptions(val_fraction=0.2, shard_tokens=50_000), workers=3, progress=False
    )
    assert dir_digest(tmp_path / "a") == dir_digest(tmp_path / "b")


def test_exact_mode_removes_only_identical_documents(tmp_path, hostile):
    paths, _ = hostile
    s = prepare(paths, tmp_path / "ex", options=PrepareOptions(dedup="exact", val_fraction=0.2), progress=False)
    removed = pl.read_parquet(tmp_path / "ex" / "removed.parquet")
    assert removed.height == s["dedup"]["removed_docs"] > 0
    assert set(removed["reason"].to_list()) == {"exact"}
    rep = audit(tmp_path / "ex", quality=False)
    assert rep["exact_duplicates"]["docs"] == 0 and rep["leakage"]["exact_docs"] == 0


def test_residual_pass_finds_a_pair_hidden_behind_a_truncated_bucket(tmp_path):
    """E keeps F (removed); B and C are near duplicates (103/128 agree) that share a band bucket
    only with F. With buckets capped at 2 the first pass paired B and C only with F; once F is
    gone their bucket has 2 docs, and the residual pass must pair and remove C."""
    from fwpipe.dedup import DedupConfig, DocIndex, open_scratch
    from fwpipe.dedup.engine import write_signatures
    from fwpipe.pipeline import dedup_passes as dedup

    cfg = DedupConfig(max_bucket=2)
    rng = np.random.default_rng(0)
    sig = rng.integers(0, 2**32, (4, 128), dtype=np.uint64).astype(np.uint32)  # E, F, B, C
    sig[1, :13] = sig[2, :13]  # F shares band 0 (rows 0-12) with B
    sig[3] = sig[2]
    for band in range(1, 9):  # C differs from B once in every other band: band 0 only
        sig[3, band * 13] ^= 1
    sig[3, 117:] ^= 1  # and in 11 unused positions: 128 - 8 - 11 = 109 agree
    sig[3, 13 + 1 : 13 + 7] ^= 1  # 6 more in band 1: 103 agree, just over 0.8 * 128
    keep = np.array([True, False, True, True])
    rep = np.array([0, 0, 2, 3])
    split = np.zeros(4, np.int8)
    # four long documents (no exact confirmation), their signatures stored as the engine would
    docs = DocIndex(
        [np.zeros(4000, np.uint16)], np.array([0, 4]), np.arange(0, 4000, 1000), np.arange(1000, 5000, 1000)
    )
    sc = open_scratch(tmp_path, {"test": 1}, n_docs=4, num_perm=128, bands=cfg.bands)
    write_signatures(sc, docs, sig, cfg)
    assert dedup.residual_pass(sc, docs, keep, rep, split, 0, cfg)
    assert keep.tolist() == [True, False, True, False] and rep.tolist() == [0, 0, 2, 2]
    assert not dedup.residual_pass(sc, docs, keep, rep, split, 1, cfg)


def test_memory_cap_and_tmp_dir_give_the_same_dataset(tmp_path, hostile):
    """A cap small enough for many bucket and verify passes, scratch in a directory of the
    user's: the same bytes as the default run, and the scratch is gone afterwards."""
    paths, _ = hostile
    opts = PrepareOptions(val_fraction=0.2, shard_tokens=50_000)
    prepare(paths, tmp_path / "a", options=opts, progress=False)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    s = prepare(paths, tmp_path / "b", options=opts, progress=False, memory_gb=0.000004, tmp_dir=scratch)
    assert s["dedup"]["removed_docs"] > 0
    assert dir_digest(tmp_path / "a") == dir_digest(tmp_path / "b")
    assert list(scratch.iterdir()) == []


def test_pass_two_streamed_in_small_batches_gives_the_same_dataset(tmp_path, hostile):
    """Pass 2 and removed.parquet read the first pass's docs.parquet back in batches rather
    than hold it whole: 16-row batches (many per input file, each file's last one partial,
    over several first-pass shards) must give the bytes of the default one-batch-a-file run."""
    paths, _ = hostile
    opts = PrepareOptions(val_fraction=0.2, shard_tokens=20_000)
    s = prepare(paths, tmp_path / "a", options=opts, progress=False)
    prepare(paths, tmp_path / "b", options=opts, progress=False, batch_rows=2)
    assert s["dedup"]["removed_docs"] > 0 and s["splits"]["train"]["shards"] >= 3
    a, b = dir_digest(tmp_path / "a"), dir_digest(tmp_path / "b")
    assert {"docs.parquet", "removed.parquet", "train_000002.bin"} <= set(a)
    assert a == b


def test_plan_holds_no_strings_and_reads_them_back_in_order(tmp_path, hostile):
    """The plan keeps ~35 bytes of numbers a document (the strings stay in the stages'
    docs.parquet, ~100 bytes a document more), and its batches give the stages' rows in order."""
    import dataclasses

    import pyarrow as pa
    import pyarrow.parquet as pq

    from fwpipe.pipeline import dedup_passes as dedup
    from fwpipe.pipeline.split import val_threshold

    paths, _ = hostile
    stages = [tmp_path / f"stage{i}" for i in range(len(paths))]
    for p, st in zip(paths, stages):
        prepare([p], st, options=PrepareOptions(val_fraction=0.0, dedup="none", shard_tokens=20_000), progress=False)
    p = dedup.plan(stages, "near", threshold=val_threshold(0.2), force_val=True, names=[str(x) for x in paths])
    n = len(p.keep)
    arrays = [getattr(p, f.name) for f in dataclasses.fields(p) if isinstance(getattr(p, f.name), np.ndarray)]
    assert not any(isinstance(getattr(p, f.name), pa.Table) for f in dataclasses.fields(p))
    assert sum(a.nbytes for a in arrays) <= 36 * n + 8 * len(stages)
    parts = list(p.batches(["id", "source_file", "shard"], batch_rows=7))
    assert [r0 for r0, _ in parts] == list(np.cumsum([0] + [t.num_rows for _, t in parts])[:-1])
    ids = [i for _, t in parts for i in t["id"].to_pylist()]
    assert ids == [i for st in stages for i in pq.read_table(st / "docs.parquet")["id"].to_pylist()] and len(ids) == n
    files = [f for _, t in parts for f in t["source_file"].to_pylist()]
    assert sorted(set(files)) == sorted(str(x) for x in paths) and files == sorted(
        files, key=[str(x) for x in paths].index
    )
    shard = np.concatenate([t["shard"].to_numpy() for _, t in parts])
    assert (np.diff(shard) >= 0).all() and shard.max() == len(p.dataset.split("train").shards) - 1

"""The same tokens give the same audit whether stored as fwpipe, llm.c or nanoGPT files."""

from __future__ import annotations

import copy

from fwpipe.audit import audit
from fwpipe.dataset import read_manifest
from fwpipe.pipeline.prepare import prepare


def comparable(report: dict) -> dict:
    """The report minus what legitimately differs by layout: paths, timing, shard numbering."""
    r = copy.deepcopy(report)
    for key in ("dataset", "format", "seconds"):
        r.pop(key)
    r["near_duplicates"].pop("clusters_file", None)
    q = r.get("quality") or {}
    q.pop("file", None)  # quality.parquet is written in a fwpipe dataset only
    q.pop("removed_by_prepare", None)
    for rule in q.get("rules", []):
        for e in rule["examples"]:
            e.pop("id")  # docs.parquet's ids: a fwpipe dataset only
    for s in r["splits"].values():
        s.pop("shards")
    for group in r["exact_duplicates"]["largest"] + r["near_duplicates"]["largest"]:
        group["first"] = {k: group["first"][k] for k in ("split", "doc", "n_tokens")}
    for e in r["leakage"].get("ngram_examples", []):
        for side in ("val", "train"):
            e[side].pop("shard"), e[side].pop("offset")
    b = r.get("budget", {})
    for k in ("source_files", "tokens_per_source_file", "files_for_4_epochs", "files_for_1_epoch"):
        b.pop(k, None)  # only a fwpipe manifest knows the input files
    return r


def test_same_numbers_in_all_three_layouts(planted_reports):
    assert [r["format"] for r in planted_reports.values()] == ["fwpipe", "llmc", "nanogpt"]
    base = comparable(planted_reports["fwpipe"])
    for fmt in ("llmc", "nanogpt"):
        assert comparable(planted_reports[fmt]) == base, fmt
    assert planted_reports["fwpipe"]["budget"]["files_for_4_epochs"] is not None
    assert planted_reports["llmc"]["budget"]["files_for_4_epochs"] is None


def test_prepare_then_audit_end_to_end(sample1400, first150, tmp_path):
    """prepare's dataset and its nanoGPT export audit to the same numbers; clusters.parquet lands."""
    out = tmp_path / "ds"
    prepare([sample1400, first150], out, progress=False)
    rep = audit(out, budget_tokens=7.6e9, quality=False)  # quality across layouts: the planted reports
    man = read_manifest(out)
    for split in ("train", "val"):
        assert rep["splits"][split]["docs"] == man.split_totals(split).docs
        assert rep["splits"][split]["tokens"] == man.split_totals(split).tokens
        assert rep["splits"][split]["stream_tokens"] == man.split_totals(split).stream_tokens
    assert rep["budget"]["source_files"] == 2
    assert len({s["source"] for s in rep["sources"]}) == 2
    assert sum(s["docs"] for s in rep["sources"]) == rep["splits"]["train"]["docs"] + rep["splits"]["val"]["docs"]
    assert (out / "clusters.parquet").exists()
    # the same tokens as a nanoGPT directory (EOT after each doc)
    from fwpipe.dataset import open_dataset
    from tests.corpus import write_nanogpt

    ds = open_dataset(out)
    docs = {
        s: [ds.split(s).shards[k][a:b] for k, starts, ends in ds.split(s).documents() for a, b in zip(starts, ends)]
        for s in ("train", "val")
    }
    nano = audit(write_nanogpt(tmp_path / "nano", docs), budget_tokens=7.6e9, quality=False)
    assert comparable(nano) == {k: v for k, v in comparable(rep).items() if k != "sources"}

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fwpipe import shards, tokenizer
from fwpipe.dataset import read_manifest
from fwpipe.pipeline.prepare import PrepareOptions, prepare
from tests.corpus import dir_digest
from tests.pipeline.helpers import read_llmc_independently, split_docs_eot_before, write_parquet


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, sample1400, first150):
    out = tmp_path_factory.mktemp("ds") / "fw"
    summary = prepare([sample1400, first150], out, options=PrepareOptions(shard_tokens=200_000), progress=False)
    return out, summary


def test_shards_decode_to_tiktoken_ids_of_every_text(prepared, sample1400, first150):
    out, summary = prepared
    texts = (
        pq.read_table(sample1400, columns=["text"])["text"].to_pylist()
        + pq.read_table(first150, columns=["text"])["text"].to_pylist()
    )
    enc = tokenizer.get_encoding()
    docs = pq.read_table(out / "docs.parquet").to_pylist()
    assert len(docs) == len(texts) == summary["docs"]
    by_split = {}
    for split in ("train", "val"):
        files = sorted(out.glob(f"{split}_*.bin"))
        assert len(files) == summary["splits"][split]["shards"]
        by_split[split] = [read_llmc_independently(f) for f in files]
        for toks in by_split[split]:
            assert len(toks) <= 200_000 and toks[0] == 50256  # EOT before every document
    sources = {0: texts[:1400], 1: texts[1400:]}
    for d in docs:
        shard = by_split[d["split"]][d["shard"]]
        doc = shard[d["offset"] : d["offset"] + d["n_tokens"]]
        assert shard[d["offset"] - 1] == 50256
        text = sources[0 if "10bt" in d["source_file"] else 1][d["source_row"]]
        assert doc == enc.encode_ordinary(text)
    # every document exactly once, none straddling shards
    n_docs = sum(len(split_docs_eot_before(t)) for s in by_split.values() for t in s)
    assert n_docs == len(docs)


def test_manifest_totals_and_token_count_check(prepared):
    out, summary = prepared
    m = read_manifest(out)
    assert m.status == "complete"
    assert m.tokenizer["eot"] == 50256 and m.tokenizer["vocab_size"] == 50257
    assert [s["rows"] for s in m.sources] == [1400, 150]
    tc = m.token_count_check
    assert (tc["checked"], tc["differ"], tc["email_placeholder"], tc["real"]) == (150, 5, 5, 0)
    counts = np.load(out / "token_counts.npy")
    for i, split in enumerate(("train", "val")):
        sp = m.split_totals(split)
        stream = sum(len(shards.read_shard(out / f.file)) for f in sp.shard_files)
        assert stream == sp.stream_tokens == sp.tokens + sp.docs
        assert counts[i].sum() == stream and counts[i][50256] == sp.docs
        assert sum(sp.length_hist) == sp.docs
    assert m.split_totals("val").docs >= 1


@pytest.mark.slow
def test_same_bytes_for_any_workers_and_split_independent_of_order(tmp_path, sample1400, first150):
    a = prepare(
        [sample1400, first150], tmp_path / "a", options=PrepareOptions(shard_tokens=300_000), workers=1, progress=False
    )
    b = prepare(
        [sample1400, first150], tmp_path / "b", options=PrepareOptions(shard_tokens=300_000), workers=3, progress=False
    )
    assert dir_digest(tmp_path / "a") == dir_digest(tmp_path / "b")
    assert a["splits"] == b["splits"]
    prepare([first150, sample1400], tmp_path / "c", options=PrepareOptions(shard_tokens=300_000), progress=False)

    def split_of(d):
        return {
            (r["key_hash"], r["split"])
            for r in pq.read_table(tmp_path / d / "docs.parquet", columns=["key_hash", "split"]).to_pylist()
        }

    assert split_of("a") == split_of("c")


def test_rerun_does_nothing_and_changed_input_is_refused(tmp_path, first150):
    src = tmp_path / "in.parquet"
    shutil.copy(first150, src)
    prepare([src], tmp_path / "out", progress=False)
    before = dir_digest(tmp_path / "out")
    again = prepare([src], tmp_path / "out", progress=False)
    assert again["did_work"] is False and dir_digest(tmp_path / "out") == before
    t = pq.read_table(src).slice(0, 100)
    pq.write_table(t, src)
    from fwpipe.errors import DatasetMismatchError

    with pytest.raises(DatasetMismatchError, match="changed since"):
        prepare([src], tmp_path / "out", progress=False)
    assert dir_digest(tmp_path / "out") == before  # nothing touched
    s = prepare([src], tmp_path / "out", overwrite=True, progress=False)
    assert s["docs"] == 100


@pytest.mark.slow
def test_nanogpt_export_is_the_same_stream_with_eot_after(tmp_path, sample1400):
    prepare([sample1400], tmp_path / "fw", options=PrepareOptions(shard_tokens=150_000), progress=False)
    prepare(
        [sample1400], tmp_path / "ng", options=PrepareOptions(shard_tokens=150_000, format="nanogpt"), progress=False
    )
    for split in ("train", "val"):
        fw = [t for f in sorted((tmp_path / "fw").glob(f"{split}_*.bin")) for t in read_llmc_independently(f)]
        ng = np.fromfile(tmp_path / "ng" / f"{split}.bin", dtype="<u2").tolist()
        assert ng == fw[1:] + [50256]  # nanoGPT: EOT after each document
    docs = pq.read_table(tmp_path / "ng" / "docs.parquet").to_pylist()
    enc = tokenizer.get_encoding()
    texts = pq.read_table(sample1400, columns=["text"])["text"].to_pylist()
    bins = {s: np.fromfile(tmp_path / "ng" / f"{s}.bin", dtype="<u2") for s in ("train", "val")}
    for d in docs[:50] + docs[-50:]:
        assert bins[d["split"]][d["offset"] : d["offset"] + d["n_tokens"]].tolist() == enc.encode_ordinary(
            texts[d["source_row"]]
        )
    assert not list((tmp_path / "ng").glob("*_0000*.bin"))  # only train.bin / val.bin


def test_null_and_empty_texts_are_skipped_and_counted(tmp_path):
    rows = {"text": ["one doc", None, "", "two doc", "three"], "id": ["a", "b", "c", "d", "e"]}
    src = write_parquet(tmp_path / "x.parquet", rows)
    s = prepare([src], tmp_path / "out", progress=False)
    assert s["docs"] == 3 and s["skipped"] == {"null_text": 1, "empty_text": 1, "too_long": 0}
    assert s["splits"]["val"]["docs"] == 1  # two or more documents always give one val document


@pytest.mark.parametrize("dedup", ["near", "none"])
def test_input_with_no_usable_text_gives_an_empty_dataset_and_a_warning(tmp_path, dedup):
    from click.testing import CliRunner

    from fwpipe.cli import main

    src = write_parquet(tmp_path / "x.parquet", {"text": pa.array([None, "", None], pa.string())})
    r = CliRunner().invoke(main, ["prepare", str(src), "-o", str(tmp_path / "out"), "--dedup", dedup])
    assert r.exit_code == 0, r.output
    assert "warning: the dataset holds no documents" in r.output
    assert read_manifest(tmp_path / "out").skipped == {"null_text": 2, "empty_text": 1, "too_long": 0}


def test_text_key_fallback_and_documents_longer_than_a_shard(tmp_path):
    long_text = "word " * 300
    src = write_parquet(tmp_path / "x.parquet", {"text": ["short one", long_text, "short two", "short three"]})
    s = prepare([src], tmp_path / "out", options=PrepareOptions(shard_tokens=100), progress=False)
    assert s["skipped"]["too_long"] == 1 and s["docs"] == 3


def test_cli_json_dash_is_the_summary_alone_on_stdout(first150, tmp_path):
    from click.testing import CliRunner

    from fwpipe.cli import main

    r = CliRunner().invoke(
        main, ["prepare", str(first150), "-o", str(tmp_path / "ds"), "--dedup", "none", "--json", "-"]
    )
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    m = read_manifest(tmp_path / "ds")
    assert s["docs"] == 150 and s["splits"]["train"]["tokens"] == m.splits["train"].tokens

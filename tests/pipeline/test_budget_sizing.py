"""prepare --budget-tokens: stops at the exact train document the budget needs."""

import json

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from fwpipe.cli import main
from fwpipe.dataset import read_manifest
from fwpipe.errors import BudgetError, ConfigError
from fwpipe.pipeline.prepare import PrepareOptions, prepare
from tests.corpus import dir_digest


@pytest.fixture(scope="module")
def full(tmp_path_factory, sample1400, first150):
    out = tmp_path_factory.mktemp("full") / "ds"
    prepare([first150, sample1400], out, options=PrepareOptions(shard_tokens=200_000), progress=False)
    docs = pl.read_parquet(out / "docs.parquet").with_columns(pl.col("source_file").cast(pl.String))
    docs = docs.with_columns(
        gpos=pl.col("source_row") + pl.when(pl.col("source_file") == str(first150)).then(0).otherwise(150)
    )
    return docs.sort("gpos")


@pytest.mark.parametrize("budget, max_epochs", [(500_000, 1.0), (2_000_000, 4.0), (150_000, 1.0)])
def test_stops_at_the_exact_document(tmp_path, full, first150, sample1400, budget, max_epochs):
    target = int(np.ceil(budget / max_epochs))
    train = full.filter(pl.col("split") == "train")
    cum = np.cumsum(train["n_tokens"].to_numpy() + 1)
    k = int(np.searchsorted(cum, target))  # first train document reaching the target
    stop_gpos = int(train["gpos"][k])
    s = prepare(
        [first150, sample1400],
        tmp_path / "b",
        options=PrepareOptions(shard_tokens=200_000, budget_tokens=budget, max_epochs=max_epochs),
        progress=False,
    )
    assert s["splits"]["train"]["stream_tokens"] == cum[k] >= target
    assert s["splits"]["val"]["docs"] == full.filter((pl.col("split") == "val") & (pl.col("gpos") <= stop_gpos)).height
    sizing = read_manifest(tmp_path / "b").sizing
    assert sizing.reached and sizing.train_stream_tokens == cum[k]
    assert sizing.epochs == pytest.approx(budget / cum[k])
    if stop_gpos < 150:
        assert sizing.inputs_unused == [str(sample1400)]
        assert sizing.inputs_used == [{"path": str(first150), "rows": stop_gpos + 1}]


@pytest.mark.slow
def test_budget_prepare_is_deterministic_and_workers_do_not_matter(tmp_path, first150, sample1400):
    opts = PrepareOptions(shard_tokens=100_000, budget_tokens=900_000)
    prepare([first150, sample1400], tmp_path / "a", options=opts, workers=1, progress=False)
    prepare([first150, sample1400], tmp_path / "b", options=opts, workers=3, progress=False)
    assert dir_digest(tmp_path / "a") == dir_digest(tmp_path / "b")


def test_shortfall_says_how_many_more_files(tmp_path, first150):
    r = CliRunner().invoke(
        main, ["prepare", str(first150), "-o", str(tmp_path / "s"), "--budget-tokens", "1e6", "--max-epochs", "1"]
    )
    assert r.exit_code == 0, r.output
    sizing = read_manifest(tmp_path / "s").sizing
    assert not sizing.reached
    train = sizing.train_stream_tokens
    assert sizing.shortfall_tokens == 1_000_000 - train
    assert sizing.files_needed == int(np.ceil(1_000_000 / train))
    assert f"{sizing.more_files_needed} more file" in r.output


def test_bad_budget_values(tmp_path, first150):
    with pytest.raises(BudgetError):
        prepare([first150], tmp_path / "x", options=PrepareOptions(budget_tokens=0), progress=False)
    with pytest.raises(ConfigError):
        prepare([first150], tmp_path / "x", options=PrepareOptions(budget_tokens=10, max_epochs=0), progress=False)
    r = CliRunner().invoke(main, ["prepare", str(first150), "-o", str(tmp_path / "y"), "--budget-tokens", "-5"])
    assert r.exit_code != 0 and "budget" in r.output.lower()


def test_train_takes_the_budget_from_the_manifest_and_says_how_epochs_change(tmp_path, first150, sample1400):
    ds = tmp_path / "ds"
    prepare([first150, sample1400], ds, options=PrepareOptions(budget_tokens=1_000_000, max_epochs=2), progress=False)
    r = CliRunner().invoke(
        main,
        [
            "train",
            str(ds),
            "--config",
            "tiny-cpu",
            "--dry-run",
            "--out",
            str(tmp_path / "run"),
            "--json",
            str(tmp_path / "p.json"),
        ],
    )
    assert r.exit_code == 0, r.output
    plan = json.loads((tmp_path / "p.json").read_text())
    assert plan["budget_tokens"] == 1_000_000 and plan["budget_source"] == "manifest"
    assert "budget taken from the manifest" in r.output
    r = CliRunner().invoke(
        main,
        [
            "train",
            str(ds),
            "--config",
            "tiny-cpu",
            "--dry-run",
            "--out",
            str(tmp_path / "run"),
            "--budget-tokens",
            "3e6",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "this budget runs" in r.output and "(3x)" in r.output


@pytest.mark.parametrize("dedup", ["near", "none"])
def test_inputs_after_the_budget_are_never_read(tmp_path, sample1400, first150, dedup):
    # the third input's data pages are destroyed (its footer is intact): reading it would fail
    import pyarrow.parquet as pq

    bad = tmp_path / "damaged.parquet"
    pq.write_table(pq.read_table(sample1400), bad, row_group_size=200)
    raw = bytearray(bad.read_bytes())
    raw[1000 : len(raw) // 2] = bytes(len(raw) // 2 - 1000)
    bad.write_bytes(bytes(raw))
    s = prepare(
        [sample1400, first150, bad],
        tmp_path / "out",
        options=PrepareOptions(budget_tokens=1_000_000, dedup=dedup),
        progress=False,
    )
    sizing = s["sizing"]
    assert sizing["reached"] and sizing["inputs_unused"] == [str(first150), str(bad)]
    assert s["tokens_this_run"] <= 2_400_000  # the first file's tokens, nothing after it

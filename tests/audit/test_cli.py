"""`fwpipe audit` through click: exit codes, outputs, and one-line errors for bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from fwpipe.cli import main
from fwpipe.shards import write_shard
from tests.corpus import write_fwpipe


def run(*args):
    return CliRunner().invoke(main, ["audit", *map(str, args)])


def test_cli_outputs_and_fail_on(planted_dirs, tmp_path):
    r = run(
        planted_dirs["llmc"],
        "--budget-tokens",
        "7.6e9",
        "--json",
        tmp_path / "a.json",
        "--html",
        tmp_path / "a.html",
        "--fail-on",
        "leakage.exact_docs>5",
    )
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "a.json").read_text())["leakage"]["exact_docs"] == 2
    assert (tmp_path / "a.html").read_text().startswith("<!doctype html>")
    r = run(planted_dirs["llmc"], "--fail-on", "leakage.near_docs>0", "--fail-on", "exact_duplicates.docs>100")
    assert r.exit_code == 1
    assert "fail-on: leakage.near_docs>0 holds (leakage.near_docs = 4)" in r.output
    assert "exact_duplicates.docs>100" not in r.output.split("fail-on:", 1)[1]


def test_cli_json_to_stdout(planted_dirs):
    r = run(planted_dirs["nanogpt"], "--json", "-")
    assert r.exit_code == 0
    assert json.loads(r.output)["format"] == "nanogpt"


def _error_line(r) -> str:
    assert r.exit_code != 0
    assert r.output.startswith("Error: "), r.output
    return r.output.splitlines()[0]


def test_bad_inputs_give_one_line_errors(tmp_path, planted_dirs, sample1400):
    (tmp_path / "empty").mkdir()
    assert "no manifest.json and no .bin" in _error_line(run(tmp_path / "empty"))
    assert "no such dataset" in _error_line(run(tmp_path / "missing"))
    write_fwpipe(tmp_path / "nodocs", {"train": [[]], "val": [[]]})
    assert "holds no documents" in _error_line(run(tmp_path / "nodocs"))
    bad = tmp_path / "trunc"
    bad.mkdir()
    write_shard(bad / "fineweb_train_000000.bin", np.arange(100, dtype=np.uint16))
    with open(bad / "fineweb_train_000000.bin", "ab") as f:
        f.write(b"\0\0")
    assert "header says 100 tokens" in _error_line(run(bad))
    assert "a parquet file, not a token dataset" in _error_line(run(sample1400))
    (tmp_path / "notes.txt").write_text("hello")
    assert "not a token dataset" in _error_line(run(tmp_path / "notes.txt"))
    assert "not a positive number" in _error_line(run(planted_dirs["llmc"], "--budget-tokens", "0"))
    assert "not a positive number" in _error_line(run(planted_dirs["llmc"], "--budget-tokens=-1e9"))
    assert "is not a rule" in _error_line(run(planted_dirs["llmc"], "--fail-on", "leakage.near_docs"))
    assert "threshold 1.5" in _error_line(run(planted_dirs["llmc"], "--threshold", "1.5"))
    assert "shingle 0" in _error_line(run(planted_dirs["llmc"], "--shingle", "0"))


@pytest.mark.parametrize("layout", ["fwpipe", "nanogpt"])
def test_no_val_split_runs_and_says_why(tmp_path, planted, layout):
    if layout == "fwpipe":
        root = write_fwpipe(tmp_path / "ds", {"train": [planted.train[:20]]})
    else:
        root = tmp_path / "nano"
        root.mkdir()
        from tests.corpus import stream

        stream(planted.train[:20], eot_after=True).tofile(root / "train.bin")
    r = run(root, "--fail-on", "leakage.near_docs>0")
    assert r.exit_code == 0, r.output
    assert "no val split" in r.output


def test_params_alone_budgets_chinchillas_20_tokens_per_param(planted_dirs):
    """`--params` without `--budget-tokens` is not ignored: as in `fwpipe estimate`, the budget is
    20 tokens per parameter (Hoffmann et al. 2022), said on stderr; a budget rule then applies."""
    r = CliRunner().invoke(
        main, ["audit", str(planted_dirs["llmc"]), "--params", "1e5", "--json", "-", "--fail-on", "budget.epochs>1e9"]
    )
    assert r.exit_code == 0, r.output
    b = json.loads(r.stdout)["budget"]
    assert b["budget_tokens"] == 2_000_000 and b["params"] == 100_000 and b["tokens_per_param"] == 20
    assert "Chinchilla's 20 tokens x 100K params = 2M tokens" in r.stderr

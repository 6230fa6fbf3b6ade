"""`fwpipe diagnose RUN DATASET --probe`: real branches from last.pt, the run directory untouched."""

from __future__ import annotations

import hashlib
import json
import math

import polars as pl
import pytest
from click.testing import CliRunner

from fwpipe.cli import main
from fwpipe.train.config import load_config
from fwpipe.train.loop import plan_run, train
from tests.train.conftest import write_dataset


@pytest.mark.slow
def test_probe_branches_and_leaves_the_run_alone(tmp_path, sample1400):
    texts = pl.read_parquet(sample1400, columns=["text"])["text"].to_list()
    data = write_dataset(tmp_path / "data", texts[:20], texts[1300:1310])
    fresh = write_dataset(tmp_path / "fresh", texts[100:140], texts[1300:1310])
    cfg = load_config(
        "tiny-cpu",
        {
            "n_layer": 1,
            "n_head": 1,
            "n_embd": 16,
            "block_size": 32,
            "batch_size": 4,
            "warmup_iters": 2,
            "log_interval": 5,
            "eval_interval": 10,
            "eval_iters": 2,
        },
    )
    run = tmp_path / "run"
    train(plan_run(data, 20 * cfg.tokens_per_iter, cfg, out=run, device="cpu"))
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in run.iterdir()}
    r = CliRunner().invoke(
        main,
        [
            "diagnose",
            str(run),
            str(data),
            "--probe",
            "--probe-iters",
            "2",
            "--fresh",
            str(fresh),
            "--no-leakage",
            "--json",
            str(tmp_path / "d.json"),
        ],
    )
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    cost = next(i for i, ln in enumerate(lines) if ln.startswith("probe: 4 branches"))
    assert "x 2 iterations from iteration 20" in lines[cost] and f"{run} is only read" in lines[cost]
    assert cost < lines.index("probe: repeated")  # the cost is stated before any branch trains
    p = json.loads((tmp_path / "d.json").read_text())["probe"]
    assert set(p["arms"]) == {"repeated", "fresh", "lr x0.3", "lr x3"} and p["iters"] == 2
    assert all(math.isfinite(a["val_loss"]) for a in p["arms"].values())
    assert p["arms"]["lr x3"]["val_loss"] != p["arms"]["repeated"]["val_loss"]  # real, different branches
    assert any(ln.strip().startswith("fresh") and "vs repeated" in ln for ln in lines)
    assert {q.name: hashlib.sha256(q.read_bytes()).hexdigest() for q in run.iterdir()} == before
    bad = CliRunner().invoke(main, ["diagnose", str(run), "--probe"])
    assert bad.exit_code == 1 and "--probe needs a run directory and its DATASET" in bad.output

"""The diagnosis without training: the fit's range, the what-if table, logs, the CLI's JSON."""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

from fwpipe import diagnosis
from fwpipe.cli import main
from fwpipe.diagnosis import trend as T
from fwpipe.diagnosis.logs import parse_log


def test_trend_is_given_only_inside_the_fit_range_and_under_the_unigram_entropy():
    assert T.trend(400e6, 8e9)["range"] == "in" and T.trend(400e6, 8e9)["loss"] is not None
    small = T.trend(30e3, 1e5)
    assert (
        small["loss"] is None and "70M" in small["why"] and T.fit_loss(30e3, 1e5) > math.log(50257)
    )  # the raw formula: ~50 nats
    assert T.trend(40e6, 4e9)["range"] == "extrapolated"
    capped = T.trend(400e6, 8e9, unigram_entropy=2.0)  # a trend above the unigram entropy is never printed
    assert capped["loss"] is None and "unigram" in capped["why"]


def test_what_if_for_the_seed_run_ranks_the_levers():
    rows = {r["row"]: r for r in T.what_if(40.56e6, 7.6e9, 0.3e9)}
    assert rows["as is"]["epochs"] == pytest.approx(25.33, abs=0.01)
    assert rows["4x unique data"]["epochs"] == pytest.approx(6.33, abs=0.01)
    assert rows["compute-optimal model for the same compute"]["tokens_per_param"] == pytest.approx(20)
    gains = {k: r["loss_change"] for k, r in rows.items() if k != "as is"}
    assert all(v is not None and v < 0 for v in gains.values())
    assert gains["both"] < min(gains["4x unique data"], gains["compute-optimal model for the same compute"])


def test_seed_plan_numbers_rank_capacity_first():
    r = diagnosis.diagnose(diagnosis.Inputs(evals=[], n_params=40.56e6, budget_tokens=7.6e9, unique_tokens=0.3e9))
    s = {c["name"]: c["score"] for c in r["causes"]}
    assert r["verdict"] == "capacity" and s["capacity"] > s["repetition"] > 0


def test_logs_parse_and_a_bad_line_is_named(tmp_path):
    p = tmp_path / "train.log"
    p.write_text(
        "tokens per iteration will be: 512\nstep 0: train loss 5.5000, val loss 5.5100\n"
        "iter 0: loss 5.5, time 12.00ms, mfu -100.00%\niter 10: loss 4.1, time 9.00ms, mfu 1.00%\n"
        "step 25: train loss 3.0000, val loss 3.1000\n"
    )
    fmt, evals, train = parse_log(p, 512)
    assert (
        fmt == "nanogpt"
        and [e["tokens"] for e in evals] == [0, 12800]
        and train[1] == {"iter": 10, "loss": 4.1, "tokens": 5120}
    )
    q = tmp_path / "main.log"
    q.write_text("s:0 tel:5.51\ns:0 trl:5.5\ns:10 trl:4.1\ns:25 tel:3.1\n")
    fmt, evals, train = parse_log(q, 512)
    assert fmt == "llmc" and [e["val_loss"] for e in evals] == [5.51, 3.1] and len(train) == 2
    p.write_text("step 0: train loss 5.5, val loss 5.51\nstep 25: train loss three, val loss 3.1\n")
    r = CliRunner().invoke(main, ["diagnose", str(p), "--params", "40M", "--tokens-per-iter", "512"])
    assert r.exit_code == 1 and r.output.count("\n") == 1 and f"{p}:2" in r.output


def test_json_shape_and_number_flags():
    r = CliRunner().invoke(
        main, ["diagnose", "--params", "40.56M", "--budget-tokens", "7.6B", "--unique-tokens", "0.3b", "--json", "-"]
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert set(out) >= {"verdict", "causes", "inputs"} and out["verdict"] == out["causes"][0]["name"]
    assert [c["name"] for c in out["causes"]] and {c["name"] for c in out["causes"]} == set(diagnosis.CAUSES)
    for c in out["causes"]:
        assert set(c) == {"name", "score", "evidence", "advice", "expected_loss_change"}
    assert out["inputs"]["unique_tokens"] == 0.3e9 and out["inputs"]["budget_tokens"] == 7.6e9
    bad = CliRunner().invoke(main, ["diagnose", "--params", "forty"])
    assert (
        bad.exit_code == 1 and "'--params': 'forty' is not a number of parameters" in bad.output
    )  # the shared Count type


def test_audit_weighs_the_data_side_against_capacity_in_the_same_nats():
    from fwpipe.audit.run import diagnosis_verdict

    b = {"params": 40.56e6, "budget_tokens": 7.6e9, "unique_tokens": 0.3e9}
    lk = {"val_docs": 100, "train_docs": 10_000, "exact_fraction": 0.0, "near_fraction": 0.02}
    v = diagnosis_verdict(b, lk)
    s = {
        c["name"]: c["score"]
        for c in diagnosis.diagnose(
            diagnosis.Inputs(evals=[], n_params=40.56e6, budget_tokens=7.6e9, unique_tokens=0.3e9, leakage=lk)
        )["causes"]
    }
    assert v["section"] == "diagnosis" and v["level"] == "warn"
    assert f"repetition {s['repetition']:.3f}" in v["text"] and f"capacity {s['capacity']:.3f}" in v["text"]
    trend = T.what_if(40.56e6, 7.6e9, 0.3e9)[0]["trend"]["loss"]  # no curve yet: the fit's trend stands in for val loss
    assert s["leakage"] == pytest.approx(0.02 * trend) and f"leakage {s['leakage']:.3f}" in v["text"]


def test_at_eval_reports_a_plateau_with_the_ranked_causes():
    flat = [
        {"iter": i, "tokens": 1000 * 2**i, "epoch": 0.1 * 2**i, "val_loss": 3.0 - 0.001 * i, "train_loss": 3.0}
        for i in range(5)
    ]
    out = diagnosis.at_eval(
        flat, n_params=1e6, budget_tokens=64_000, unique_tokens=10_000_000, eval_tokens=10**6, eval_iters=50
    )
    assert out["plateau"] and out["improvement_per_doubling"] == pytest.approx(0.001)
    d = out["diagnosis"]
    assert d["text"][0].startswith("plateau: val loss drops 0.001 nats per doubling") and d["text"][1].startswith(
        "verdict:"
    )
    falling = [dict(e, val_loss=3.0 - 0.2 * i) for i, e in enumerate(flat)]
    assert diagnosis.at_eval(falling, n_params=1e6)["plateau"] is False and "diagnosis" not in diagnosis.at_eval(
        falling, n_params=1e6
    )

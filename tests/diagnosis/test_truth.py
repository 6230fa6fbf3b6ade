"""Truth tests: each planted cause is the verdict, and a log of a run is diagnosed like the run."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from fwpipe import diagnosis
from fwpipe.cli import main
from fwpipe.cli.diagnose import gather
from fwpipe.diagnosis.logs import write_llmc, write_nanogpt
from fwpipe.train.html import read_run

pytestmark = pytest.mark.slow


def _diag(run, dataset=None, **kw):
    return diagnosis.diagnose(gather(run, dataset, **kw))


def _scores(result):
    return {c["name"]: c["score"] for c in result["causes"]}


@pytest.mark.parametrize("cause", ["repetition", "capacity", "learning_rate", "eval_noise", "still_improving"])
def test_the_planted_cause_ranks_first(planted, cause):
    r = _diag(planted(cause))
    s = _scores(r)
    assert r["verdict"] == cause, s
    assert r["causes"][0]["name"] == cause and r["causes"][0]["score"] > 0
    assert s[cause] > 1.2 * max(v for k, v in s.items() if k != cause), s  # first by a margin, not a tie


def test_repetition_evidence_is_the_gap_on_repeated_text(planted):
    rep = next(c for c in _diag(planted("repetition"))["causes"] if c["name"] == "repetition")
    healthy = next(c for c in _diag(planted("still_improving"))["causes"] if c["name"] == "repetition")
    assert rep["evidence"]["epochs"] > 4 and rep["evidence"]["train_val_gap"] > 0.1
    assert healthy["evidence"]["epochs"] < 1 and healthy["score"] == 0  # fresh data: no repetition score at all


def test_eval_noise_says_how_many_eval_iters_resolve_it(planted):
    c = next(c for c in _diag(planted("eval_noise"))["causes"] if c["name"] == "eval_noise")
    ev = c["evidence"]
    assert ev["eval_iters"] == 1 and ev["noise_band"] > ev["judged_change"]
    assert ev["eval_iters_to_resolve"] > 1 and f"{ev['eval_iters_to_resolve']:,}" in c["advice"]


def test_leakage_is_flagged_with_the_dataset(planted, datasets):
    r = _diag(planted("leakage"), datasets["leaky_ids"])
    lk = next(c for c in r["causes"] if c["name"] == "leakage")
    assert lk["evidence"]["flagged"] and lk["evidence"]["exact_fraction"] == 1.0 and lk["score"] > 0
    clean = next(c for c in _diag(planted("leakage"), datasets["fresh_ids"])["causes"] if c["name"] == "leakage")
    assert clean["evidence"]["checked"] and not clean["evidence"]["flagged"] and clean["score"] == 0


@pytest.mark.parametrize("fmt", ["nanogpt", "llmc"])
def test_a_log_of_the_run_is_diagnosed_like_the_run(planted, tmp_path, fmt):
    run = planted("repetition")
    plan, records = read_run(run)
    log = tmp_path / f"{fmt}.log"
    log.write_text(
        ("banner: not a loss line\n" if fmt == "nanogpt" else "")
        + (write_nanogpt if fmt == "nanogpt" else write_llmc)(records)
    )
    from_run = _diag(run)
    args = [
        "diagnose",
        str(log),
        "--params",
        str(plan["params_non_embedding"]),
        "--tokens-per-iter",
        str(plan["tokens_per_iter"]),
        "--unique-tokens",
        str(plan["unique_tokens"]),
        "--eval-tokens",
        str(from_run["inputs"]["eval_tokens"]),
        "--json",
        "-",
    ]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    from_log = json.loads(res.output)
    assert from_log["verdict"] == from_run["verdict"] == "repetition"
    assert [c["name"] for c in from_log["causes"]][:3] == [c["name"] for c in from_run["causes"]][:3]
    if fmt == "nanogpt":  # the same eval-mode losses, printed to 4 decimals
        for name, v in _scores(from_run).items():
            assert _scores(from_log)[name] == pytest.approx(v, abs=2e-3), name

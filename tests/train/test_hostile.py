"""A hostile user's train, report, sample and eval (issue 19): damaged run directories, a
checkpoint whose config implies huge tensors, /dev/zero as HellaSwag, `$` in a config name."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from .test_cli import TINY, assert_error, cli
from .test_safety import BUDGET, done_run  # noqa: F401 - the fixture: one finished tiny run


@pytest.mark.parametrize(
    "damage,want",
    [
        ("plan a list", "plan.json: not a plan (a JSON list"),
        ("plan not utf-8", "plan.json: not JSON"),
        ("loss a string", "'loss' is \"abc\", not a number"),
        ("metrics not utf-8", "metrics.jsonl: not UTF-8"),
    ],
)
def test_report_on_a_damaged_run_is_one_line(tmp_path, done_run, damage, want):  # noqa: F811
    run = shutil.copytree(done_run, tmp_path / "run")
    if damage == "plan a list":
        (run / "plan.json").write_text("[1, 2]")
    elif damage == "plan not utf-8":
        (run / "plan.json").write_bytes(b'{"name": "\xff\xfe"}')
    elif damage == "loss a string":
        lines = (run / "metrics.jsonl").read_text().splitlines()
        i = next(k for k, ln in enumerate(lines) if json.loads(ln).get("kind") == "train")
        lines[i] = json.dumps({**json.loads(lines[i]), "loss": "abc"})
        (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    else:
        (run / "metrics.jsonl").write_bytes((run / "metrics.jsonl").read_bytes() + b"\xff\xfe\n")
    assert_error(cli("report", run), want)
    assert (
        not (run / "report.html").exists()
        or (run / "report.html").read_bytes() == (done_run / "report.html").read_bytes()
    )


@pytest.mark.parametrize("key,value", [("n_embd", 32768), ("vocab_size", 10**9)])
def test_a_checkpoint_whose_config_implies_huge_tensors_is_refused_before_building(tmp_path, done_run, key, value):  # noqa: F811
    import resource

    ck = torch.load(done_run / "last.pt", weights_only=True)
    small = {"model": ck["model"], "config": {**ck["config"], "model": {**ck["config"]["model"], key: value}}}
    torch.save(small, tmp_path / "huge.pt")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    r = cli("sample", tmp_path / "huge.pt", "--device", "cpu", "--tokens", 3)
    assert_error(r, "huge.pt: its model state does not fit its config", "the file holds")
    grew_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grew_kb < 512 * 1024  # a model of that config is >= 4 GB of fp32


def test_eval_hellaswag_from_dev_zero_is_one_line_not_a_memory_blow_up(done_run):  # noqa: F811
    assert_error(
        cli("eval", done_run / "last.pt", "--hellaswag", "/dev/zero", "--device", "cpu"),
        "/dev/zero: not a regular file",
    )


def test_a_dollar_in_the_config_name_draws_the_title(tmp_path, tiny_data):
    out = tmp_path / "run"
    r = cli(
        "train", tiny_data, "--budget-tokens", BUDGET, "--out", out, *TINY, "--set", "name=run$^$1"
    )  # mathtext: "$^$" fails to parse
    assert r.exit_code == 0, r.output
    assert (out / "loss.png").stat().st_size > 0
    r = cli("report", out)
    assert r.exit_code == 0, r.output

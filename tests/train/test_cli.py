"""The commands through click's CliRunner: plans, runs, and every bad input as one error line."""

import json
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

from fwpipe.cli import main

TINY = [
    "--config",
    "tiny-cpu",
    "--device",
    "cpu",
    "--set",
    "n_layer=1",
    "--set",
    "n_embd=32",
    "--set",
    "n_head=2",
    "--set",
    "block_size=32",
    "--set",
    "batch_size=4",
    "--set",
    "eval_interval=3",
    "--set",
    "eval_iters=1",
]


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_error(result, *fragments):
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("Error: ") and len(lines) <= 2 and "Traceback" not in result.output, result.output
    for f in fragments:
        assert f in result.output, result.output


def test_help_does_not_import_torch():
    for args in (["--help"], ["train", "--help"], ["sample", "--help"]):
        code = f"import sys; from fwpipe.cli import main\ntry:\n main({args!r})\nexcept SystemExit: pass\nassert 'torch' not in sys.modules"
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_dry_run_prints_and_writes_the_plan(tmp_path, tiny_data):
    r = cli(
        "train",
        tiny_data,
        "--budget-tokens",
        "1e5",
        "--dry-run",
        "--json",
        tmp_path / "plan.json",
        "--out",
        tmp_path / "run",
        *TINY,
    )
    assert r.exit_code == 0, r.output
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["iterations"] == 782 and plan["tokens_per_iter"] == 128  # ceil(1e5 / (4 * 1 * 32))
    assert "782 iterations" in r.output and "epochs" in r.output
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_train_resume_and_sample(tmp_path, tiny_data):
    out = tmp_path / "run"
    r = cli("train", tiny_data, "--budget-tokens", 6 * 128, "--out", out, "--peak-tflops", 0.5, *TINY)
    assert r.exit_code == 0, r.output
    assert "iter 6/6 |" in r.output and "done: 6/6 iterations" in r.output and "eval iter 6" in r.output
    plan = json.loads((out / "plan.json").read_text())
    steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if '"train"' in line]
    for s in steps:  # --peak-tflops gives an MFU even on a CPU
        assert s["mfu"] == pytest.approx(s["tokens_per_s"] * plan["flops_per_token"] / 0.5e12)
    r = cli("train", tiny_data, "--budget-tokens", 6 * 128, "--out", out, *TINY)
    assert_error(r, "already holds a run", "--resume")
    r = cli("train", tiny_data, "--out", out, "--resume", "--device", "cpu")
    assert r.exit_code == 0 and "done: 6/6" in r.output, r.output
    r = cli("sample", out, "--tokens", 5, "--prompt", "Hello", "--device", "cpu")
    assert r.exit_code == 0 and r.output.startswith("Hello"), r.output


def test_no_dataset(tmp_path):
    assert_error(cli("train", tmp_path / "nope", "--budget-tokens", "1e6", *TINY), "no such dataset")


def test_budget_smaller_than_one_iteration(tiny_data, tmp_path):
    assert_error(cli("train", tiny_data, "--budget-tokens", 100, "--out", tmp_path, *TINY), "less than one iteration")


def test_config_typos(tiny_data, tmp_path):
    assert_error(cli("train", tiny_data, "--budget-tokens", "1e5", *TINY, "--set", "n_layr=2"), "n_layr", "n_layer")
    bad = tmp_path / "bad.toml"
    bad.write_text("learning_rate = 1e-3\n")
    assert_error(cli("train", tiny_data, "--budget-tokens", "1e5", "--config", bad), "learning_rate", "lr")
    assert_error(cli("train", tiny_data, "--budget-tokens", "1e5", "--config", "tiny-gpu"), "no such config")


def test_resume_without_checkpoint(tiny_data, tmp_path):
    assert_error(cli("train", tiny_data, "--resume", "--out", tmp_path / "empty", "--device", "cpu"), "no checkpoint")


def test_device_that_is_not_there(tiny_data, tmp_path):
    missing = "mps" if torch.cuda.is_available() else "cuda"
    assert_error(
        cli("train", tiny_data, "--budget-tokens", "1e5", "--out", tmp_path, *TINY, "--device", missing),
        f"--device {missing}",
    )


def test_too_many_epochs_refused_after_the_plan(tiny_data, tmp_path):
    # the plan first (stdout), then the refusal as the one Error line (stderr), exit 1
    r = cli(
        "train",
        tiny_data,
        "--budget-tokens",
        "2e7",
        "--out",
        tmp_path,
        "--dry-run",
        "--json",
        tmp_path / "plan.json",
        *TINY,
    )
    assert r.exit_code == 1, r.output
    assert r.stdout.startswith("plan: tiny-cpu") and "  epochs      " in r.stdout and "wasted" in r.stdout, r.stdout
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: 20M tokens is ") and "--allow-repeats" in err[0], r.stderr
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["refusal"]["message"] in err[0] and plan["epochs"] > 16
    # --json -: the JSON alone on stdout, refusal included; the Error line on stderr
    r = cli("train", tiny_data, "--budget-tokens", "2e7", "--out", tmp_path / "run", "--dry-run", "--json", "-", *TINY)
    assert r.exit_code == 1 and json.loads(r.stdout)["refusal"]["hint"] and r.stderr.startswith("Error: ")
    r = cli(
        "train", tiny_data, "--budget-tokens", "2e7", "--out", tmp_path / "run", "--dry-run", "--allow-repeats", *TINY
    )
    assert r.exit_code == 0 and "WARNING" in r.output


def test_missing_torch_is_a_hint(monkeypatch, tiny_data):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    assert_error(cli("train", tiny_data, "--budget-tokens", "1e6"), "PyTorch", "pip install")


def test_json_dash_puts_the_plan_alone_on_stdout(tiny_data, tmp_path):
    r = CliRunner().invoke(
        main,
        [
            "train",
            str(tiny_data),
            "--budget-tokens",
            "1e5",
            "--dry-run",
            "--json",
            "-",
            "--out",
            str(tmp_path / "run"),
            *map(str, TINY),
        ],
    )
    assert r.exit_code == 0, r.output
    plan = json.loads(r.stdout)  # nothing else on stdout
    assert plan["iterations"] == 782 and plan["unique_tokens"] > 0


def test_data_flag_still_works_with_one_deprecation_line(tiny_data, tmp_path):
    r = CliRunner().invoke(
        main,
        [
            "train",
            "--data",
            str(tiny_data),
            "--budget-tokens",
            "1e5",
            "--dry-run",
            "--out",
            str(tmp_path / "run"),
            *map(str, TINY),
        ],
    )
    assert r.exit_code == 0, r.output
    assert r.stderr.count("--data is deprecated") == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "782 iterations" in r.stdout
    assert_error(
        cli("train", tmp_path / "other", "--data", tiny_data, "--budget-tokens", "1e5", *TINY), "dataset is given twice"
    )

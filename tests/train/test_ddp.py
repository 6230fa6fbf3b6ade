"""DDP under torchrun on CPU (gloo, 2 processes), compared loss for loss with one process.

Each torchrun start costs ~10 s on the CI machine, so these are slow-marked and share runs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fwpipe.train.config import to_toml
from fwpipe.train.loop import plan_run, train

from .conftest import tiny_config
from .test_hellaswag import write_examples

ITERS = 20
REL = 1e-5  # the bound: same stream, same global batch; only float rounding may differ


def _cfg():
    # grad_accum 2: one micro-step per rank under 2 processes, two in one process; a checkpoint
    # every 5 iterations; 4 x 32-token sequences per micro-step keep a step cheap on a busy CPU
    return tiny_config(grad_accum=2, batch_size=4, block_size=32, eval_interval=5, log_interval=1)


def _metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _losses(records: list[dict]) -> dict[tuple[str, int], float]:
    out = {}
    for r in records:
        if r["kind"] == "train":
            out[("train", r["iter"])] = r["loss"]
        elif r["kind"] == "eval":
            out[("val", r["iter"])] = r["val_loss"]
            out[("eval-train", r["iter"])] = r["train_loss"]
            out[("hellaswag", r["iter"])] = r["hellaswag_correct"]  # summed over the ranks' shares
    return out


def _assert_same(got: list[dict], want: list[dict]) -> None:
    g, w = _losses(got), _losses(want)
    assert sorted(g) == sorted(w)  # every iteration logged once, evals at the same iterations
    for key in w:
        assert g[key] == pytest.approx(w[key], rel=REL), key
    assert [r["epoch"] for r in got if r["kind"] == "train"] == [r["epoch"] for r in want if r["kind"] == "train"]


def _torchrun(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("RANK", None), env.pop("WORLD_SIZE", None), env.pop("LOCAL_RANK", None)
    # --standalone: a rendezvous on a free local port; its own session so that cleanup reaches every rank
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "fwpipe",
        "train",
        *args,
    ]
    return subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def _finish(proc: subprocess.Popen, timeout: float = 240) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out
    finally:
        _kill_group(proc)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _children(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids += [int(k) for k in (task / "children").read_text().split()]
    return kids


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_data, fineweb_texts):
    """The config file, and the one-process reference run of it (in this process)."""
    root = tmp_path_factory.mktemp("ddp")
    cfg = _cfg()
    (root / "tiny.toml").write_text(to_toml(cfg))
    budget = ITERS * cfg.tokens_per_iter
    hellaswag = write_examples(root / "hellaswag.jsonl", fineweb_texts, 5, labels=[0, 1, 2, 3, 0])
    ref = root / "ref"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each torchrun rank (OMP_NUM_THREADS=1): the same kernels, the same sums
    try:
        train(plan_run(tiny_data, budget, cfg, out=ref, device="cpu", hellaswag=hellaswag))
    finally:
        torch.set_num_threads(threads)
    return root, budget, _metrics(ref)


def _train_args(root, tiny_data, budget, out) -> list[str]:
    """`fwpipe train` arguments of the two-rank runs: the setup's config, budget and HellaSwag file."""
    return [str(tiny_data), "--config", str(root / "tiny.toml"), "--budget-tokens", str(budget)] + [
        "--hellaswag",
        str(root / "hellaswag.jsonl"),
        "--out",
        str(out),
        "--device",
        "cpu",
    ]


@pytest.mark.slow
def test_two_ranks_log_the_one_rank_losses(setup, tiny_data):
    root, budget, ref = setup
    out = root / "two"
    rc, text = _finish(_torchrun(_train_args(root, tiny_data, budget, out), root))
    assert rc == 0, text[-3000:]
    assert text.count("processes   2") == 1  # the plan says so, printed by rank 0 alone
    assert text.count("eval iter 5:") == 1
    _assert_same(_metrics(out), ref)
    assert (out / "last.pt").exists() and not list(out.glob(".*.tmp"))


@pytest.mark.slow
def test_killed_rank_stops_the_run_and_resume_recovers(setup, tiny_data):
    root, budget, ref = setup
    out = root / "killed"
    args = _train_args(root, tiny_data, budget, out)
    proc = _torchrun(args, root)
    try:
        deadline = time.monotonic() + 120
        while not (out / "last.pt").exists():  # the first checkpoint, at iteration 5
            assert proc.poll() is None and time.monotonic() < deadline, "the run ended before its first checkpoint"
            time.sleep(0.02)
        workers = _children(proc.pid)
        assert len(workers) == 2
        os.kill(workers[1], signal.SIGKILL)  # rank 1 (torchrun starts the ranks in order)
        killed_at = time.monotonic()
        rc, text = _finish(proc, timeout=60)
        took = time.monotonic() - killed_at
    finally:
        _kill_group(proc)
    assert rc != 0, text[-3000:]
    done = [r["iter"] for r in _metrics(out) if r["kind"] == "train"]
    print(f"the run stopped {took:.1f}s after rank 1 was killed, {len(done)} iterations logged")
    assert took < 30, f"the run took {took:.0f}s to stop after a rank died"
    assert done and done[-1] < ITERS  # it stopped before the end
    alone = root / "alone"
    shutil.copytree(out, alone)

    # DDP resume continues exactly: the finished log equals the uninterrupted one-process run's
    rc, text = _finish(_torchrun([*args, "--resume"], root))
    assert rc == 0, text[-3000:]
    assert "resumed" in text
    _assert_same(_metrics(out), ref)

    # the same 2-process checkpoint resumed by one process (another world size, the same global batch)
    run = plan_run(tiny_data, None, out=alone, device="cpu", resume=True, hellaswag=root / "hellaswag.jsonl")
    assert run.checkpoint["iter"] >= 5
    train(run)
    _assert_same(_metrics(alone), ref)


def test_grad_accum_must_divide_over_ranks(tmp_path, tiny_data, monkeypatch):
    from fwpipe.errors import ConfigError

    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    cfg = _cfg()
    with pytest.raises(ConfigError, match="grad_accum=2 does not divide over 3 processes"):
        plan_run(tiny_data, 10 * cfg.tokens_per_iter, cfg, out=tmp_path / "three", device="cpu")
    assert not (tmp_path / "three").exists()


@pytest.mark.parametrize("env", [{"WORLD_SIZE": "2", "RANK": "2"}, {"WORLD_SIZE": "two"}])
def test_a_broken_torchrun_environment_is_one_error(env, monkeypatch):
    from fwpipe.errors import ConfigError
    from fwpipe.train import dist

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError, match="RANK|WORLD_SIZE"):
        dist.world()


def test_indivisible_accumulation_is_one_cli_line(tmp_path, tiny_data):
    from click.testing import CliRunner

    from fwpipe.cli import main

    env = {"WORLD_SIZE": "3", "RANK": "0", "LOCAL_RANK": "0"}  # what torchrun --nproc_per_node 3 sets for rank 0
    r = CliRunner().invoke(
        main,
        [
            "train",
            str(tiny_data),
            "--config",
            "tiny-cpu",
            "--budget-tokens",
            "1e5",
            "--set",
            "grad_accum=4",
            "--out",
            str(tmp_path / "run"),
            "--device",
            "cpu",
        ],
        env=env,
    )
    assert r.exit_code == 1
    assert r.output.startswith("Error: grad_accum=4 does not divide over 3 processes") and r.output.count("\n") == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_two_ranks_with_muon_log_the_one_rank_losses(setup, tiny_data):
    """The modern recipe (Muon for the matrices, AdamW for the rest, WSD) under DDP: DDP averages
    the gradients before any optimizer steps, so Muon orthogonalises the same matrix on every
    rank and the losses are the one-process losses."""
    root = setup[0]
    cfg = tiny_config(recipe="modern", grad_accum=2, batch_size=4, block_size=32, eval_interval=5, log_interval=1)
    (root / "modern.toml").write_text(to_toml(cfg))
    budget = 10 * cfg.tokens_per_iter
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(
            plan_run(tiny_data, budget, cfg, out=root / "modern-ref", device="cpu", hellaswag=root / "hellaswag.jsonl")
        )
    finally:
        torch.set_num_threads(threads)
    out = root / "modern-two"
    rc, text = _finish(
        _torchrun(
            [
                str(tiny_data),
                "--config",
                str(root / "modern.toml"),
                "--budget-tokens",
                str(budget),
                "--hellaswag",
                str(root / "hellaswag.jsonl"),
                "--out",
                str(out),
                "--device",
                "cpu",
            ],
            root,
        )
    )
    assert rc == 0, text[-3000:]
    assert "recipe modern" in text
    _assert_same(_metrics(out), _metrics(root / "modern-ref"))

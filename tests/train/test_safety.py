"""A hostile user's train and sample (issue 9): checkpoints are data, the run directory is
fwpipe's alone, and every bad input or failing disk ends in one error line with nothing lost."""

import builtins
import errno
import io
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from fwpipe import atomic
from fwpipe.errors import OutputError
from fwpipe.train import checkpoint
from fwpipe.train.loop import plan_run, train

from .conftest import tiny_config
from .test_cli import TINY, assert_error, cli

BUDGET = 6 * 128  # 6 iterations of the TINY config (4 x 32 tokens); evals and checkpoints at 3 and 6


@pytest.fixture(scope="module")
def done_run(tmp_path_factory, tiny_data):
    """A finished 6-iteration run to copy checkpoints and run directories from."""
    out = tmp_path_factory.mktemp("done") / "run"
    r = cli("train", tiny_data, "--budget-tokens", BUDGET, "--out", out, *TINY)
    assert r.exit_code == 0, r.output
    return out


def assert_stopped(result, *fragments):
    """A command that failed once running (after the plan was printed): exit 1, and stderr is one
    `Error:` line, the last line of the output, with no traceback."""
    assert result.exit_code == 1, result.output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: "), result.stderr
    assert result.output.strip().splitlines()[-1] == result.stderr.strip() and "Traceback" not in result.output
    for f in fragments:
        assert f in result.stderr, result.stderr


def copy_run(done_run, dest: Path) -> Path:
    shutil.copytree(done_run, dest)
    return dest


def metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


# ------------------------------------------------------------ checkpoints are data, never code


class Evil:
    """Unpickling this runs a shell command (what `fwpipe sample evil.pt` did before)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def test_a_checkpoint_that_carries_code_is_refused_and_never_run(tmp_path, tiny_data, done_run):
    marker = tmp_path / "pwned"
    good = torch.load(done_run / "last.pt", weights_only=True)
    evil = tmp_path / "evil.pt"
    torch.save({**good, "model": Evil(marker)}, evil)  # looks like a checkpoint, with a payload inside
    assert_error(cli("sample", evil, "--device", "cpu"), "evil.pt", "refused to load", "never code")
    assert not marker.exists()
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(evil, run / "last.pt")
    assert_error(cli("train", tiny_data, "--out", run, "--resume", "--device", "cpu"), "last.pt", "refused to load")
    assert not marker.exists()
    assert sorted(os.listdir(run)) == ["last.pt"]  # refused before writing anything


def test_checkpoints_hold_only_tensors_and_plain_values(done_run):
    ck = torch.load(done_run / "last.pt", weights_only=True)  # torch's restricted unpickler accepts it
    assert ck["iter"] == 6 and isinstance(ck["loader"]["index"], int) and isinstance(ck["evals"][-1]["epoch"], float)
    state = {"a": np.int64(3), "b": np.float32(0.5), "c": np.arange(3), "d": (1, [np.bool_(True), None, "x"])}
    out = checkpoint.plain(state)
    assert out["a"] == 3 and type(out["a"]) is int and type(out["b"]) is float and out["d"] == (1, [True, None, "x"])
    assert torch.equal(out["c"], torch.arange(3))
    with pytest.raises(TypeError, match="Evil"):
        checkpoint.plain({"x": Evil(Path("nowhere"))})


@pytest.mark.slow
def test_a_run_directory_from_before_run_json_resumes_exactly(tmp_path, tiny_data):
    """An older fwpipe wrote no run.json, and saved its state with a bare torch.save: such a run
    still resumes, and logs what a run that never stopped logs."""
    cfg = tiny_config(n_embd=32, block_size=32, batch_size=4, n_layer=1, eval_interval=3, eval_iters=1)
    ref, old = tmp_path / "ref", tmp_path / "old"
    train(plan_run(tiny_data, BUDGET, cfg, out=ref, device="cpu"))
    train(plan_run(tiny_data, BUDGET, cfg, out=old, device="cpu"), stop_after=4)
    (old / "run.json").unlink()
    state = torch.load(old / "last.pt", weights_only=True)
    (old / "last.pt").unlink()
    torch.save(state, old / "last.pt")  # the old save path: torch.save of the dict, nothing more
    r = cli("train", tiny_data, "--out", old, "--resume", "--device", "cpu")
    assert r.exit_code == 0 and "done: 6/6" in r.output, r.output
    assert json.loads((old / "run.json").read_text())["kind"] == "fwpipe-run"

    def losses(d):
        return [(x["kind"], x["iter"], x.get("loss"), x.get("val_loss")) for x in metrics(d)]

    assert [x[1] for x in losses(old)] == [0, 1, 2, 3, 3, 4, 5, 6, 6]
    assert losses(old) == losses(ref)


def _truncated(good: bytes) -> bytes:
    return good[: len(good) // 2]


DAMAGED = {
    "empty": lambda good: b"",
    "truncated": _truncated,
    "garbage": lambda good: np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes(),
    "text": lambda good: b"not a checkpoint\n",
}


@pytest.mark.parametrize("damage", sorted(DAMAGED))
def test_a_damaged_checkpoint_is_one_error_line(tmp_path, tiny_data, done_run, damage):
    run = copy_run(done_run, tmp_path / "run")
    bad = DAMAGED[damage]((run / "last.pt").read_bytes())
    (run / "last.pt").write_bytes(bad)
    (run / "best.pt").write_bytes(bad)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    assert_error(
        cli("sample", run / "last.pt", "--device", "cpu", "--tokens", 3), "last.pt", "not a readable checkpoint"
    )
    assert_error(cli("sample", run, "--device", "cpu", "--tokens", 3), "best.pt", "not a readable checkpoint")
    assert_error(
        cli("train", tiny_data, "--out", run, "--resume", "--device", "cpu"), "last.pt", "not a readable checkpoint"
    )
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_a_torch_file_that_is_not_a_checkpoint_is_one_error_line(tmp_path, tiny_data, done_run):
    run = copy_run(done_run, tmp_path / "run")
    torch.save(torch.zeros(3), run / "last.pt")
    assert_error(cli("sample", run / "last.pt", "--device", "cpu"), "not a fwpipe checkpoint", "Tensor")
    good = torch.load(done_run / "last.pt", weights_only=True)
    torch.save({k: v for k, v in good.items() if k != "optimizer"}, run / "last.pt")
    assert_error(
        cli("train", tiny_data, "--out", run, "--resume", "--device", "cpu"), "not a fwpipe checkpoint", "optimizer"
    )
    torch.save({**good, "iter": "6"}, run / "last.pt")
    assert_error(cli("train", tiny_data, "--out", run, "--resume", "--device", "cpu"), "iter is a str")
    torch.save({**good, "config": {**good["config"], "beta1": 2.0}}, run / "last.pt")
    assert_error(cli("sample", run / "last.pt", "--device", "cpu"), "config inside is not valid", "beta1")
    torch.save({**good, "model": {"wte.weight": torch.zeros(2, 2)}}, run / "last.pt")
    assert_error(cli("sample", run / "last.pt", "--device", "cpu"), "model state does not fit")


def test_sampling_a_diverged_checkpoint_is_one_error_line(tmp_path, done_run):
    ck = torch.load(done_run / "last.pt", weights_only=True)
    ck["model"]["transformer.h.0.mlp.c_fc.weight"][0, 0] = math.nan  # what a run that went NaN leaves
    torch.save(ck, tmp_path / "nan.pt")
    assert_error(cli("sample", tmp_path / "nan.pt", "--device", "cpu", "--tokens", 3), "nan.pt", "NaN or inf")


def test_sample_without_a_checkpoint_says_what_sample_needs(tmp_path):
    r = cli("sample", tmp_path / "nope.pt", "--device", "cpu")
    assert_error(r, "nope.pt", "no checkpoint", "run directory")
    assert "--resume" not in r.output
    assert_error(cli("sample", tmp_path, "--device", "cpu"), "last.pt", "no checkpoint")


# ------------------------------------------------------------------- the run directory is ours


@pytest.mark.parametrize(
    "name", ["metrics.jsonl", "plan.json", "config.toml", "loss.png", "best.pt", "run.json", ".last.pt.tmp"]
)
def test_a_link_among_the_run_files_is_refused_and_its_target_untouched(tmp_path, tiny_data, name):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "run"
    out.mkdir()
    (out / name).symlink_to(victim)
    assert_error(cli("train", tiny_data, "--budget-tokens", BUDGET, "--out", out, *TINY), name, "symbolic link")
    assert victim.read_text() == "precious" and sorted(os.listdir(out)) == [name]


def test_resume_refuses_a_metrics_link_planted_in_the_run(tmp_path, tiny_data, done_run):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    run = copy_run(done_run, tmp_path / "run")
    (run / "metrics.jsonl").unlink()
    (run / "metrics.jsonl").symlink_to(victim)
    assert_error(cli("train", tiny_data, "--out", run, "--resume", "--device", "cpu"), "metrics.jsonl", "symbolic link")
    assert victim.read_text() == "precious"


def test_a_link_planted_while_training_is_refused_at_the_next_write(tmp_path, tiny_data):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "run"
    cfg = tiny_config(n_embd=32, block_size=32, batch_size=4, n_layer=1, eval_interval=3, eval_iters=1)

    def plant(e):
        if e["kind"] == "train" and e["iter"] == 4:  # after the iteration-3 checkpoint
            (out / ".last.pt.tmp").symlink_to(victim)  # the temp name the next checkpoint would open

    with pytest.raises(OutputError, match="symbolic link") as e:
        train(plan_run(tiny_data, BUDGET, cfg, out=out, device="cpu"), plant)
    assert "\n" not in str(e.value)
    assert victim.read_text() == "precious"
    assert torch.load(out / "last.pt", weights_only=True)["iter"] == 3


def test_out_that_is_a_file_or_holds_other_files_is_refused(tmp_path, tiny_data):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    assert_error(cli("train", tiny_data, "--budget-tokens", BUDGET, "--out", a_file, *TINY), "notes.txt", "is a file")
    assert_error(cli("train", tiny_data, "--budget-tokens", BUDGET, "--out", a_file, "--dry-run", *TINY), "is a file")
    assert a_file.read_text() == "mine"
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("mine")
    (mine / "metrics.jsonl").write_text("my own metrics\n")
    for extra in ([], ["--resume"]):
        assert_error(
            cli("train", tiny_data, "--budget-tokens", BUDGET, "--out", mine, *TINY, *extra),
            "thesis.tex",
            "not a fwpipe training run",
        )
    assert sorted(os.listdir(mine)) == ["metrics.jsonl", "thesis.tex"]
    assert (mine / "metrics.jsonl").read_text() == "my own metrics\n"
    assert_error(
        cli("train", tiny_data, "--budget-tokens", BUDGET, "--out", tiny_data, *TINY), "not a fwpipe training run"
    )
    assert not (tiny_data / "run.json").exists()  # the dataset itself is not a run directory


def test_a_run_directory_is_marked_as_fwpipe_s(done_run):
    marker = json.loads((done_run / "run.json").read_text())
    assert marker["kind"] == "fwpipe-run" and {"last.pt", "metrics.jsonl", "run.json"} <= set(marker["files"])
    assert set(os.listdir(done_run)) <= set(marker["files"])


@pytest.mark.slow
def test_two_trains_never_write_one_run_directory(tmp_path, tiny_data):
    out = tmp_path / "run"
    args = [
        "train",
        str(tiny_data),
        "--budget-tokens",
        str(1000 * 128),
        "--out",
        str(out),
        *TINY,
        "--set",
        "log_interval=1",
        "--set",
        "eval_interval=1000",
    ]
    first = subprocess.Popen(
        [sys.executable, "-m", "fwpipe.cli", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.time() + 60
        while not ((out / "metrics.jsonl").exists() and '"train"' in (out / "metrics.jsonl").read_text()):
            assert first.poll() is None and time.time() < deadline, (
                first.stderr.read().decode() if first.poll() is not None else "timeout"
            )
            time.sleep(0.1)
        plan = (out / "plan.json").read_bytes()
        assert_error(cli("train", *args[1:]), "another fwpipe train is writing this run directory")
        assert_error(
            cli("train", tiny_data, "--budget-tokens", 2000 * 128, "--out", out, *TINY), "another fwpipe train"
        )
        assert first.poll() is None and (out / "plan.json").read_bytes() == plan
        time.sleep(0.5)
        iters = [r["iter"] for r in metrics(out) if r["kind"] == "train"]
        assert iters == list(range(1, len(iters) + 1))  # one run's lines, none from a second
    finally:
        first.kill()
        first.wait()


# ----------------------------------------------------------------- a read-only filesystem


@pytest.fixture
def read_only(monkeypatch):
    """make(root): from now on every call that would write under root fails with EROFS, as on a
    filesystem mounted read-only (root's chmod cannot simulate that when the tests run as root)."""

    def make(root: Path) -> None:
        prefix = str(root)

        def under(p) -> bool:
            return not isinstance(p, int) and os.path.abspath(os.fsdecode(p)).startswith(prefix)

        def erofs(p):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(p))

        real_open, real_os_open = builtins.open, os.open

        def fake_open(file, mode="r", *a, **k):
            if under(file) and any(c in mode for c in "wax+"):
                erofs(file)
            return real_open(file, mode, *a, **k)

        def fake_os_open(path, flags, *a, **k):
            if under(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND):
                erofs(path)
            return real_os_open(path, flags, *a, **k)

        def guard(real):
            def fake(path, *a, **k):
                if under(path) or (a and under(a[0])):
                    erofs(path)
                return real(path, *a, **k)

            return fake

        monkeypatch.setattr(builtins, "open", fake_open)
        monkeypatch.setattr(io, "open", fake_open)
        monkeypatch.setattr(os, "open", fake_os_open)
        for name in ("mkdir", "replace", "rename", "unlink", "rmdir"):
            monkeypatch.setattr(os, name, guard(getattr(os, name)))

    return make


def test_read_only_filesystem_is_one_error_line(tmp_path, tiny_data, done_run, read_only):
    run = copy_run(done_run, tmp_path / "ro" / "run")
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    read_only(tmp_path / "ro")
    new = tmp_path / "ro" / "new"
    assert_stopped(cli("train", tiny_data, "--budget-tokens", BUDGET, "--out", new, *TINY), "Read-only file system")
    assert not new.exists()
    assert_stopped(cli("train", tiny_data, "--out", run, "--resume", "--device", "cpu"), "Read-only file system")
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    r = cli("sample", run, "--tokens", 3, "--device", "cpu")  # reading needs no writes
    assert r.exit_code == 0, r.output


def test_a_disk_that_turns_read_only_mid_run_keeps_the_last_checkpoint(tmp_path, tiny_data, read_only):
    out = tmp_path / "run"
    cfg = tiny_config(n_embd=32, block_size=32, batch_size=4, n_layer=1, eval_interval=3, eval_iters=1)

    def remount(e):
        if e["kind"] == "train" and e["iter"] == 4:
            read_only(out)  # what ext4 does after an I/O error (errors=remount-ro)

    with pytest.raises(OutputError, match="Read-only file system") as e:
        train(plan_run(tiny_data, BUDGET, cfg, out=out, device="cpu"), remount)
    assert "\n" not in str(e.value)
    assert torch.load(out / "last.pt", weights_only=True)["iter"] == 3


def test_a_full_disk_while_saving_a_checkpoint_keeps_the_last_one(tmp_path, tiny_data, monkeypatch):
    out = tmp_path / "run"
    cfg = tiny_config(n_embd=32, block_size=32, batch_size=4, n_layer=1, eval_interval=3, eval_iters=1)
    real_open = builtins.open
    real_open_new = atomic.open_new

    class Full(io.FileIO):
        """A file on a disk with 64 KiB left (the tiny model's checkpoint is ~20 MB)."""

        left = 64 << 10

        def write(self, b):
            if len(b) > Full.left:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            Full.left -= len(b)
            return super().write(b)

    def fill_up(e):
        if e["kind"] == "train" and e["iter"] == 4:  # the disk fills after the iteration-3 checkpoint

            def full_open(file, mode="r", *a, **k):
                if not isinstance(file, int) and str(file).startswith(str(out)) and "w" in mode:
                    return io.BufferedWriter(Full(file, "wb"))
                return real_open(file, mode, *a, **k)

            monkeypatch.setattr(builtins, "open", full_open)
            # atomic.py opens its temp files itself (O_NOFOLLOW), so the full disk must reach it too
            monkeypatch.setattr(
                atomic,
                "open_new",
                lambda path: (
                    io.BufferedWriter(Full(path, "wb")) if str(path).startswith(str(out)) else real_open_new(path)
                ),
            )

    with pytest.raises(OutputError, match="No space left on device") as e:
        train(plan_run(tiny_data, BUDGET, cfg, out=out, device="cpu"), fill_up)
    assert "\n" not in str(e.value)
    monkeypatch.undo()
    assert torch.load(out / "last.pt", weights_only=True)["iter"] == 3
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")]


# ----------------------------------------------------------- config values and a diverged run


@pytest.mark.parametrize(
    "item",
    [
        "beta1=2",
        "beta2=1",
        "seed=-1",
        "seed=1e30",
        "seed=9223372036854775808",
        "weight_decay=nan",
        "weight_decay=-0.1",
        "lr=inf",
        "min_lr=nan",
        "grad_clip=nan",
        "dropout=1",
        "n_layer=inf",
        "warmup_iters=nan",
        "plateau_threshold=inf",
    ],
)
def test_out_of_range_config_values_stop_even_a_dry_run(tmp_path, tiny_data, item):
    key = item.split("=")[0]
    r = cli("train", tiny_data, "--budget-tokens", BUDGET, "--out", tmp_path / "run", "--dry-run", *TINY, "--set", item)
    assert_error(r, key)
    assert not (tmp_path / "run").exists()


def test_non_finite_values_in_a_toml_config_are_refused(tmp_path, tiny_data):
    toml = tmp_path / "nan.toml"
    toml.write_text("weight_decay = nan\n")
    assert_error(
        cli("train", tiny_data, "--budget-tokens", BUDGET, "--config", toml, "--dry-run"), "weight_decay=nan", "finite"
    )


def test_a_large_seed_is_kept_exactly():
    seed = 2**63 - 1
    assert tiny_config(seed=str(seed)).seed == seed  # not rounded through a float


def test_a_diverging_run_stops_with_one_line_and_keeps_the_last_finite_checkpoint(tmp_path, tiny_data):
    """lr 1e11 in a linear warmup over 1e9 iterations: lr grows 100 per iteration, and the loss
    turns NaN after a few (at iteration 6 on the reference machine)."""
    out = tmp_path / "run"
    r = cli(
        "train",
        tiny_data,
        "--budget-tokens",
        30 * 128,
        "--out",
        out,
        *TINY,
        "--set",
        "lr=1e11",
        "--set",
        "min_lr=0",
        "--set",
        "warmup_iters=1000000000",
        "--set",
        "grad_clip=0",
        "--set",
        "eval_interval=2",
        "--set",
        "log_interval=1",
    )
    assert_stopped(r, "training diverged at iteration", "last finite state")
    assert "best val" not in r.output and "done:" not in r.output
    bad_iter = int(r.output.split("diverged at iteration ")[1].split(":")[0])
    ck = torch.load(out / "last.pt", weights_only=True)
    assert 2 <= ck["iter"] < bad_iter and f"keeps iteration {ck['iter']}" in r.output
    assert all(torch.isfinite(t).all() for t in ck["model"].values())
    records = metrics(out)
    assert all(math.isfinite(x.get("loss", 0)) and math.isfinite(x.get("val_loss") or 0) for x in records)


# ---------------------------------------------------------------------------- --resume --config


def test_resume_refuses_another_config_and_accepts_its_own(tmp_path, tiny_data, done_run):
    run = copy_run(done_run, tmp_path / "run")
    r = cli("train", tiny_data, "--out", run, "--resume", "--device", "cpu", "--config", "tiny-cpu")
    assert_error(
        r,
        "--config tiny-cpu differs from the config of the run being resumed",
        f"resume with --out {run} and no --config",
    )
    other = tmp_path / "other.toml"
    other.write_text((run / "config.toml").read_text().replace("seed = 1337", "seed = 7"))
    assert_error(
        cli("train", tiny_data, "--out", run, "--resume", "--device", "cpu", "--config", other),
        "seed 7 vs the run's 1337",
    )
    r = cli("train", tiny_data, "--out", run, "--resume", "--device", "cpu", "--config", run / "config.toml")
    assert r.exit_code == 0 and "done: 6/6" in r.output, r.output

"""Real (tiny) training runs on real FineWeb text, on CPU."""

import json
import math

import pytest

from fwpipe.errors import DatasetMismatchError
from fwpipe.train.loop import plan_run, train
from fwpipe.train.sample import sample

from .conftest import tiny_config


def read_metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_data):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    cfg = tiny_config(eval_interval=20)
    run = plan_run(tiny_data, 40 * cfg.tokens_per_iter, cfg, out=out, device="cpu")
    events = []
    summary = train(run, events.append)
    return out, run, events, summary


def test_loss_falls_from_uniform(trained):
    out, run, events, summary = trained
    evals = [e for e in events if e["kind"] == "eval"]
    assert [e["iter"] for e in evals] == [0, 20, 40]
    assert evals[0]["val_loss"] == pytest.approx(math.log(50304), abs=0.15)  # ~10.8: uniform over the vocabulary
    assert evals[-1]["val_loss"] < 8.6  # down more than 2 nats in 40 iterations of 512 tokens
    assert evals[-1]["val_loss"] < evals[1]["val_loss"] < evals[0]["val_loss"]
    assert summary["complete"] and summary["iterations"] == 40 == run.plan["iterations"]
    assert summary["best_val_loss"] == evals[-1]["val_loss"]


def test_outputs_and_metrics_lines(trained):
    out, run, events, _ = trained
    for name in ("config.toml", "plan.json", "metrics.jsonl", "loss.png", "last.pt", "best.pt"):
        assert (out / name).exists(), name
    assert json.loads((out / "plan.json").read_text())["iterations"] == 40
    records = read_metrics(out)
    steps = [r for r in records if r["kind"] == "train"]
    assert [r["iter"] for r in steps] == list(range(1, 41))
    assert set(steps[0]) >= {"iter", "tokens", "epoch", "loss", "lr", "grad_norm", "tokens_per_s", "mfu"}
    assert all(r["mfu"] is None and r["tokens_per_s"] > 0 for r in steps)  # CPU: tokens/s only
    # epoch accounting: tokens over the loader's tokens per epoch
    windows = run.plan["unique_tokens"] // 64
    assert steps[-1]["epoch"] == pytest.approx(
        40 * 8 / ((run.dataset.split("train").stream_tokens - 1) // 64), rel=1e-9
    )
    assert 0 < steps[-1]["epoch"] < 1 and windows > 0
    assert steps[-1]["tokens"] == 40 * 512
    assert steps[0]["lr"] < steps[9]["lr"] and 1e-3 <= steps[-1]["lr"] < 1.1e-3  # warmup, then cosine down to the floor


def test_sample_prints_text(trained):
    out = trained[0]
    texts = sample(out, "The", max_new_tokens=12, num_samples=2, device="cpu", seed=1)
    assert len(texts) == 2 and all(t.startswith("The") for t in texts)
    assert texts == sample(out, "The", max_new_tokens=12, num_samples=2, device="cpu", seed=1)  # seeded


def test_resume_refuses_another_dataset(trained, other_data):
    with pytest.raises(DatasetMismatchError):
        plan_run(other_data, None, None, out=trained[0], device="cpu", resume=True)


def tiny_data_tokens(root):
    from fwpipe.dataset import open_dataset

    return open_dataset(root).split("train").stream_tokens


class Crash(Exception):
    pass


@pytest.mark.slow
def test_resume_is_exact(tmp_path, tiny_data):
    """A run that crashes (like kill -9) and resumes logs the same losses as one that never stopped."""
    # smaller still (32 wide, 4 x 32 tokens); dropout: the RNG state must come back too
    # plateau_threshold=100: every eval from the third on counts as a plateau, so the diagnosis runs
    cfg = tiny_config(n_embd=32, block_size=32, batch_size=4, eval_interval=4, dropout=0.1, plateau_threshold=100)
    budget = 12 * cfg.tokens_per_iter
    events = []
    train(plan_run(tiny_data, budget, cfg, out=tmp_path / "a", device="cpu"), events.append)
    diagnoses = [e for e in events if e["kind"] == "diagnosis"]
    assert [d["iter"] for d in diagnoses] == [12]  # evals at 4, 8, 12: three points make a slope
    d = diagnoses[0]  # fwpipe.diagnosis's ranked causes, as `fwpipe diagnose` gives them
    rep = next(c for c in d["causes"] if c["name"] == "repetition")
    assert rep["evidence"]["epochs"] == pytest.approx(12 * 4 / ((tiny_data_tokens(tiny_data) - 1) // 32))
    assert d["verdict"] == d["causes"][0]["name"] and len(d["causes"]) == 6 and d["text"][0].startswith("plateau:")

    def crash_at_7(e):
        if e["kind"] == "train" and e["iter"] == 7:
            raise Crash  # after iteration 7 was logged, 3 iterations after the last checkpoint (4)

    with pytest.raises(Crash):
        train(plan_run(tiny_data, budget, cfg, out=tmp_path / "b", device="cpu"), crash_at_7)
    assert max(r["iter"] for r in read_metrics(tmp_path / "b")) == 7
    # resume from the iteration-4 checkpoint, stop at 10 (a non-eval checkpoint), resume again
    part = train(plan_run(tiny_data, None, None, out=tmp_path / "b", device="cpu", resume=True), stop_after=10)
    assert part["iterations"] == 10 and not part["complete"]
    train(plan_run(tiny_data, None, None, out=tmp_path / "b", device="cpu", resume=True))

    def losses(d):
        return [(r["kind"], r["iter"], r.get("loss"), r.get("val_loss"), r["epoch"]) for r in read_metrics(d)]

    a, b = losses(tmp_path / "a"), losses(tmp_path / "b")
    assert [x[:2] for x in a] == [x[:2] for x in b]  # no line lost, none twice
    assert a == b

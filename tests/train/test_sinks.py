"""--tensorboard and --wandb: the metrics mirrored into the run directory (metrics.jsonl stays the record)."""

from __future__ import annotations

import json

import pytest

from fwpipe.train.loop import plan_run, train

from .conftest import tiny_config


@pytest.mark.slow
def test_tensorboard_events_and_offline_wandb_run_hold_the_metrics(tmp_path, tiny_data):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = tiny_config(
        recipe="modern", tensorboard=True, wandb=True, n_embd=32, block_size=32, batch_size=4, eval_interval=3
    )
    out = tmp_path / "run"
    train(plan_run(tiny_data, 6 * cfg.tokens_per_iter, cfg, out=out, device="cpu"))
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    loss = events.Scalars("train/loss")
    assert [e.step for e in loss] == [r["tokens"] for r in records if r["kind"] == "train"]  # x axis: tokens
    assert [e.value for e in loss] == pytest.approx([r["loss"] for r in records if r["kind"] == "train"], rel=1e-6)
    assert [e.value for e in events.Scalars("eval/val_loss")] == pytest.approx(
        [r["val_loss"] for r in records if r["kind"] == "eval"], rel=1e-6
    )
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and len(list(runs[0].glob("*.wandb"))) == 1, list((out / "wandb").iterdir())
    raw = next(runs[0].glob("*.wandb")).read_bytes()  # the offline run's records (protobuf): keys are plain text
    assert b"train/loss" in raw and b"eval/val_loss" in raw and b"modern" in raw

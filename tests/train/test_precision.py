"""The GPU code paths run where they can without a GPU: bf16 autocast and the fp16 GradScaler on
CPU, torch.compile on CPU, and the fallback to eager when compiling fails."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from fwpipe.train import checkpoint
from fwpipe.train.loop import plan_run, train

from .conftest import tiny_config

ITERS = 5


def _cfg(**extra):
    # 4 x 32-token sequences: cheap steps; lr 3e-3 so that the weights move but nothing diverges
    return tiny_config(batch_size=4, block_size=32, lr=3e-3, min_lr=3e-4, eval_interval=ITERS, **extra)


def _run(tmp_path, name, data, **extra):
    cfg = _cfg(**extra)
    events = []
    run = plan_run(data, ITERS * cfg.tokens_per_iter, cfg, out=tmp_path / name, device="cpu")
    train(run, events.append)
    losses = [e["loss"] for e in events if e["kind"] == "train"]
    return run, events, losses


@pytest.fixture(scope="module")
def fp32(tmp_path_factory, tiny_data):
    return _run(tmp_path_factory.mktemp("fp32"), "run", tiny_data, dtype="fp32")[2]


@pytest.mark.slow
def test_bf16_autocast_on_cpu(tmp_path, tiny_data, fp32):
    run, _, losses = _run(tmp_path, "bf16", tiny_data, dtype="bf16")
    assert run.plan["memory"]["precision"] == "bf16"
    assert len(losses) == ITERS
    assert losses != fp32  # autocast really ran the matmuls in bf16 (8 mantissa bits)
    # ... and tracks fp32: bf16 rounds each product at ~0.4%; the loss over 512 tokens much less
    assert losses == pytest.approx(fp32, rel=2e-2)
    assert losses[-1] < losses[0]


@pytest.mark.slow
def test_fp16_trains_through_the_grad_scaler(tmp_path, tiny_data, fp32):
    run, _, losses = _run(tmp_path, "fp16", tiny_data, dtype="fp16")
    assert losses != fp32 and losses == pytest.approx(fp32, rel=2e-2)
    ck = checkpoint.load(tmp_path / "fp16" / "last.pt")
    sc = ck["scaler"]
    # every step went through scaler.step/update with finite gradients: the growth tracker
    # counts them (it resets on an inf/NaN step, which also halves the scale)
    assert sc["scale"] == 2.0**16 and sc["_growth_tracker"] == ITERS
    # and a resumed fp16 run gets the scaler back as it was
    resumed = plan_run(tiny_data, None, out=tmp_path / "fp16", device="cpu", resume=True)
    assert resumed.checkpoint["scaler"] == sc


def test_compile_failure_falls_back_to_eager_with_one_warning(tmp_path, tiny_data, fp32, monkeypatch, caplog):
    def broken(*a, **k):
        raise RuntimeError("inductor: no C++ compiler found\nsecond line")

    monkeypatch.setattr(torch, "compile", broken)
    with caplog.at_level(logging.WARNING, logger="fwpipe.train.loop"):
        _, events, losses = _run(tmp_path, "fallback", tiny_data, dtype="fp32", compile=True)
    warnings = [e["text"] for e in events if e["kind"] == "message" and e.get("level") == "warning"]
    assert warnings == ["torch.compile failed (inductor: no C++ compiler found); continuing uncompiled"]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        "torch.compile failed, training uncompiled: inductor: no C++ compiler found"
    ]
    assert losses == fp32  # the run went on, eagerly, exactly as a run without compile
    assert json.loads((tmp_path / "fallback" / "plan.json").read_text())["config"]["compile"] is True


@pytest.mark.slow
def test_compiled_model_matches_eager_on_cpu(tmp_path, tiny_data, fp32):
    _, events, losses = _run(tmp_path, "compiled", tiny_data, dtype="fp32", compile=True)
    assert not [e for e in events if e["kind"] == "message" and e.get("level") == "warning"]  # it really compiled
    # inductor fuses and reorders fp32 reductions: equal to eager up to rounding, which 5 AdamW
    # steps grow to ~1e-5 relative; 1e-4 leaves room and still catches any real difference
    assert losses == pytest.approx(fp32, rel=1e-4)

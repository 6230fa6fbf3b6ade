"""The modern recipe: its config, model parts, optimizer groups, schedule, and exact resume."""

from __future__ import annotations

import json

import pytest
import torch

from fwpipe.errors import ConfigError
from fwpipe.train.config import ModelConfig, load_config
from fwpipe.train.model import GPT
from fwpipe.train.plan import memory_estimate, param_counts
from fwpipe.train.recipe import build_optimizers, param_groups, set_lrs, wsd_scale

from .conftest import tiny_config

MODERN_PARTS = {
    "pos_emb": "rotary",
    "norm": "rmsnorm",
    "qk_norm": True,
    "mlp": "relu2",
    "tie_embeddings": False,
    "zero_init_proj": True,
    "logit_softcap": 30.0,
}


def test_recipe_goes_under_the_preset():
    cfg = load_config("tiny-cpu", ["recipe=modern"])
    assert (cfg.recipe, cfg.optimizer, cfg.schedule) == ("modern", "muon", "wsd")
    assert {k: getattr(cfg.model, k) for k in MODERN_PARTS} == MODERN_PARTS
    assert cfg.lr == 3e-3 and cfg.model.n_embd == 128  # the preset's own keys still win
    assert load_config("tiny-cpu", ["recipe=modern", "qk_norm=false"]).model.qk_norm is False  # each part ablates
    old = load_config("tiny-cpu")  # presets stay nanogpt: existing runs and checkpoints unchanged
    assert (old.recipe, old.optimizer, old.schedule, old.model.pos_emb, old.model.tie_embeddings) == (
        "nanogpt",
        "adamw",
        "cosine",
        "learned",
        True,
    )
    for name in ("tiny-cpu-modern", "rtx4070-40m-modern", "gpt2-124m-modern"):
        c = load_config(name)
        assert c.recipe == "modern" and c.optimizer == "muon" and c.model.pos_emb == "rotary", name
    with pytest.raises(ConfigError, match="recipe='adam'"):
        load_config("tiny-cpu", ["recipe=adam"])
    with pytest.raises(ConfigError, match="norm='batchnorm' is not one of layernorm, rmsnorm"):
        load_config("tiny-cpu", ["norm=batchnorm"])


def test_modern_parameter_count_by_hand():
    # 2 layers x 64 wide, vocab 50304: wte 50304*64 = 3,219,456 and an untied head of the same
    # size; per block 3*64*64 (q, k, v) + 64*64 (proj) + 64*256 + 256*64 (MLP) = 49,152;
    # RoPE, RMSNorm without weight, QK-norm, ReLU^2 and the soft-cap have no parameters.
    m = ModelConfig(n_layer=2, n_head=2, n_embd=64, block_size=64, **MODERN_PARTS)
    want = 3_219_456 + 3_219_456 + 2 * 49_152  # = 6,537,216
    model = GPT(m)
    assert sum(p.numel() for p in model.parameters()) == 6_537_216 == want
    assert param_counts(m) == (6_537_216, 6_537_216)  # no position embeddings to leave out
    assert model.get_num_params() == 6_537_216


def test_modern_parts_do_what_they_say():
    torch.manual_seed(0)
    m = ModelConfig(n_layer=2, n_head=2, n_embd=64, block_size=64, **MODERN_PARTS)
    model = GPT(m)
    assert "wpe" not in model.transformer and model.lm_head.weight is not model.transformer.wte.weight
    assert all(p.abs().sum() == 0 for n, p in model.named_parameters() if n.endswith("c_proj.weight"))
    x = torch.randint(0, 50257, (2, 16))
    with torch.no_grad():
        model.lm_head.weight.mul_(1e4)  # huge logits: the soft-cap keeps them inside [-30, 30]
        logits, loss = model(x, x)
        model.config.logit_softcap = 0.0
        raw, _ = model(x, x)
    assert logits.abs().max() <= 30 and raw.abs().max() > 100 and torch.isfinite(loss)
    assert torch.allclose(logits, 30 * torch.tanh(raw / 30))
    # RoPE: q.k depends on the distance between positions only (shift both by 5: same score)
    rot = model.transformer.h[0].attn.rotary
    q, k = torch.randn(1, 1, 1, 32).expand(1, 1, 64, 32), torch.randn(1, 1, 1, 32).expand(1, 1, 64, 32)
    rq, rk = rot(q.contiguous()), rot(k.contiguous())
    s = rq[0, 0] @ rk[0, 0].T  # (64, 64) scores between every pair of positions
    assert torch.allclose(s[10, 3], s[15, 8], atol=1e-5) and not torch.allclose(s[10, 3], s[10, 8], atol=1e-3)


@pytest.mark.parametrize("recipe,tied", [("nanogpt", True), ("modern", False), ("modern", True)])
def test_every_parameter_in_exactly_one_group(recipe, tied):
    cfg = load_config("tiny-cpu", ["recipe=" + recipe, f"tie_embeddings={str(tied).lower()}", "n_layer=2", "bias=true"])
    if recipe == "modern":
        cfg.model.norm = "layernorm"  # weights and biases: 1-D parameters for the scalar group
    model = GPT(cfg.model)
    groups = param_groups(model, cfg)
    seen = [id(p) for g in groups for _, p in g.params]
    assert sorted(seen) == sorted(id(p) for p in model.parameters()) and len(seen) == len(set(seen))
    if recipe == "modern":
        by = {g.name: {n for n, _ in g.params} for g in groups}
        assert by["muon"] == {
            f"transformer.h.{i}.{n}.weight"
            for i in range(2)
            for n in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
        }
        assert by["embed"] == {"transformer.wte.weight"} and by["head"] == (set() if tied else {"lm_head.weight"})
        assert all(p.dim() == 1 for g in groups if g.name == "scalar" for _, p in g.params) and by["scalar"]
        opts = build_optimizers(model, cfg, "cpu")
        assert isinstance(opts["muon"], torch.optim.Muon) and isinstance(opts["adamw"], torch.optim.AdamW)
        assert sum(len(g["params"]) for o in opts.values() for g in o.param_groups) == len(seen)


def test_wsd_values_at_chosen_steps():
    # 100 iterations, warmup 10, cool-down over the last 40% (iterations 60..99)
    want = {0: 0.1, 4: 0.5, 9: 1.0, 10: 1.0, 59: 1.0, 60: 1.0, 70: 0.75, 80: 0.5, 90: 0.25, 99: 0.025, 100: 0.0}
    assert {it: wsd_scale(it, 10, 0.4, 100) for it in want} == pytest.approx(want)
    cfg = load_config(
        "tiny-cpu", ["recipe=modern", "warmup_iters=10", "muon_lr=0.02", "embed_lr=0.05", "head_lr=0.002", "lr=0.001"]
    )
    opts = build_optimizers(GPT(ModelConfig(n_layer=1, n_head=2, n_embd=32, block_size=32, **MODERN_PARTS)), cfg, "cpu")
    assert set_lrs(opts, 80, cfg, 100) == pytest.approx(0.0005)  # each group at half its own lr
    lrs = {g["name"]: g["lr"] for o in opts.values() for g in o.param_groups}
    assert lrs == pytest.approx({"muon": 0.01, "embed": 0.025, "head": 0.001})  # RMSNorm: no 1-D parameters


def test_plan_memory_knows_muon_and_the_new_parts():
    ng, mo = load_config("gpt2-124m"), load_config("gpt2-124m-modern")
    mo.batch_size = ng.batch_size
    a, b = memory_estimate(ng, "bf16"), memory_estimate(mo, "bf16")
    total_b = param_counts(mo.model)[0]
    muon = 12 * 12 * 768 * 768  # the blocks' matrices: one momentum float each instead of two
    assert b["optimizer"] == 4 * (muon + 2 * (total_b - muon)) + 4 * 4 * 4 * 768 * 768
    assert b["weights"] - a["weights"] == 4 * (
        50304 * 768 - 1024 * 768 - 25 * 768
    )  # + untied head, - wpe, - norm weights
    assert b["activations"] > a["activations"]  # RoPE / QK-norm copies of q, k and ReLU^2's relu(h)


def _read(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


class Crash(Exception):
    pass


@pytest.mark.slow
def test_modern_resume_is_exact_also_after_a_crash_inside_a_checkpoint_write(tmp_path, tiny_data, monkeypatch):
    """Both optimizers, the WSD position, RNG and data position come back: a run that dies
    (1) right after a log line and (2) half-way through writing last.pt resumes to the same
    losses, bit for bit, as a run that never stopped."""
    from fwpipe.train import checkpoint
    from fwpipe.train.loop import plan_run, train

    cfg = tiny_config(
        recipe="modern",
        n_embd=32,
        block_size=32,
        batch_size=4,
        eval_interval=4,
        warmup_iters=3,
        cooldown_frac=0.5,
        dropout=0.1,
    )  # dropout: the RNG must come back too
    budget = 12 * cfg.tokens_per_iter
    train(plan_run(tiny_data, budget, cfg, out=tmp_path / "a", device="cpu"))

    def crash_at_6(e):
        if e["kind"] == "train" and e["iter"] == 6:
            raise Crash

    with pytest.raises(Crash):
        train(plan_run(tiny_data, budget, cfg, out=tmp_path / "b", device="cpu"), crash_at_6)
    real_save = torch.save

    def dies_while_writing(state, f):
        if state["iter"] == 8:  # the first checkpoint after resuming: half the bytes, then death
            f.write(b"PK\x03\x04 half a checkpoint")
            raise Crash
        real_save(state, f)

    monkeypatch.setattr(checkpoint.torch, "save", dies_while_writing)
    with pytest.raises(Crash):
        train(plan_run(tiny_data, None, None, out=tmp_path / "b", device="cpu", resume=True))
    monkeypatch.setattr(checkpoint.torch, "save", real_save)
    assert checkpoint.load(tmp_path / "b" / "last.pt")["iter"] == 4  # the half-written file never replaced it
    train(plan_run(tiny_data, None, None, out=tmp_path / "b", device="cpu", resume=True))
    a, b = _read(tmp_path / "a"), _read(tmp_path / "b")
    strip = ("tokens_per_s", "mfu", "eta_s")
    assert [{k: v for k, v in r.items() if k not in strip} for r in a] == [
        {k: v for k, v in r.items() if k not in strip} for r in b
    ]
    assert a[-1]["kind"] == "eval" and a[-1]["val_loss"] < a[0]["val_loss"] - 0.5  # it learned something


@pytest.mark.slow
def test_gpu_check_cpu_path(tmp_path, tiny_data):
    """bench/gpu_check.py on a machine without CUDA: every config (the modern one too) plans, a
    few CPU steps run, and the modern recipe's loss falls on a CPU-sized shape."""
    import importlib.util
    from pathlib import Path

    bench = Path(__file__).resolve().parents[2] / "bench"
    import sys

    sys.path.insert(0, str(bench))
    try:
        spec = importlib.util.spec_from_file_location("gpu_check", bench / "gpu_check.py")
        gpu_check = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(gpu_check)
    finally:
        sys.path.remove(str(bench))
    done, record = gpu_check.cpu_checks(tiny_data, tmp_path)
    assert (
        record["plans"]["gpt2-124m-modern"]["recipe"] == "modern"
        and record["plans"]["gpt2-124m"]["recipe"] == "nanogpt"
    )
    assert record["plans"]["gpt2-124m-modern"]["params_total"] == param_counts(load_config("gpt2-124m-modern").model)[0]
    assert record["cpu_loss_run"]["falls"], done
    assert any("rtx4070-40m ran 3 CPU steps" in line for line in done)


@pytest.mark.slow
def test_kill_9_at_two_points_then_resume_logs_the_same_losses(tmp_path, tiny_data):
    """The real thing: `fwpipe train` killed with SIGKILL (no handler runs) twice, at whatever
    moment the kill lands after a given log line, then --resume to the end: the log equals a
    run that never stopped. threads=2 in the config: the subprocess and this process split
    their sums the same way."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from fwpipe.train.config import to_toml
    from fwpipe.train.loop import plan_run, train

    cfg = tiny_config(recipe="modern", n_embd=32, block_size=32, batch_size=4, eval_interval=3, threads=2)
    (tmp_path / "c.toml").write_text(to_toml(cfg))
    budget = 16 * cfg.tokens_per_iter
    train(plan_run(tiny_data, budget, cfg, out=tmp_path / "a", device="cpu"))
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    base = [sys.executable, "-m", "fwpipe", "train", str(tiny_data), "--out", str(tmp_path / "b"), "--device", "cpu"]
    metrics = tmp_path / "b" / "metrics.jsonl"

    def run_until(args, kill_after):
        proc = subprocess.Popen(base + args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            while proc.poll() is None:
                done = [json.loads(x) for x in metrics.read_text().splitlines()] if metrics.exists() else []
                if any(r["iter"] >= kill_after for r in done):
                    proc.send_signal(signal.SIGKILL)
                    break
                time.sleep(0.05)
            proc.wait(timeout=240)
        finally:
            if proc.poll() is None:
                proc.kill()
        return proc

    assert (
        run_until(["--config", str(tmp_path / "c.toml"), "--budget-tokens", str(budget)], 5).returncode
        == -signal.SIGKILL
    )
    assert run_until(["--resume"], 11).returncode == -signal.SIGKILL  # killed, not finished
    last = subprocess.run(base + ["--resume"], env=env, capture_output=True, text=True, timeout=240)
    assert last.returncode == 0, last.stderr[-2000:]
    strip = ("tokens_per_s", "mfu", "eta_s")
    a, b = _read(tmp_path / "a"), _read(tmp_path / "b")
    assert [{k: v for k, v in r.items() if k not in strip} for r in a] == [
        {k: v for k, v in r.items() if k not in strip} for r in b
    ]

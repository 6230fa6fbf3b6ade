"""`fwpipe diagnose RUN --probe`: measure what the curve alone cannot separate.

From the run's last checkpoint, a few short branches (copies in memory; the run directory is
only read) each train `iters` more iterations under one change, then measure val loss on the
run's own fixed val batches:

    repeated   the run's own train data, from where its loader stopped (its next tokens)
    fresh      tokens the run has not seen (--fresh DATASET's train split), same schedule
    lr x0.3    the repeated data at 0.3x the learning rate the schedule gives there
    lr x3      the same at 3x

Read against the noise band: fresh beating repeated says repetition; lr x0.3 beating repeated
says the rate is too high, lr x3 beating it too low; none of them moving says capacity.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fwpipe.dataset import open_dataset
from fwpipe.errors import ConfigError
from fwpipe.train import rundir

MAX_FRACTION = 0.02  # of the run's iterations
MAX_ITERS = 200


def probe_cost(run: Path, fresh: str | Path | None, iters: int | None = None) -> dict[str, Any]:
    """How much the probe trains, before any of it runs: arms, iterations each, tokens."""
    from fwpipe.train import checkpoint

    ck = checkpoint.load(Path(run) / rundir.LAST)
    cfg = checkpoint.config_of(ck, Path(run) / rundir.LAST)
    n = iters or max(1, min(MAX_ITERS, math.ceil(MAX_FRACTION * ck["iter"])))
    arms = ["repeated", "lr x0.3", "lr x3"] + (["fresh"] if fresh is not None else [])
    return {
        "arms": arms,
        "iters": n,
        "tokens": len(arms) * n * cfg.tokens_per_iter,
        "from_iter": ck["iter"],
        "eval_batches": cfg.eval_iters * (len(arms) + 1),
    }


def probe(
    run: str | Path,
    dataset: str | Path,
    fresh: str | Path | None = None,
    iters: int | None = None,
    device: str = "cpu",
    on_arm: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """{'base_val_loss', 'iters', 'arms': {name: {'val_loss', 'change', 'vs_repeated'}}}; never writes."""
    import torch

    from fwpipe.train import checkpoint
    from fwpipe.train.data import TrainLoader, batch_to_device, fixed_batches
    from fwpipe.train.model import GPT
    from fwpipe.train.recipe import build_optimizers, set_lrs

    run = Path(run)
    last = run / rundir.LAST
    ck = checkpoint.load(last)
    cfg = checkpoint.config_of(ck, last)
    ds = open_dataset(dataset)
    checkpoint.check_dataset(ck, checkpoint.dataset_fingerprint(ds), ds.root)
    cost = probe_cost(run, fresh, iters)
    n, it0 = cost["iters"], ck["iter"]
    max_iters = math.ceil(ck["budget_tokens"] / cfg.tokens_per_iter)
    torch.manual_seed(cfg.seed)
    val = fixed_batches(ds.split("val"), cfg.model.block_size, cfg.batch_size, cfg.eval_iters, cfg.seed)
    if not val:
        raise ConfigError(f"{ds.root}: no val split to measure the probe on", "pass the dataset the run trained on")

    def fresh_model():
        model = GPT(cfg.model).to(device)
        checkpoint.restore("model", last, lambda: model.load_state_dict(ck["model"]))
        opts = build_optimizers(model, cfg, "cpu" if device == "cpu" else "cuda")
        saved = (
            ck["optimizer"] if "param_groups" not in ck["optimizer"] else {"adamw": ck["optimizer"]}
        )  # before the recipes: AdamW's own
        for name, o in opts.items():
            checkpoint.restore(
                f"{name} optimizer", last, lambda o=o, name=name: o.load_state_dict(copy.deepcopy(saved[name]))
            )
        return model, opts

    @torch.no_grad()
    def val_loss(model) -> float:
        model.eval()
        total = 0.0
        for xy in val:
            x, y = batch_to_device(xy, device)
            total += model(x, y)[1].item()
        model.train()
        return total / len(val)

    def loader_for(split, resume: bool) -> TrainLoader:
        ld = TrainLoader(split, cfg.model.block_size, cfg.batch_size, cfg.seed, device, micro_per_rank=cfg.grad_accum)
        if resume:
            checkpoint.restore("data loader", last, lambda: ld.load_state_dict(ck["loader"]))
        return ld

    base_model, _ = fresh_model()
    base = val_loss(base_model)
    del base_model
    arms: dict[str, dict[str, Any]] = {}
    plans = {"repeated": (1.0, None), "lr x0.3": (0.3, None), "lr x3": (3.0, None)}
    if fresh is not None:
        plans["fresh"] = (1.0, open_dataset(fresh).split("train"))
    for name, (scale, split) in plans.items():
        if on_arm:
            on_arm(name)
        model, opts = fresh_model()
        ld = loader_for(split if split is not None else ds.split("train"), resume=split is None)
        for k in range(n):
            set_lrs(opts, it0 + k, cfg, max_iters)  # the run's schedule (cosine or WSD, every group) ...
            for o in opts.values():
                for g in o.param_groups:
                    g["lr"] *= scale  # ... times the branch's factor
            for _ in range(cfg.grad_accum):
                x, y = ld.next_batch()
                (model(x, y)[1] / cfg.grad_accum).backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            for o in opts.values():
                o.step()
                o.zero_grad(set_to_none=True)
        v = val_loss(model)
        arms[name] = {"val_loss": v, "change": v - base}
    for a in arms.values():
        a["vs_repeated"] = a["val_loss"] - arms["repeated"]["val_loss"]
    tokens = cfg.eval_iters * cfg.batch_size * cfg.model.block_size
    band = 2 * base / math.sqrt(tokens)
    return {
        "from_iter": it0,
        "iters": n,
        "tokens": cost["tokens"],
        "base_val_loss": base,
        "noise_band": band,
        "arms": arms,
        "reading": _reading(arms, band),
    }


def _reading(arms: dict[str, dict[str, Any]], band: float) -> list[str]:
    out = []
    for name, cause in (
        ("fresh", "repetition"),
        ("lr x0.3", "learning_rate (too high)"),
        ("lr x3", "learning_rate (too low)"),
    ):
        a = arms.get(name)
        if a is None:
            continue
        d = a["vs_repeated"]
        verdict = f"supports {cause}" if d < -band else "within the noise band" if abs(d) <= band else "worse"
        out.append(f"{name:<9} val {a['val_loss']:.4f} ({d:+.4f} vs repeated; band {band:.4f}): {verdict}")
    return out

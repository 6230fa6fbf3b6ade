"""A recipe's optimizers and schedule, built from the config (the recipe is data, not branches).

Two optimizer setups:
  adamw  nanoGPT's: one AdamW, weight decay on >= 2-D tensors, every group at `lr`.
  muon   torch.optim.Muon for the transformer blocks' 2-D matrices (attention and MLP weights),
         AdamW for the rest, each group at its own learning rate:
           embed   token (and learned position) embeddings  embed_lr (0: lr)
           head    the untied lm_head                        head_lr (0: lr)
           scalar  every 1-D parameter (norm weights, biases) lr
Muon orthogonalises the update of a matrix (Newton-Schulz, inside torch); it is meant for hidden
matrices only, which is why embeddings and the head (their rows are looked up, not mixed) and
vectors go to AdamW (Jordan et al. 2024, "Muon: An optimizer for hidden layers").

`param_groups` is the one place that decides which parameter goes where; the tests check that
every parameter lands in exactly one group.

Schedules (`lr_at`): cosine (nanoGPT's get_lr, unchanged) or wsd: linear warmup over
warmup_iters, constant, then linear to zero over the last cooldown_frac of the iterations.
"""

from __future__ import annotations

import inspect
import logging
import math
from dataclasses import dataclass

import torch

from fwpipe.errors import ConfigError
from fwpipe.train.config import TrainConfig

log = logging.getLogger(__name__)


@dataclass
class Group:
    name: str  # muon | embed | head | scalar | decay | no_decay
    optimizer: str  # muon | adamw
    params: list[tuple[str, torch.nn.Parameter]]
    lr: float
    weight_decay: float


def param_groups(model: torch.nn.Module, cfg: TrainConfig) -> list[Group]:
    """The recipe's groups, in a fixed order; a tied head (one tensor) is counted once, in embed."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]  # shared tensors appear once
    if cfg.optimizer == "adamw":
        return [
            Group("decay", "adamw", [(n, p) for n, p in named if p.dim() >= 2], cfg.lr, cfg.weight_decay),
            Group("no_decay", "adamw", [(n, p) for n, p in named if p.dim() < 2], cfg.lr, 0.0),
        ]
    groups = {g: [] for g in ("muon", "embed", "head", "scalar")}
    for n, p in named:
        if p.dim() < 2:
            groups["scalar"].append((n, p))
        elif n.startswith("transformer.h.") and p.dim() == 2:
            groups["muon"].append((n, p))
        elif n.startswith("lm_head."):
            groups["head"].append((n, p))
        else:  # transformer.wte, transformer.wpe (and a head tied to wte, which is named wte)
            groups["embed"].append((n, p))
    return [
        Group("muon", "muon", groups["muon"], cfg.muon_lr, cfg.weight_decay),
        Group("embed", "adamw", groups["embed"], cfg.embed_lr or cfg.lr, cfg.weight_decay),
        Group("head", "adamw", groups["head"], cfg.head_lr or cfg.lr, cfg.weight_decay),
        Group("scalar", "adamw", groups["scalar"], cfg.lr, 0.0),
    ]


def build_optimizers(model: torch.nn.Module, cfg: TrainConfig, device_type: str) -> dict[str, torch.optim.Optimizer]:
    """{"adamw": AdamW, "muon": Muon (only with optimizer=muon)}; each param group keeps its
    base lr as "initial_lr", which the schedule scales (cosine: nanoGPT's absolute lr)."""
    by_opt: dict[str, list[dict]] = {}
    for g in param_groups(model, cfg):
        if g.params:
            by_opt.setdefault(g.optimizer, []).append(
                {
                    "params": [p for _, p in g.params],
                    "lr": g.lr,
                    "initial_lr": g.lr,
                    "weight_decay": g.weight_decay,
                    "name": g.name,
                }
            )
    for name, groups in by_opt.items():
        log.info(
            "%s: %s",
            name,
            ", ".join(
                f"{g['name']} {len(g['params'])} tensors "
                f"({sum(p.numel() for p in g['params']):,} params) lr {g['lr']:g}"
                for g in groups
            ),
        )
    out: dict[str, torch.optim.Optimizer] = {}
    if "adamw" in by_opt:
        fused = device_type == "cuda" and "fused" in inspect.signature(torch.optim.AdamW).parameters
        out["adamw"] = torch.optim.AdamW(
            by_opt["adamw"], lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), **({"fused": True} if fused else {})
        )
    if "muon" in by_opt:
        if not hasattr(torch.optim, "Muon"):
            raise ConfigError(
                f"optimizer=muon needs torch.optim.Muon, which torch {torch.__version__} does not have",
                "install torch 2.9 or newer, or train with --recipe nanogpt (or --set optimizer=adamw)",
            )
        # adjust_lr_fn "original": the update scaled by sqrt(max(1, rows/cols)), Keller Jordan's rule
        out["muon"] = torch.optim.Muon(
            by_opt["muon"], lr=cfg.muon_lr, momentum=cfg.muon_momentum, nesterov=True, adjust_lr_fn="original"
        )
    return out


def lr_at(it: int, cfg: TrainConfig, max_iters: int) -> float:
    """Linear warmup to lr, cosine decay to min_lr at the last iteration (nanoGPT's get_lr)."""
    if it < cfg.warmup_iters:
        return cfg.lr * (it + 1) / (cfg.warmup_iters + 1)
    if it >= max_iters:
        return cfg.min_lr
    ratio = (it - cfg.warmup_iters) / max(1, max_iters - cfg.warmup_iters)
    coeff = 0.5 * (1.0 + math.cos(math.pi * ratio))  # 1 -> 0
    return cfg.min_lr + coeff * (cfg.lr - cfg.min_lr)


def wsd_scale(it: int, warmup: int, cooldown_frac: float, max_iters: int) -> float:
    """Warmup-stable-decay: (it+1)/warmup while warming up, 1, then linear down to 0 at
    max_iters over the last cooldown_frac * max_iters iterations. A longer run only moves the
    start of the cool-down, so a run can be extended from any checkpoint before it."""
    cooldown = cooldown_frac * max_iters
    if it < warmup:
        return (it + 1) / warmup
    left = max_iters - it
    return max(0.0, min(1.0, left / cooldown)) if cooldown > 0 else 1.0


def set_lrs(optimizers: dict[str, torch.optim.Optimizer], it: int, cfg: TrainConfig, max_iters: int) -> float:
    """Set every group's lr for iteration `it`; returns the AdamW scalar group's (the `lr` logged)."""
    if cfg.schedule == "cosine":
        lr = lr_at(it, cfg, max_iters)
        for opt in optimizers.values():
            for group in opt.param_groups:
                group["lr"] = lr if group["initial_lr"] == cfg.lr else lr * group["initial_lr"] / cfg.lr
        return lr
    scale = wsd_scale(it, cfg.warmup_iters, cfg.cooldown_frac, max_iters)
    for opt in optimizers.values():
        for group in opt.param_groups:
            group["lr"] = group["initial_lr"] * scale
    return cfg.lr * scale

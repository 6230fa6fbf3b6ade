"""The loss curve: train and val loss against tokens seen, epoch boundaries marked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fwpipe.atomic import atomic_file


def plot_losses(records: list[dict[str, Any]], tokens_per_epoch: int, path: Path, title: str = "", dropout: float = 0.0) -> None:
    """Write a PNG atomically from metrics.jsonl records (kind 'train' and 'eval')."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed; safe in threads and on servers
    import matplotlib.pyplot as plt

    train = [r for r in records if r.get("kind") == "train"]
    evals = [r for r in records if r.get("kind") == "eval" and r.get("val_loss") is not None]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    if train:
        ax.plot([r["tokens"] for r in train], [r["loss"] for r in train], lw=1, alpha=0.8, label=f"train (per step, dropout {dropout:g})" if dropout else "train (per step)")
    if evals:
        ax.plot([r["tokens"] for r in evals], [r["val_loss"] for r in evals], "o-", ms=3, label="val")
    max_tokens = max([r["tokens"] for r in train + evals] or [0])
    k = 1
    while tokens_per_epoch > 0 and k * tokens_per_epoch <= max_tokens and k <= 200:
        ax.axvline(k * tokens_per_epoch, color="grey", ls=":", lw=0.8, label="epoch boundary" if k == 1 else None)
        k += 1
    ax.set_xlabel("tokens")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    try:
        with atomic_file(path) as f:
            fig.savefig(f, format="png")
    finally:
        plt.close(fig)

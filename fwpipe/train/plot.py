"""The loss curve: loss against tokens seen on a log axis, epochs on top, the plateau marked.

Log tokens because the plateau diagnosis measures improvement per doubling of tokens: on a
log axis a steady improvement is a straight downward line and a plateau is a flat one. Three
curves, from metrics.jsonl: the logged step loss (train mode, so with dropout when dropout > 0;
thin, noisy), and at each eval the train loss in eval mode (no dropout) and the val loss. The
two eval-mode curves are the pair to compare: their gap is memorising, while the step loss sits
above them by the dropout's inflation. The first eval flagged `plateau` gets a shaded region
and the numbers that flagged it. With --hellaswag, acc_norm at each eval on a right-hand axis.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from fwpipe.atomic import atomic_file


def mathtext_safe(text: str) -> str:
    """`text` drawn as written: matplotlib reads $...$ as mathtext, and a lone `$` (a config
    named "run$1") makes drawing fail."""
    return text.replace("$", r"\$")


def loss_figure(records: list[dict[str, Any]], tokens_per_epoch: int, title: str = "", dropout: float = 0.0,
                diagnosis: dict[str, Any] | None = None):
    """A matplotlib figure of the run's losses (the caller saves and closes it)."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed; safe in threads and on servers
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    train = [r for r in records if r.get("kind") == "train" and r.get("tokens", 0) > 0 and r.get("loss") is not None]
    evals = [r for r in records if r.get("kind") == "eval" and r.get("tokens", 0) > 0 and r.get("val_loss") is not None]
    fig, ax = plt.subplots(figsize=(9, 4.8), dpi=100)
    if train:
        what = f"train step loss as logged (dropout {dropout:g})" if dropout else "train step loss as logged"
        ax.plot([r["tokens"] for r in train], [r["loss"] for r in train], lw=0.8, alpha=0.55, color="tab:blue", label=what)
    ev_train = [r for r in evals if r.get("train_loss") is not None]
    if ev_train:
        ax.plot([r["tokens"] for r in ev_train], [r["train_loss"] for r in ev_train], "s-", ms=4, lw=1.2, color="tab:green",
                label="train loss at evals (eval mode, no dropout)")
    if evals:
        ax.plot([r["tokens"] for r in evals], [r["val_loss"] for r in evals], "o-", ms=4, lw=1.5, color="tab:red", label="val loss at evals")
    hs = [r for r in evals if r.get("hellaswag_acc_norm") is not None]
    if hs:  # --hellaswag: accuracy on its own right-hand axis, chance (1 in 4 endings) marked
        ax2 = ax.twinx()
        ax2.plot([r["tokens"] for r in hs], [r["hellaswag_acc_norm"] for r in hs], "d--", ms=4, lw=1, color="tab:purple",
                 label="HellaSwag acc_norm (right axis)")
        ax2.axhline(0.25, color="tab:purple", lw=0.6, ls=":", alpha=0.6)
        ax2.set_ylabel("HellaSwag acc_norm (chance 0.25)", color="tab:purple")
        ax2.set_ylim(0, max(0.5, max(r["hellaswag_acc_norm"] for r in hs) + 0.05))
    xs = [r["tokens"] for r in train + evals]
    if xs:
        ax.set_xscale("log")
        lo, hi = min(xs), max(xs)
        k = max(1, int(lo // tokens_per_epoch)) if tokens_per_epoch > 0 else 0
        n = 0
        while tokens_per_epoch > 0 and k * tokens_per_epoch <= hi and n < 200:
            ax.axvline(k * tokens_per_epoch, color="grey", ls=":", lw=0.9, label="epoch boundary" if n == 0 else None)
            k, n = k + 1, n + 1
        if tokens_per_epoch > 0:
            sec = ax.secondary_xaxis("top", functions=(lambda t: t / tokens_per_epoch, lambda e: e * tokens_per_epoch))
            sec.set_xlabel("epochs")
            plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")  # 0.2, 1, 3: not 2x10^-1
            sec.xaxis.set_major_formatter(plain)
            # label the 2..9 ticks too when the run spans under ~1.5 decades, where they are the only ticks
            sec.xaxis.set_minor_formatter(plain if hi / lo < 30 else matplotlib.ticker.NullFormatter())
        plateau = next((r for r in evals if r.get("plateau")), None)
        if plateau is not None:
            ax.axvspan(plateau["tokens"], hi, color="tab:orange", alpha=0.12, label="plateau (diagnosed here)")
            per = plateau.get("improvement_per_doubling")
            t = plateau["tokens"]
            note = f"plateau at {t / 1e6:,.2f}M tokens" if t >= 1e6 else f"plateau at {t:,} tokens"
            if tokens_per_epoch > 0:
                note += f", epoch {plateau['tokens'] / tokens_per_epoch:.2f}"
            if per is not None:
                note += f":\nval improves {per:.3f} per doubling"
            ax.annotate(note, (plateau["tokens"], plateau["val_loss"]), xytext=(-12, 40), textcoords="offset points", ha="right",
                        fontsize=8.5, arrowprops={"arrowstyle": "->", "color": "tab:orange"},
                        bbox={"boxstyle": "round", "fc": "white", "ec": "tab:orange"})
        lines = [ln.strip() for ln in (diagnosis or {}).get("text", [])[1:] if ln.strip().startswith(("train ", "Chinchilla", "try:"))]
        if lines:  # the diagnosis's deciding lines, under the axes so that they hide no curve
            fig.text(0.01, -0.01, mathtext_safe("\n".join(textwrap.fill(ln, 130, subsequent_indent="    ") for ln in lines[:4])), ha="left", va="top",
                     fontsize=7.5, family="monospace", bbox={"boxstyle": "round", "fc": "#fff7e6", "ec": "tab:orange"})
    else:
        ax.text(0.5, 0.5, "no losses logged yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("tokens seen (log scale)")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(mathtext_safe(title), loc="left", fontsize=10, pad=24)  # above the epochs axis
    ax.grid(alpha=0.3, which="both")
    handles, labels = ax.get_legend_handles_labels()
    for other in fig.axes[1:]:  # the HellaSwag axis's line belongs in the one legend
        h, lab = other.get_legend_handles_labels() if hasattr(other, "get_legend_handles_labels") else ([], [])
        handles, labels = handles + h, labels + lab
    if labels:  # nothing to label before the first step (eval at iteration 0 only)
        ax.legend(handles, labels, fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def plot_losses(records: list[dict[str, Any]], tokens_per_epoch: int, path: Path, title: str = "", dropout: float = 0.0,
                diagnosis: dict[str, Any] | None = None) -> None:
    """Write the PNG atomically from metrics.jsonl records (kind 'train' and 'eval')."""
    import matplotlib.pyplot as plt

    fig = loss_figure(records, tokens_per_epoch, title, dropout, diagnosis)
    try:
        with atomic_file(path) as f:
            fig.savefig(f, format="png", bbox_inches="tight")  # tight: keeps the diagnosis text under the axes
    finally:
        plt.close(fig)

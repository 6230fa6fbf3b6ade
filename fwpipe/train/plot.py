"""The loss curve: loss against tokens seen on a log axis, epochs on top, the plateau marked.

Log tokens because the plateau diagnosis measures improvement per doubling of tokens: on a
log axis a steady improvement is a straight downward line and a plateau is a flat one. Three
curves, from metrics.jsonl: the logged step loss (train mode, so with dropout when dropout > 0;
thin, noisy), and at each eval the train loss in eval mode (no dropout) and the val loss. The
two eval-mode curves are the pair to compare: their gap is memorising, while the step loss sits
above them by the dropout's inflation. The first eval flagged `plateau` gets a shaded region
and the numbers that flagged it. With --hellaswag, acc_norm at each eval on a right-hand axis.

A log axis has no 0, so the eval at iteration 0 (the untrained model, ~ln(50257) = 10.8) is
drawn one doubling left of the first logged point, hollow, and labelled "iter 0" on the axis.
The budget (the planned end) is a dashed line whose label stays inside the axes; epoch labels
on the top axis are thinned until no two are closer than MIN_LABEL_PX. `verdict` (the
diagnosis's one line) goes in a title slot above the chart.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

from fwpipe.atomic import atomic_file
from fwpipe.fmt import loss as fmt_loss
from fwpipe.fmt import ratio
from fwpipe.fmt import tokens as fmt_tokens

MIN_LABEL_PX = 34  # the least distance between two epoch labels on the top axis (a label is ~3 characters)
CHAR_PX = 7.5  # width of one tick-label character at matplotlib's default 10 pt and 100 dpi (a digit is ~6.4)
MAX_BOUNDARY_LINES = 40  # more dotted epoch lines than this grey the chart out


def epoch_ticks(
    lo_tokens: float, hi_tokens: float, tokens_per_epoch: int, to_px, min_px: float = MIN_LABEL_PX
) -> list[float]:
    """The epoch values to label on the top axis between lo and hi tokens: 1..9 times each power
    of ten in range (0.02, 0.03, ..., 0.1, 0.2, ..., 1, 2, ..., 10, 20, ...), thinned left to
    right so that no two labels sit closer than min_px pixels (to_px maps tokens to display x).
    Labels of a log axis crowd to the right: thinning keeps the first of each crowd."""
    lo_e, hi_e = lo_tokens / tokens_per_epoch, hi_tokens / tokens_per_epoch
    if hi_e <= 0:
        return []
    first = math.floor(math.log10(max(lo_e, 1e-12)))
    cands = [float(f"{m}e{k}") for k in range(first, math.floor(math.log10(hi_e)) + 1) for m in range(1, 10)]
    cands = [e for e in cands if lo_e <= e <= hi_e]
    kept: list[float] = []
    last_px = None
    for e in sorted(set(cands)):
        px = to_px(e * tokens_per_epoch)
        # centres apart by half of each label's width and a gap: "0.0002" needs more room than "3"
        need = max(min_px, (len(ratio(kept[-1])) + len(ratio(e))) * CHAR_PX / 2 + 8) if kept else 0
        if last_px is None or px - last_px >= need:
            kept.append(e)
            last_px = px
    return kept


def mathtext_safe(text: str) -> str:
    """`text` drawn as written: matplotlib reads $...$ as mathtext, and a lone `$` (a config
    named "run$1") makes drawing fail."""
    return text.replace("$", r"\$")


def loss_figure(
    records: list[dict[str, Any]],
    tokens_per_epoch: int,
    title: str = "",
    dropout: float = 0.0,
    diagnosis: dict[str, Any] | None = None,
    *,
    budget_tokens: int | None = None,
    verdict: str | None = None,
):
    """A matplotlib figure of the run's losses (the caller saves and closes it)."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed; safe in threads and on servers
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    train = [r for r in records if r.get("kind") == "train" and r.get("tokens", 0) > 0 and r.get("loss") is not None]
    evals = [r for r in records if r.get("kind") == "eval" and r.get("tokens", 0) > 0 and r.get("val_loss") is not None]
    epoch_axis, lo = None, 0
    zero = next(
        (r for r in records if r.get("kind") == "eval" and r.get("tokens", 0) == 0 and r.get("val_loss") is not None),
        None,
    )
    fig, ax = plt.subplots(figsize=(9, 4.8), dpi=100)
    if train:
        what = f"train step loss as logged (dropout {dropout:g})" if dropout else "train step loss as logged"
        ax.plot(
            [r["tokens"] for r in train], [r["loss"] for r in train], lw=0.8, alpha=0.55, color="tab:blue", label=what
        )
    ev_train = [r for r in evals if r.get("train_loss") is not None]
    if ev_train:
        ax.plot(
            [r["tokens"] for r in ev_train],
            [r["train_loss"] for r in ev_train],
            "s-",
            ms=4,
            lw=1.2,
            color="tab:green",
            label="train loss at evals (eval mode, no dropout)",
        )
    if evals:
        ax.plot(
            [r["tokens"] for r in evals],
            [r["val_loss"] for r in evals],
            "o-",
            ms=4,
            lw=1.5,
            color="tab:red",
            label="val loss at evals",
        )
    hs = [r for r in evals if r.get("hellaswag_acc_norm") is not None]
    if hs:  # --hellaswag: accuracy on its own right-hand axis, chance (1 in 4 endings) marked
        ax2 = ax.twinx()
        ax2.plot(
            [r["tokens"] for r in hs],
            [r["hellaswag_acc_norm"] for r in hs],
            "d--",
            ms=4,
            lw=1,
            color="tab:purple",
            label="HellaSwag acc_norm (right axis)",
        )
        ax2.axhline(0.25, color="tab:purple", lw=0.6, ls=":", alpha=0.6)
        ax2.set_ylabel("HellaSwag acc_norm (chance 0.25)", color="tab:purple")
        ax2.set_ylim(0, max(0.5, max(r["hellaswag_acc_norm"] for r in hs) + 0.05))
    xs = [r["tokens"] for r in train + evals]
    if xs:
        ax.set_xscale("log")
        lo, hi = min(xs), max(xs)
        x0 = lo / 2  # where iteration 0 is drawn: one doubling left of the first logged point
        if zero is not None:
            first = min(evals, key=lambda r: r["tokens"]) if evals else None
            ax.plot(
                [x0],
                [zero["val_loss"]],
                "o",
                ms=6,
                mfc="white",
                mec="tab:red",
                color="tab:red",
                label=f"val loss at iteration 0 ({fmt_loss(zero['val_loss'])}; 0 tokens, drawn left of the log axis)",
            )
            if first is not None:  # dashed: the curve between 0 and the first eval is not measured
                ax.plot(
                    [x0, first["tokens"]],
                    [zero["val_loss"], first["val_loss"]],
                    ls="--",
                    lw=0.9,
                    color="tab:red",
                    alpha=0.6,
                )
            if zero.get("train_loss") is not None:
                ax.plot([x0], [zero["train_loss"]], "s", ms=5, mfc="white", mec="tab:green")
        right = max(hi, budget_tokens or 0)
        ax.set_xlim(x0 / 1.25 if zero is not None else lo / 1.25, right * 1.25)
        if zero is not None:  # say what the leftmost point is, beside it (an axis label there would meet 10^k's)
            ax.annotate(
                "iter 0",
                (x0, zero["val_loss"]),
                xytext=(7, -4),
                textcoords="offset points",
                fontsize=8.5,
                va="top",
                color="tab:red",
            )
        if budget_tokens:
            ax.axvline(budget_tokens, color="black", ls="--", lw=1.0)
            ax.text(
                budget_tokens,
                0.97,
                f"budget {fmt_tokens(budget_tokens)} tokens ",
                transform=ax.get_xaxis_transform(),
                ha="right",
                va="top",
                fontsize=8.5,
                bbox={"boxstyle": "round", "fc": "white", "ec": "black", "alpha": 0.85},
            )  # left of the line: inside
        if tokens_per_epoch > 0:
            sec = ax.secondary_xaxis("top", functions=(lambda t: t / tokens_per_epoch, lambda e: e * tokens_per_epoch))
            sec.set_xlabel("epochs")
            sec.xaxis.set_major_formatter(
                matplotlib.ticker.FuncFormatter(lambda v, _: ratio(v))
            )  # 0.2, 1, 3: not 2x10^-1
            sec.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
            epoch_axis = sec
        plateau = next((r for r in evals if r.get("plateau")), None)
        if plateau is not None:
            ax.axvspan(plateau["tokens"], hi, color="tab:orange", alpha=0.12, label="plateau (diagnosed here)")
            per = plateau.get("improvement_per_doubling")
            t = plateau["tokens"]
            note = f"plateau at {fmt_tokens(t)} tokens"
            if tokens_per_epoch > 0:
                note += f", epoch {ratio(plateau['tokens'] / tokens_per_epoch)}"
            if per is not None:
                note += f":\nval improves {per:.3f} per doubling"
            ax.annotate(
                note,
                (plateau["tokens"], plateau["val_loss"]),
                xytext=(-12, 40),
                textcoords="offset points",
                ha="right",
                fontsize=8.5,
                arrowprops={"arrowstyle": "->", "color": "tab:orange"},
                bbox={"boxstyle": "round", "fc": "white", "ec": "tab:orange"},
            )
        lines = [
            ln.strip() for ln in (diagnosis or {}).get("text", [])[1:3]
        ]  # fwpipe.diagnosis: the verdict and the top cause
        if lines:  # the diagnosis's deciding lines, under the axes so that they hide no curve
            fig.text(
                0.01,
                -0.01,
                mathtext_safe("\n".join(textwrap.fill(ln, 130, subsequent_indent="    ") for ln in lines[:4])),
                ha="left",
                va="top",
                fontsize=7.5,
                family="monospace",
                bbox={"boxstyle": "round", "fc": "#fff7e6", "ec": "tab:orange"},
            )
    else:
        ax.text(0.5, 0.5, "no losses logged yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("tokens seen (log scale)")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(mathtext_safe(title), loc="left", fontsize=10, pad=24)  # above the epochs axis
    if verdict:  # the diagnosis's verdict, one line above the title
        fig.suptitle(mathtext_safe(verdict), x=0.01, ha="left", fontsize=11, fontweight="bold", color="#b35900")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    if epoch_axis is not None:  # with the axes in their final place, label distances are the saved pixels
        ticks = epoch_ticks(lo, ax.get_xlim()[1], tokens_per_epoch, lambda t: ax.transData.transform((t, 0))[0])
        epoch_axis.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
        first = max(1, math.ceil(lo / tokens_per_epoch))
        every = [float(k) for k in range(first, int(ax.get_xlim()[1] // tokens_per_epoch) + 1)]
        # a line at every boundary while they stay apart; past MAX_BOUNDARY_LINES, only at the labelled epochs
        thin = len(every) > MAX_BOUNDARY_LINES
        name = "epoch boundary (at the labelled epochs)" if thin else "epoch boundary"
        for n, e in enumerate([e for e in ticks if e >= 1 and e == int(e)] if thin else every):
            ax.axvline(e * tokens_per_epoch, color="grey", ls=":", lw=0.9, label=name if n == 0 else None)
    handles, labels = ax.get_legend_handles_labels()
    for other in fig.axes[1:]:  # the HellaSwag axis's line belongs in the one legend
        h, lab = other.get_legend_handles_labels() if hasattr(other, "get_legend_handles_labels") else ([], [])
        handles, labels = handles + h, labels + lab
    if labels:  # nothing to label before the first step (eval at iteration 0 only)
        ax.legend(handles, labels, fontsize=8, loc="best")
    return fig


def plot_losses(
    records: list[dict[str, Any]],
    tokens_per_epoch: int,
    path: Path,
    title: str = "",
    dropout: float = 0.0,
    diagnosis: dict[str, Any] | None = None,
    *,
    budget_tokens: int | None = None,
    verdict: str | None = None,
) -> None:
    """Write the PNG atomically from metrics.jsonl records (kind 'train' and 'eval')."""
    import matplotlib.pyplot as plt

    fig = loss_figure(
        records, tokens_per_epoch, title, dropout, diagnosis, budget_tokens=budget_tokens, verdict=verdict
    )
    try:
        with atomic_file(path) as f:
            fig.savefig(f, format="png", bbox_inches="tight")  # tight: keeps the diagnosis text under the axes
    finally:
        plt.close(fig)

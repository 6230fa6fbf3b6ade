"""The terminal lines of a training run's events (fwpipe.train.loop emits them; the CLI prints).

One line per event, as `fwpipe train` shows them: `train` every log_interval, `eval` at every
eval with a val split, the `diagnosis` block, `message` notes and warnings, and `done`. Imports
the ground floor only (fmt, progress), so `fwpipe.cli` can import it without torch.
"""

from __future__ import annotations

from typing import Any

from fwpipe.fmt import clock as fmt_clock
from fwpipe.fmt import loss, pct, ratio, tokens
from fwpipe.progress import RunClock


def is_warning(e: dict[str, Any]) -> bool:
    """A warning goes to stderr even when stdout carries the run's lines."""
    return e["kind"] == "message" and e.get("level") == "warning"


def event_lines(e: dict[str, Any], clock: RunClock | None = None) -> list[str]:
    """The lines of one event (none for an eval without a val loss, or an unknown kind). With
    the run's clock, `train` lines show the iteration as i/N, time elapsed and an ETA."""
    kind = e["kind"]
    if kind == "train":
        mfu = f" | mfu {pct(e['mfu'])}" if e.get("mfu") is not None else ""
        it = clock.iteration(e["iter"]) if clock else f"{e['iter']:,}"
        when = f" | {clock.text(e['iter'])}" if clock else ""
        return [
            f"iter {it} | loss {loss(e['loss'])} | lr {e['lr']:.2e} | grad {e['grad_norm']:.3f} | "
            f"{tokens(e['tokens_per_s'])} tok/s{mfu} | epoch {ratio(e['epoch'])}{when}"
        ]
    if kind == "eval":
        if e.get("val_loss") is None:
            return []
        trend = (
            f" | {e['improvement_per_doubling']:.3f}/doubling" if e.get("improvement_per_doubling") is not None else ""
        )
        hs = f" | hellaswag {pct(e['hellaswag_acc_norm'])}" if e.get("hellaswag_acc_norm") is not None else ""
        return [
            f"eval iter {e['iter']:,}: val {loss(e['val_loss'])} | train {loss(e['train_loss'])} (no dropout){trend}{hs}"
        ]
    if kind == "diagnosis":
        return list(e["text"])
    if kind == "message":
        return [("warning: " if is_warning(e) else "") + e["text"]]
    if kind == "done":
        state = "done" if e["complete"] else "stopped"
        best = f", best val {loss(e['best_val_loss'])}" if e.get("best_val_loss") is not None else ""
        took = f" in {fmt_clock(clock.elapsed())}" if clock else ""
        return [
            f"{state}: {e['iterations']:,}/{e['max_iterations']:,} iterations{took}, {tokens(e['tokens'])} tokens, "
            f"epoch {ratio(e['epoch'])}{best}, {e.get('recipe', 'nanogpt')} recipe; outputs in {e['out']}"
        ]
    return []

"""The terminal lines of a training run's events (fwpipe.train.loop emits them; the CLI prints).

One line per event, as `fwpipe train` shows them: `train` every log_interval, `eval` at every
eval with a val split, the `diagnosis` block, `message` notes and warnings, and `done`. Imports
nothing but the standard library, so `fwpipe.cli` can import it without torch.
"""

from __future__ import annotations

from typing import Any


def is_warning(e: dict[str, Any]) -> bool:
    """A warning goes to stderr even when stdout carries the run's lines."""
    return e["kind"] == "message" and e.get("level") == "warning"


def event_lines(e: dict[str, Any]) -> list[str]:
    """The lines of one event (none for an eval without a val loss, or an unknown kind)."""
    kind = e["kind"]
    if kind == "train":
        mfu = f" | mfu {e['mfu']:.1%}" if e.get("mfu") is not None else ""
        return [f"iter {e['iter']:,} | loss {e['loss']:.4f} | lr {e['lr']:.2e} | grad {e['grad_norm']:.3f} | "
                f"{e['tokens_per_s']:,.0f} tok/s{mfu} | epoch {e['epoch']:.3f}"]
    if kind == "eval":
        if e.get("val_loss") is None:
            return []
        trend = f" | {e['improvement_per_doubling']:.3f}/doubling" if e.get("improvement_per_doubling") is not None else ""
        hs = f" | hellaswag {e['hellaswag_acc_norm']:.2%}" if e.get("hellaswag_acc_norm") is not None else ""
        return [f"eval iter {e['iter']:,}: val {e['val_loss']:.4f} | train {e['train_loss']:.4f} (no dropout){trend}{hs}"]
    if kind == "diagnosis":
        return list(e["text"])
    if kind == "message":
        return [("warning: " if is_warning(e) else "") + e["text"]]
    if kind == "done":
        state = "done" if e["complete"] else "stopped"
        best = f", best val {e['best_val_loss']:.4f}" if e.get("best_val_loss") is not None else ""
        return [f"{state}: {e['iterations']:,}/{e['max_iterations']:,} iterations, {e['tokens']:,} tokens, "
                f"epoch {e['epoch']:.3f}{best}; outputs in {e['out']}"]
    return []

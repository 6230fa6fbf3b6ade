"""Plateau diagnosis: is val loss still falling, and if not, what is holding it up?

At each eval the val-loss improvement per doubling of tokens seen is the negative slope of a
least-squares line through (log2 tokens, val loss) over the recent evals. Under a threshold the
run has plateaued, and the diagnosis gives the numbers that decide what to change: epochs so
far, the train-val gap (read without dropout), the Chinchilla fit's capacity term (model size)
against its data term (effective data after repetition), and what each change should buy.
The fit's terms are a trend from another corpus and tokenizer: their differences, not their
absolute values, are what the advice uses.
"""

from __future__ import annotations

import math
from typing import Any

from fwpipe import budget
from fwpipe.fmt import loss, params, ratio, tokens

RECENT_EVALS = 4


def improvement_per_doubling(evals: list[dict[str, Any]], k: int = RECENT_EVALS) -> float | None:
    """Val-loss drop per doubling of tokens over the last k evals (positive = improving)."""
    pts = [(math.log2(e["tokens"]), e["val_loss"]) for e in evals if e.get("tokens", 0) > 0 and e.get("val_loss") is not None][-k:]
    if len(pts) < 3:
        return None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    if sxx == 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in pts) / sxx
    return -slope


def diagnose(evals: list[dict[str, Any]], *, n_params: int, unique_tokens: int, budget_tokens: int, dropout: float,
             lr: float, min_lr: float, threshold: float, step_loss: float | None = None) -> dict[str, Any]:
    """{'improvement_per_doubling', 'plateau', and when plateaued 'diagnosis' with numbers and advice}."""
    per_doubling = improvement_per_doubling(evals)
    out: dict[str, Any] = {"improvement_per_doubling": per_doubling, "plateau": per_doubling is not None and per_doubling < threshold}
    if not out["plateau"]:
        return out
    last = evals[-1]
    seen = last["tokens"]
    epochs_so_far = last.get("epoch", seen / unique_tokens)
    eff_seen = budget.effective_tokens(seen, unique_tokens)
    eff_plan = budget.effective_tokens(budget_tokens, unique_tokens)
    capacity = budget.FIT_A / n_params**budget.FIT_ALPHA
    data = budget.FIT_B / eff_seen**budget.FIT_BETA
    gap = last["val_loss"] - last["train_loss"] if last.get("train_loss") is not None else None
    d: dict[str, Any] = {
        "tokens_seen": seen,
        "epochs": epochs_so_far,
        "val_loss": last["val_loss"],
        "train_loss_eval": last.get("train_loss"),
        "train_val_gap": gap,
        "capacity_term": capacity,
        "data_term": data,
        "effective_tokens_seen": eff_seen,
        "advice": [],
    }
    lines = [f"plateau: val loss improves {per_doubling:.3f} per doubling of tokens (threshold {threshold:g}) "
             f"at {tokens(seen)} tokens, epoch {ratio(epochs_so_far)}"]
    if gap is not None:
        read = "val above train: the model fits repeated train text better than unseen text" if gap > 0.05 else "no sign of memorising"
        lines.append(f"  train {loss(last['train_loss'])} vs val {loss(last['val_loss'])} in eval mode (gap {gap:+.3f}; {read})")
    if dropout > 0 and step_loss is not None and last.get("train_loss") is not None:
        d["dropout_inflation"] = step_loss - last["train_loss"]
        lines.append(f"  the logged step loss {loss(step_loss)} runs with dropout {dropout:g}: about {d['dropout_inflation']:+.3f} "
                     "above the same model's eval-mode train loss, so step loss above val loss is dropout, not a bug")
    bigger = "data" if data > capacity else "capacity"
    lines.append(f"  Chinchilla trend: capacity term {loss(capacity)} (N={params(n_params)}) vs data term {loss(data)} "
                 f"(effective {tokens(eff_seen)} tokens after {ratio(epochs_so_far)} epochs): the {bigger} term is larger")
    # 1. more unique data: the whole budget fresh instead of repeated
    if budget_tokens > unique_tokens:
        gain = budget.FIT_B / eff_plan**budget.FIT_BETA - budget.FIT_B / budget_tokens**budget.FIT_BETA
        d["advice"].append({"change": "more unique data", "detail": f"prepare {tokens(budget.unique_tokens_needed(budget_tokens, 1))} unique tokens so the budget runs one epoch",
                            "expected_loss_change": -gain})
    # 2. a compute-optimal model for the same compute C = 6*N*D
    n_opt, d_opt = budget.compute_optimal(6 * n_params * budget_tokens)
    now = budget.chinchilla_loss(n_params, eff_plan)
    at_opt = budget.chinchilla_loss(n_opt, budget.effective_tokens(d_opt, unique_tokens))
    d["advice"].append({"change": "compute-optimal model size", "detail": f"~{params(n_opt)} params on {tokens(d_opt)} tokens (same FLOPs)",
                        "expected_loss_change": at_opt - now})
    # 3. the LR floor: no scaling fit covers it
    if min_lr > lr / 50:
        d["advice"].append({"change": "lower LR floor", "detail": f"min_lr {min_lr:g} is lr/{lr / min_lr:.0f}; decay towards lr/100 or 0 at the end",
                            "expected_loss_change": None})
    for a in d["advice"]:
        eff = a["expected_loss_change"]
        what = f"{eff:+.3f} loss by the fit's trend" if eff is not None else "not covered by the fits; usually a few hundredths late in the run"
        lines.append(f"  try: {a['change']}: {a['detail']} ({what})")
    d["text"] = lines
    out["diagnosis"] = d
    return out

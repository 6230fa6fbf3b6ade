"""Budget arithmetic shared by prepare, audit and train: epochs, effective data, Chinchilla sizing.

The one owner of the numbers behind every budget answer: the unique tokens a budget needs at a
number of epochs (prepare's stopping point, audit's and train's advice), the 4 / 16-epoch
verdict thresholds, Chinchilla's 20 tokens per parameter (the default budget for a model size)
and the compute-optimal split, so that `prepare`, `audit` and `train` print the same numbers.
"""

from __future__ import annotations

import math
from typing import Literal

from fwpipe.errors import BudgetError

R_STAR = 15.4  # Muennighoff et al. 2023, "Scaling Data-Constrained Language Models", fitted R*_D
# Muennighoff et al. 2023: up to ~4 epochs repeated data is almost as good as fresh; past ~16
# (R* ~ 15 repeats) more repeats add almost no effective data. The verdicts, audit's advice and
# train's warning (past 4) and refusal (past 16) all use these two.
REPEATS_FREE_EPOCHS = 4
REPEATS_MAX_EPOCHS = 16
CHINCHILLA_TOKENS_PER_PARAM = 20.0  # Hoffmann et al. 2022, the rule of thumb (Table 3: 400M params -> 8.0B tokens)
# The loss trend of a scaling fit (and what to change) lives in fwpipe.diagnosis.trend.

Verdict = Literal["fresh", "nearly-free", "diminishing", "wasted"]
VERDICT_TEXT = {
    "fresh": "at most 1 epoch: every token is fresh",
    "nearly-free": f"at most {REPEATS_FREE_EPOCHS:g} epochs: repeats are nearly as good as fresh data",
    "diminishing": f"{REPEATS_FREE_EPOCHS:g}-{REPEATS_MAX_EPOCHS:g} epochs: each repeat is worth less; more unique data would help",
    "wasted": f"over {REPEATS_MAX_EPOCHS:g} epochs: most repeated tokens are wasted compute",
}


def check_budget(budget_tokens: float) -> int:
    if not (budget_tokens > 0) or math.isinf(budget_tokens):
        raise BudgetError(
            f"budget of {budget_tokens} tokens is not a positive number", "pass e.g. --budget-tokens 7.6e9"
        )
    return int(round(budget_tokens))


def check_max_epochs(max_epochs: float) -> float:
    if not (max_epochs > 0) or math.isinf(max_epochs):
        raise BudgetError(
            f"--max-epochs {max_epochs} is not a positive number",
            f"pass e.g. --max-epochs 1 (fresh data) or {REPEATS_FREE_EPOCHS:g} (repeats nearly as good)",
        )
    return float(max_epochs)


def unique_tokens_needed(budget_tokens: float, max_epochs: float) -> int:
    """Unique (train stream) tokens that run `budget_tokens` in at most `max_epochs` epochs: the
    per-epoch target prepare stops at, and what audit and train advise preparing."""
    return math.ceil(budget_tokens / max_epochs)


def budget_for_params(n_params: float) -> int:
    """The default budget for a model of n_params: Chinchilla's ~20 tokens per parameter."""
    return check_budget(CHINCHILLA_TOKENS_PER_PARAM * n_params)


def budget_or_chinchilla(budget_tokens: float | None, n_params: float | None) -> tuple[int | None, str | None]:
    """The budget a command works to, and where it came from: --budget-tokens ("budget_tokens"),
    else Chinchilla's tokens per parameter of --params ("chinchilla"), else none (None, None).
    The one place where --params becomes a budget (estimate, prepare --estimate, audit)."""
    if budget_tokens is not None:
        return check_budget(budget_tokens), "budget_tokens"
    if n_params is not None:
        return budget_for_params(n_params), "chinchilla"
    return None, None


def epochs(budget_tokens: float, unique_tokens: float) -> float:
    if unique_tokens <= 0:
        raise BudgetError("the dataset holds no training tokens", "prepare a dataset with a train split first")
    return budget_tokens / unique_tokens


def effective_tokens(budget_tokens: float, unique_tokens: float, r_star: float = R_STAR) -> float:
    """Effective data D' after repetition, Muennighoff et al. 2023: U + U*R*(1 - exp(-R/R*)).

    R = epochs - 1 repeats. Under one epoch nothing repeats and D' is simply the budget.
    """
    e = epochs(budget_tokens, unique_tokens)
    if e <= 1:
        return float(budget_tokens)
    r = e - 1
    return unique_tokens + unique_tokens * r_star * (1 - math.exp(-r / r_star))


def verdict(n_epochs: float) -> Verdict:
    if n_epochs <= 1:
        return "fresh"
    if n_epochs <= REPEATS_FREE_EPOCHS:
        return "nearly-free"
    if n_epochs <= REPEATS_MAX_EPOCHS:
        return "diminishing"
    return "wasted"


def compute_optimal(flops: float) -> tuple[float, float]:
    """Compute-optimal (N, D) for C = 6*N*D at D = 20*N (Chinchilla rule of thumb)."""
    n = math.sqrt(flops / (6 * CHINCHILLA_TOKENS_PER_PARAM))
    return n, CHINCHILLA_TOKENS_PER_PARAM * n


def chinchilla_verdict(tokens_per_param: float) -> str:
    """Where a run sits against Chinchilla's ~20 tokens per parameter (within 2x either way: near)."""
    ratio = tokens_per_param / CHINCHILLA_TOKENS_PER_PARAM
    if ratio < 0.5:
        return "under-trained for its size: a smaller model would reach a lower loss on this budget"
    if ratio <= 2:
        return f"near compute-optimal (Chinchilla ~{CHINCHILLA_TOKENS_PER_PARAM:g} tokens per parameter)"
    return "past compute-optimal: fine for a model meant to be small at inference"


def files_needed(unique_tokens: float, n_files: int, budget_tokens: float, max_epochs: float) -> int:
    """Total input files like these needed so the budget runs at most `max_epochs` epochs."""
    per_file = unique_tokens / max(n_files, 1)
    return max(n_files, math.ceil(budget_tokens / (max_epochs * per_file)))


def plan(budget_tokens: float, unique_tokens: float, n_params: float | None = None) -> dict:
    """The budget section shared by audit, train's plan and prepare --estimate."""
    e = epochs(budget_tokens, unique_tokens)
    out = {
        "budget_tokens": int(budget_tokens),
        "unique_tokens": int(unique_tokens),
        "epochs": e,
        "effective_tokens": effective_tokens(budget_tokens, unique_tokens),
        "verdict": verdict(e),
        "verdict_text": VERDICT_TEXT[verdict(e)],
    }
    out["effective_fraction"] = out["effective_tokens"] / budget_tokens
    if n_params:
        c = 6 * n_params * budget_tokens
        n_opt, d_opt = compute_optimal(c)
        out.update(
            params=int(n_params),
            tokens_per_param=budget_tokens / n_params,
            chinchilla_tokens_per_param=CHINCHILLA_TOKENS_PER_PARAM,
            compute_flops=c,
            optimal_params=n_opt,
            optimal_tokens=d_opt,
        )
    return out

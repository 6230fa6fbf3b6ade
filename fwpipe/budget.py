"""Budget arithmetic shared by audit and train: epochs, effective data, Chinchilla sizing.

One implementation, so that `fwpipe audit` and `fwpipe train` print the same numbers.
"""

from __future__ import annotations

import math
from typing import Literal

from fwpipe.errors import BudgetError

R_STAR = 15.4  # Muennighoff et al. 2023, "Scaling Data-Constrained Language Models", fitted R*_D
CHINCHILLA_TOKENS_PER_PARAM = 20.0  # Hoffmann et al. 2022, the rule of thumb
# Chinchilla's parametric fit (Hoffmann et al. 2022, approach 3): L = E + A/N^alpha + B/D^beta,
# fitted on MassiveText with a SentencePiece tokenizer: a trend, not a prediction for GPT-2 BPE.
FIT_E, FIT_A, FIT_B, FIT_ALPHA, FIT_BETA = 1.69, 406.4, 410.7, 0.34, 0.28

Verdict = Literal["fresh", "nearly-free", "diminishing", "wasted"]
VERDICT_TEXT = {
    "fresh": "at most 1 epoch: every token is fresh",
    "nearly-free": "at most 4 epochs: repeats are nearly as good as fresh data",
    "diminishing": "4-16 epochs: each repeat is worth less; more unique data would help",
    "wasted": "over 16 epochs: most repeated tokens are wasted compute",
}


def check_budget(budget_tokens: float) -> int:
    if not (budget_tokens > 0) or math.isinf(budget_tokens):
        raise BudgetError(f"budget of {budget_tokens} tokens is not a positive number", "pass e.g. --budget-tokens 7.6e9")
    return int(round(budget_tokens))


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
    if n_epochs <= 4:
        return "nearly-free"
    if n_epochs <= 16:
        return "diminishing"
    return "wasted"


def compute_optimal(flops: float) -> tuple[float, float]:
    """Compute-optimal (N, D) for C = 6*N*D at D = 20*N (Chinchilla rule of thumb)."""
    n = math.sqrt(flops / (6 * CHINCHILLA_TOKENS_PER_PARAM))
    return n, CHINCHILLA_TOKENS_PER_PARAM * n


def chinchilla_loss(n_params: float, n_tokens: float) -> float:
    return FIT_E + FIT_A / n_params**FIT_ALPHA + FIT_B / n_tokens**FIT_BETA


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

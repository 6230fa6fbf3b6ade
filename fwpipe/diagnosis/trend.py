"""The loss trend of a parametric scaling fit, told honestly, and the what-if table.

The fit is Chinchilla's approach 3 form L(N, D) = E + A/N^alpha + B/D^beta with the parameters
of Besiroglu et al. 2024 ("Chinchilla Scaling: A replication attempt"), who refit Hoffmann et
al. 2022's own data points. It was fit on MassiveText with a SentencePiece tokenizer, so its
absolute value is a trend for GPT-2 BPE on FineWeb, not a prediction; differences between rows
(same fit, same caveat) are what the advice uses. D is the effective data after repetition
(Muennighoff et al. 2023, fwpipe.budget.effective_tokens).

Honesty rules: a value is given only for N and D inside the range the fit's runs covered
(Hoffmann et al.: 70M-16B parameters, 5B-500B tokens), or at most EXTRAPOLATE times outside it,
then marked "extrapolated"; beyond that the trend is None and the reason is said in words. A
trend above the unigram entropy of the data (the loss of a model that only knows token
frequencies) is never printed: it would mean the fit is outside anything it can describe.
"""

from __future__ import annotations

import math
from typing import Any

from fwpipe import budget as B

FIT_NAME = "Chinchilla approach-3 fit, Besiroglu et al. 2024 replication"
FIT_E, FIT_A, FIT_B, FIT_ALPHA, FIT_BETA = 1.82, 482.01, 2085.43, 0.3478, 0.3658
FIT_N_RANGE = (70e6, 16e9)  # Hoffmann et al. 2022: "from 70 million to over 16 billion parameters"
FIT_D_RANGE = (5e9, 500e9)  # "on 5 to 500 billion tokens"
EXTRAPOLATE = 2.5  # a choice: values up to 2.5x outside the sampled range are shown, marked
FIT_NOTE = (
    f"{FIT_NAME} (E={FIT_E}, A={FIT_A}, B={FIT_B}, alpha={FIT_ALPHA}, beta={FIT_BETA}), fit on MassiveText with a "
    "SentencePiece tokenizer: a trend for GPT-2 tokens on FineWeb, not a prediction; "
    f"fit range {FIT_N_RANGE[0] / 1e6:.0f}M-{FIT_N_RANGE[1] / 1e9:.0f}B params, "
    f"{FIT_D_RANGE[0] / 1e9:.0f}B-{FIT_D_RANGE[1] / 1e9:.0f}B tokens"
)


def fit_loss(n_params: float, n_tokens: float) -> float:
    """The raw formula, anywhere (callers that print it go through trend())."""
    return FIT_E + FIT_A / n_params**FIT_ALPHA + FIT_B / n_tokens**FIT_BETA


def _where(x: float, lo: float, hi: float) -> str:
    """'in', 'near' (within EXTRAPOLATE of the range) or 'out'."""
    if lo <= x <= hi:
        return "in"
    return "near" if lo / EXTRAPOLATE <= x <= hi * EXTRAPOLATE else "out"


def trend(n_params: float, effective_tokens: float, unigram_entropy: float | None = None) -> dict[str, Any]:
    """{'loss': float | None, 'range': 'in' | 'extrapolated' | 'out', 'why': words}."""
    wn = _where(n_params, *FIT_N_RANGE)
    wd = _where(effective_tokens, *FIT_D_RANGE)
    value = fit_loss(n_params, effective_tokens)
    parts = []
    if wn != "in":
        parts.append(
            f"{n_params / 1e6:.3g}M params is outside the fit's {FIT_N_RANGE[0] / 1e6:.0f}M-{FIT_N_RANGE[1] / 1e9:.0f}B"
        )
    if wd != "in":
        parts.append(
            f"{effective_tokens / 1e9:.3g}B effective tokens is outside the fit's "
            f"{FIT_D_RANGE[0] / 1e9:.0f}B-{FIT_D_RANGE[1] / 1e9:.0f}B"
        )
    if "out" in (wn, wd):
        return {"loss": None, "range": "out", "why": "; ".join(parts) + f" (more than {EXTRAPOLATE:g}x): no trend"}
    if unigram_entropy is not None and value >= unigram_entropy:
        return {
            "loss": None,
            "range": "out",
            "why": f"the fit gives {value:.2f}, above the unigram entropy {unigram_entropy:.2f}: no trend",
        }
    if parts:
        return {
            "loss": value,
            "range": "extrapolated",
            "why": "; ".join(parts) + f" (within {EXTRAPOLATE:g}x: extrapolated)",
        }
    return {"loss": value, "range": "in", "why": "inside the fit's range"}


def what_if(
    n_params: float, budget_tokens: float, unique_tokens: float, unigram_entropy: float | None = None
) -> list[dict[str, Any]]:
    """The four rows: as is, 4x unique data, the compute-optimal model for the same compute
    (C = 6*N*D at Chinchilla's ~20 tokens/param), and both. Each: params, tokens, unique
    tokens, epochs, effective tokens, tokens per parameter, the trend and its change from "as is"."""
    n_opt, d_opt = B.compute_optimal(6 * n_params * budget_tokens)
    rows = []
    for name, n, d, u in (
        ("as is", n_params, budget_tokens, unique_tokens),
        ("4x unique data", n_params, budget_tokens, 4 * unique_tokens),
        ("compute-optimal model for the same compute", n_opt, d_opt, unique_tokens),
        ("both", n_opt, d_opt, 4 * unique_tokens),
    ):
        eff = B.effective_tokens(d, u)
        rows.append(
            {
                "row": name,
                "params": n,
                "tokens": d,
                "unique_tokens": u,
                "epochs": d / u,
                "effective_tokens": eff,
                "tokens_per_param": d / n,
                "trend": trend(n, eff, unigram_entropy),
            }
        )
    base = rows[0]["trend"]["loss"]
    for r in rows:
        t = r["trend"]["loss"]
        r["loss_change"] = t - base if t is not None and base is not None else None
    return rows


def format_what_if(rows: list[dict[str, Any]]) -> list[str]:
    from fwpipe.fmt import loss, params, ratio, tokens

    out = [f"  {'what if':<44}{'params':>8}{'epochs':>8}{'effective':>11}{'tok/param':>10}  loss trend"]
    for r in rows:
        t = r["trend"]
        if t["loss"] is None:
            trend = "outside the fit's range"
        else:
            trend = loss(t["loss"]) + (
                f" ({r['loss_change']:+.3f})" if r["row"] != "as is" and r["loss_change"] is not None else ""
            )
            trend += " extrapolated" if t["range"] == "extrapolated" else ""
        out.append(
            f"  {r['row']:<44}{params(r['params']):>8}{ratio(r['epochs']):>8}{tokens(r['effective_tokens']):>11}"
            f"{ratio(r['tokens_per_param']):>10}  {trend}"
        )
    out.append(f"  (trend: {FIT_NOTE}; effective data after Muennighoff et al. 2023, R*_D = {B.R_STAR:g})")
    return out


def slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of y on x; None for fewer than 2 distinct x."""
    if len(points) < 2:
        return None
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in points) / sxx


def log2_ratio(a: float, b: float) -> float:
    return math.log2(a / b) if a > 0 and b > 0 else 0.0

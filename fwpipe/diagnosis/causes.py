"""The six causes of a stalled loss, each scored in the same unit so that they rank.

Score: the estimated val-loss excess in nats attributable to the cause, i.e. how much lower the
loss (or, for leakage, how much higher the honest loss) would be without it; 0 = no sign. Every
score is built from numbers in `evidence`:

    repetition       epochs > 1 only: max(measured, fit). measured = the train-val gap beyond the
                     noise band (eval-mode train below val: the model fits repeated text better than
                     unseen text) + how far val rose above its best. fit = trend(N, effective data)
                     - trend(N, the same tokens fresh), where the trend is in range (trend.py).
    capacity         max(measured, fit). measured = the stall: the drop the first half's
                     per-doubling slope predicts over the second half minus the drop measured,
                     less what repetition and learning_rate already explain. fit = trend(N, D') -
                     trend(compute-optimal N, its D') for the same compute, in range.
    learning_rate    too high: the worst rise of the train loss above its running best (from the
                     eval at 0 tokens on), when over 0.1 nats (instability: on a fixed train sample
                     repetition only lowers it), or the stall if larger; the stall alone when the
                     loss sits within 0.25 nats of the unigram entropy; a divergence (non-finite
                     loss) counts the whole rise. llm.c logs have no eval-mode train loss: the mean
                     of the last 5 logged step losses stands in. Too low cannot be told from
                     the curve alone: `fwpipe diagnose --probe` measures lr x0.3 and x3.
    leakage          the share of val documents with an exact or near copy in train, times the val
                     loss (before a curve exists: the fit's trend, where in range): an upper bound on how much the val loss understates unseen-text loss
                     (a memorised document costs ~0). Flagged whenever any val document is copied.
    eval_noise       the noise band (2 sigma of the val estimate, sigma ~ val_loss/sqrt(eval tokens):
                     per-token losses have a standard deviation close to their mean, and tokens are
                     counted as independent) minus the change being judged (the recent
                     per-doubling improvement times the doublings the last 4 evals span), when positive.
    still_improving  the recent improvement per doubling beyond the noise band's slope (band / the
                     doublings spanned), times the doublings left to the end of the budget (at least
                     one: "twice the tokens").

`expected_loss_change` is -score for the causes a change removes (positive for leakage: the
honest loss is higher; 0 for eval_noise: more eval batches change the judgement, not the loss).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from fwpipe import budget as B
from fwpipe.diagnosis import trend as T
from fwpipe.fmt import count

CAUSES = ("repetition", "capacity", "learning_rate", "leakage", "eval_noise", "still_improving")
RECENT_EVALS = 4
SPIKE_NATS = 0.1  # a rise of the fixed-sample train loss above its running best larger than this is instability
STUCK_NATS = 0.25  # within this of the unigram entropy the model has learned little beyond token frequencies
PLATEAU_THRESHOLD = 0.02  # nats per doubling of tokens; TrainConfig.plateau_threshold defaults to it


@dataclass
class Inputs:
    """Plain numbers and records: what a run directory, a log or a plan can tell."""

    evals: list[dict[str, Any]]  # {tokens, val_loss, train_loss (eval mode, optional), epoch (optional)}
    train: list[dict[str, Any]] = field(default_factory=list)  # {tokens, loss}: the logged step losses
    n_params: float | None = None  # without position embeddings, as the fits count them
    budget_tokens: float | None = None
    unique_tokens: float | None = None  # train tokens in one epoch
    tokens_per_iter: int | None = None
    eval_tokens: int | None = None  # eval_iters * batch_size * block_size
    eval_iters: int | None = None
    lr: float | None = None
    unigram_entropy: float | None = None  # nats, of the train tokens
    leakage: dict[str, Any] | None = None  # audit's leakage section: exact/near/ngram fractions, examples
    diverged: bool = False
    threshold: float = PLATEAU_THRESHOLD


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def improvement_per_doubling(evals: list[dict[str, Any]], k: int = RECENT_EVALS) -> float | None:
    """Val-loss drop per doubling of tokens seen over the last k evals (positive = improving):
    minus the least-squares slope of val loss on log2(tokens). The eval at 0 tokens has no log."""
    pts = [
        (math.log2(e["tokens"]), e["val_loss"]) for e in evals if e.get("tokens", 0) > 0 and _finite(e.get("val_loss"))
    ][-k:]
    if len(pts) < 3:
        return None
    s = T.slope(pts)
    return None if s is None else -s


def _train_at_evals(ev: list[dict[str, Any]], train: list[dict[str, Any]], window: int = 5) -> list[float | None]:
    """The train loss at each eval: the eval-mode estimate where logged (fwpipe, nanoGPT), else
    the mean of the last `window` logged step losses up to that eval (llm.c logs)."""
    out: list[float | None] = []
    for e in ev:
        if _finite(e.get("train_loss")):
            out.append(e["train_loss"])
            continue
        steps = [r["loss"] for r in train if r.get("tokens", 0) <= e["tokens"] and _finite(r.get("loss"))][-window:]
        out.append(sum(steps) / len(steps) if steps else None)
    return out


def _cause(name: str, score: float, evidence: dict[str, Any], advice: str, change: float | None) -> dict[str, Any]:
    return {
        "name": name,
        "score": max(0.0, score),
        "evidence": evidence,
        "advice": advice,
        "expected_loss_change": change,
    }


def diagnose(x: Inputs) -> dict[str, Any]:
    """{'verdict', 'causes' (ranked, highest score first; ties keep CAUSES order), 'inputs', 'what_if'}."""
    ev = [e for e in x.evals if e.get("tokens", 0) > 0 and _finite(e.get("val_loss"))]
    last = ev[-1] if ev else None
    val = last["val_loss"] if last else None
    t_last = last["tokens"] if last else None
    epochs = (
        x.budget_tokens / x.unique_tokens
        if not ev and x.budget_tokens and x.unique_tokens
        else last.get("epoch")
        if last and last.get("epoch") is not None
        else (t_last / x.unique_tokens if t_last and x.unique_tokens else None)
    )
    s_recent = improvement_per_doubling(ev)
    half = ev[: max(3, len(ev) // 2)] if len(ev) >= 6 else []
    s_early = improvement_per_doubling(half, k=len(half)) if half else None
    stall = 0.0
    if s_early is not None and half:
        mid = half[-1]
        stall = max(0.0, s_early * T.log2_ratio(t_last, mid["tokens"]) - (mid["val_loss"] - val))
    sigma = val / math.sqrt(x.eval_tokens) if val is not None and x.eval_tokens else None
    band = 2 * sigma if sigma is not None else None
    trains = _train_at_evals(ev, x.train)
    gap = val - trains[-1] if trains and trains[-1] is not None else None
    rise_val = val - min(e["val_loss"] for e in ev) if ev else 0.0
    # the worst rise of the train loss above its running best, counting the eval at 0 tokens:
    # on a fixed train sample repetition only lowers it, so a rise is the optimiser's
    t0 = [e.get("train_loss") for e in x.evals[:1] if e.get("tokens", 0) == 0 and _finite(e.get("train_loss"))]
    seq = t0 + [t for t in trains if t is not None]
    spike = max((seq[i] - min(seq[:i]) for i in range(1, len(seq))), default=0.0)
    unstable = spike > SPIKE_NATS
    stuck = x.unigram_entropy is not None and val is not None and len(ev) >= 3 and val > x.unigram_entropy - STUCK_NATS

    # the fit's view, only where it is allowed to speak (trend.py)
    rows = (
        T.what_if(x.n_params, x.budget_tokens, x.unique_tokens, x.unigram_entropy)
        if (x.n_params and x.budget_tokens and x.unique_tokens)
        else None
    )
    fit_rep = fit_cap = None
    if rows:
        as_is = rows[0]["trend"]["loss"]
        fresh = T.trend(x.n_params, x.budget_tokens, x.unigram_entropy)["loss"]
        if as_is is not None and fresh is not None and rows[0]["epochs"] > 1:
            fit_rep = as_is - fresh
        opt = rows[2]["trend"]["loss"]
        if as_is is not None and opt is not None:
            fit_cap = as_is - opt
    noise = band or 0.0
    causes = []

    # repetition
    repeated = epochs is not None and epochs > 1
    rep_measured = (max(0.0, (gap or 0.0) - noise) + max(0.0, rise_val)) if repeated and ev else 0.0
    rep = max(rep_measured, fit_rep or 0.0) if repeated else 0.0
    need = B.unique_tokens_needed(x.budget_tokens, B.REPEATS_FREE_EPOCHS) if x.budget_tokens else None
    causes.append(
        _cause(
            "repetition",
            rep,
            {
                "epochs": epochs,
                "train_val_gap": gap,
                "val_rise_from_best": rise_val if ev else None,
                "measured": rep_measured if ev else None,
                "fit": fit_rep,
                "effective_tokens": rows[0]["effective_tokens"] if rows else None,
            },
            f"prepare {count(need)}+ unique tokens so the budget runs at most {B.REPEATS_FREE_EPOCHS} epochs"
            if need
            else "prepare more unique tokens (more parquet shards) so the run repeats less",
            -rep if rep else None,
        )
    )

    # learning rate (too high)
    lr_score = (max(spike, stall) if unstable else 0.0) + (stall if stuck and not unstable else 0.0)
    if x.diverged:
        lr_score = max(lr_score, spike, rise_val)
    causes.append(
        _cause(
            "learning_rate",
            lr_score,
            {
                "lr": x.lr,
                "train_loss_spike": spike if ev else None,
                "unstable": unstable if ev else None,
                "unigram_entropy": x.unigram_entropy,
                "stuck_near_unigram": stuck if ev else None,
                "diverged": x.diverged if ev else None,
            },
            f"lower the learning rate (lr {x.lr:g} -> {0.3 * x.lr:.3g}) or lengthen warmup"
            if x.lr
            else "lower the learning rate (x0.3) or lengthen warmup",
            -stall if lr_score and stall and not unstable else None,
        )
    )  # stuck: the stall; a spike's size is not a loss change

    # capacity: the stall that repetition and the learning rate do not explain
    cap_measured = max(0.0, stall - rep_measured - lr_score)
    cap = max(cap_measured, fit_cap or 0.0)
    n_opt = rows[2]["params"] if rows else None
    causes.append(
        _cause(
            "capacity",
            cap,
            {
                "params": x.n_params,
                "tokens_per_param": (x.budget_tokens / x.n_params) if x.budget_tokens and x.n_params else None,
                "compute_optimal_params": n_opt,
                "stall": stall if ev else None,
                "early_improvement_per_doubling": s_early,
                "measured": cap_measured if ev else None,
                "fit": fit_cap,
            },
            (
                f"train a ~{count(n_opt)} parameter model on {count(rows[2]['tokens'])} tokens (the same compute)"
                if rows and x.n_params and n_opt > x.n_params
                else "a bigger model (more n_layer / n_embd) on the same data"
            ),
            -cap if cap else None,
        )
    )

    # leakage
    lk = x.leakage or {}
    share = max(lk.get("exact_fraction") or 0.0, lk.get("near_fraction") or 0.0)
    # without a curve, the fit's trend for this run stands in for the val loss (None outside its range: no score)
    ref = val if val is not None else (rows[0]["trend"]["loss"] if rows else None)
    leak = share * ref if ref is not None else 0.0
    causes.append(
        _cause(
            "leakage",
            leak,
            {
                "exact_fraction": lk.get("exact_fraction"),
                "near_fraction": lk.get("near_fraction"),
                "ngram_docs_fraction": lk.get("ngram_docs_fraction"),
                "ngram_n": lk.get("ngram_n"),
                "checked": bool(lk),
                "flagged": share > 0,
                "examples": lk.get("examples"),
            },
            "re-prepare with --dedup so no val document has a copy in train"
            if share > 0
            else ("val is independent of train" if lk else "pass the DATASET to check val against train"),
            leak if leak else None,
        )
    )

    # eval noise: the band against the change the recent window of evals judges (its slope x its span)
    span = (
        T.log2_ratio(t_last, ev[-RECENT_EVALS]["tokens"])
        if len(ev) >= RECENT_EVALS
        else (T.log2_ratio(t_last, ev[0]["tokens"]) if ev else 0.0)
    )
    judged = abs(s_recent) * span if s_recent is not None else None
    en = max(0.0, noise - judged) if judged is not None and band is not None else 0.0
    want = None
    if band is not None and x.eval_iters:
        target = max(judged or 0.0, x.threshold * span)
        want = math.ceil(x.eval_iters * (band / target) ** 2) if target > 0 and band > target else x.eval_iters
    causes.append(
        _cause(
            "eval_noise",
            en,
            {
                "eval_tokens": x.eval_tokens,
                "eval_iters": x.eval_iters,
                "noise_band": band,
                "judged_change": judged,
                "judged_doublings": span if ev else None,
                "eval_iters_to_resolve": want,
            },
            (
                f"raise eval_iters to {want:,}"
                if want
                else f"raise eval_iters {(band / max(judged, x.threshold * span, 1e-9)) ** 2:.0f}x"
            )
            + f" (noise band {band:.3f} nats vs a change of {judged:.3f} over the last {span:.2f} doublings)"
            if en
            else "the eval resolves the changes being judged",
            0.0 if en else None,
        )
    )

    # still improving
    # only the part of the slope beyond the noise band's slope (band / span) counts
    left = max(1.0, T.log2_ratio(x.budget_tokens, t_last)) if x.budget_tokens and t_last else 1.0
    resolved = max(0.0, s_recent - (noise / span if span > 0 else 0.0)) if s_recent is not None else 0.0
    si = resolved * left
    causes.append(
        _cause(
            "still_improving",
            si,
            {
                "improvement_per_doubling": s_recent,
                "beyond_noise_per_doubling": resolved if ev else None,
                "threshold": x.threshold,
                "doublings_left": left if ev else None,
                "plateau": s_recent < x.threshold if s_recent is not None else None,
            },
            "keep training: "
            + (f"{left:.1f} doublings of tokens to the end of the budget" if left > 1 else "twice the tokens"),
            -si if si else None,
        )
    )

    order = {n: i for i, n in enumerate(CAUSES)}
    causes.sort(key=lambda c: (-c["score"], order[c["name"]]))
    inputs = {k: v for k, v in asdict(x).items() if k not in ("evals", "train", "leakage")}
    inputs.update(n_evals=len(ev), last_tokens=t_last, last_val_loss=val)
    return {
        "verdict": causes[0]["name"] if causes[0]["score"] > 0 else "still_improving",
        "causes": causes,
        "inputs": inputs,
        "what_if": rows,
    }


def format_text(result: dict[str, Any]) -> list[str]:
    """The diagnosis as terminal lines: the verdict, then each cause with its score and advice."""
    cs = result["causes"]
    top = cs[0]
    margin = top["score"] - cs[1]["score"] if len(cs) > 1 else top["score"]
    if top["score"] > 0:
        lines = [f"verdict: {result['verdict']} (score {top['score']:.3f} nats, {margin:.3f} ahead of {cs[1]['name']})"]
    else:  # nothing scores: say why instead of a verdict that its own line contradicts
        n = result["inputs"].get("n_evals", 0)
        lines = [
            f"verdict: {result['verdict']} by default: no cause scores above 0 nats "
            f"({n} evals; a slope per doubling needs 3 past iteration 0: evaluate more often, or train longer)"
        ]
    for c in cs:
        ch = c["expected_loss_change"]
        eff = f"; expected loss change {ch:+.3f}" if ch else ""
        if c["score"] > 0:
            what = c["advice"]
        elif c["name"] == "leakage" and not c["evidence"]["checked"]:
            what = "not checked: " + c["advice"]
        elif not result["inputs"]["n_evals"] and c["name"] in ("learning_rate", "eval_noise", "still_improving"):
            what = "not measured: needs a training curve (a run directory or a log)"
        else:
            what = "no sign of it"
        lines.append(f"  {c['name']:<16}{c['score']:>7.3f}  {what}{eff}")
        ev = ", ".join(f"{k}={_short(v)}" for k, v in c["evidence"].items() if v is not None and k != "examples")
        if ev:
            lines.append(f"  {'':<16}{'':>7}  ({ev})")
    if result.get("what_if"):
        lines.append("what if (the fit's trend):")
        lines += T.format_what_if(result["what_if"])
    lines.append("score = estimated val-loss excess in nats attributable to the cause (README: fwpipe diagnose)")
    return lines


def _short(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if abs(v) >= 1e3:
        return count(v)
    return f"{v:.3g}"


def at_eval(evals: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    """What train logs at each eval: {'improvement_per_doubling', 'plateau'} and, once the val
    loss improves less than the threshold per doubling, 'diagnosis' (the ranked causes with a
    'text' list of lines). kw: Inputs' fields."""
    per = improvement_per_doubling(evals)
    threshold = kw.get("threshold", PLATEAU_THRESHOLD)
    out: dict[str, Any] = {"improvement_per_doubling": per, "plateau": per is not None and per < threshold}
    if out["plateau"]:
        d = diagnose(Inputs(evals=evals, **kw))
        last = evals[-1]
        d["tokens_seen"] = last["tokens"]
        head = (
            f"plateau: val loss drops {per:.3f} nats per doubling of tokens seen (a plateau is under {threshold:g}) "
            f"at {count(last['tokens'])} tokens"
        )
        d["text"] = [head, *format_text(d)]
        out["diagnosis"] = d
    return out

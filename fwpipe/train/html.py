"""`fwpipe report RUN`: one HTML page for a training run, in the audit page's style.

Read from the run directory only (plan.json, metrics.jsonl; config from the plan): the plan, the
loss curves (the same figure as loss.png), the plateau diagnosis, and throughput and MFU over
time. The diagnosis is not logged in metrics.jsonl, so it is recomputed from the eval records
with fwpipe.diagnosis and the plan's numbers: the same function on the same inputs as
during training. Written atomically as RUN/report.html.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fwpipe import budget as B
from fwpipe.atomic import write_bytes
from fwpipe.diagnosis import Inputs, at_eval, diagnose, format_text
from fwpipe.errors import InputFormatError, OutputError
from fwpipe.fmt import loss, params, pct, ratio
from fwpipe.fmt import tokens as h
from fwpipe.htmlpage import cards, esc, figure, how, none, page, pyplot, table
from fwpipe.train import rundir
from fwpipe.train.plan import diagnosis_inputs
from fwpipe.train.plot import loss_figure

REPORT_HTML = rundir.REPORT_HTML
_NUMBERS = (
    "iter",
    "tokens",
    "epoch",
    "loss",
    "lr",
    "grad_norm",
    "tokens_per_s",
    "mfu",
    "eta_s",
    "val_loss",
    "train_loss",
    "hellaswag_acc_norm",
    "hellaswag_correct",
    "hellaswag_total",
)  # of metrics.jsonl's train and eval records


def read_run(run: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    hint = "pass the --out directory of a `fwpipe train` run"
    try:
        ours = rundir.inspect(run)
    except OutputError as e:  # a file, a link, a directory with other files: not ours to write into
        raise InputFormatError(e.message.replace("--out ", "", 1), hint) from e
    if not ours:
        raise InputFormatError(f"{run}: no training run here (missing or empty)", hint)
    try:  # UnicodeDecodeError is a ValueError: invalid UTF-8 lands here too
        plan = (
            json.loads((run / rundir.PLAN_JSON).read_text(encoding="utf-8"))
            if (run / rundir.PLAN_JSON).is_file()
            else {}
        )
    except ValueError as e:
        raise InputFormatError(
            f"{run / rundir.PLAN_JSON}: not JSON ({str(e)[:80]})", "restore the file from the run"
        ) from e
    if not isinstance(plan, dict):
        raise InputFormatError(
            f"{run / rundir.PLAN_JSON}: not a plan (a JSON {type(plan).__name__}, not an object)",
            "restore the file from the run",
        )
    records = []
    path = run / rundir.METRICS
    try:
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
    except ValueError as e:
        raise InputFormatError(f"{path}: not UTF-8 text ({str(e)[:80]})", "restore the file, or re-run training") from e
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except ValueError as e:
            raise InputFormatError(
                f"{path}:{i}: not a metrics record ({e})", "restore the file, or re-run training"
            ) from e
        if isinstance(r, dict):
            if r.get("kind") in ("train", "eval"):  # the fields the report plots and sums are numbers (or null)
                bad = next(
                    (
                        k
                        for k in _NUMBERS
                        if r.get(k) is not None and (isinstance(r[k], bool) or not isinstance(r[k], (int, float)))
                    ),
                    None,
                )
                if bad is not None:
                    raise InputFormatError(
                        f"{path}:{i}: {bad!r} is {json.dumps(r[bad])[:30]}, not a number",
                        "restore the file, or re-run training",
                    )
            records.append(r)
    return plan, records


def _tokens_per_epoch(records: list[dict[str, Any]], plan: dict[str, Any]) -> int:
    for r in reversed(records):
        if r.get("epoch") and r.get("tokens"):
            return round(r["tokens"] / r["epoch"])
    return int(plan.get("unique_tokens") or 0)


def _diagnosis(plan: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The plateau state of the last eval and the ranked causes of the whole run (fwpipe.diagnosis:
    the same function and inputs as train's evals and `fwpipe diagnose RUN`)."""
    evals = [r for r in records if r.get("kind") == "eval" and r.get("val_loss") is not None]
    kw = diagnosis_inputs(plan)
    if not evals or not all(kw.get(k) for k in ("n_params", "unique_tokens", "budget_tokens")):
        return None
    out = at_eval(evals, **kw)
    out["ranked"] = diagnose(Inputs(evals=evals, train=[r for r in records if r.get("kind") == "train"], **kw))
    return out


def render(run: str | Path) -> str:
    run = Path(run)
    plan, records = read_run(run)
    cfg = plan.get("config") or {}
    model = cfg.get("model") or {}
    train = [r for r in records if r.get("kind") == "train"]
    evals = [r for r in records if r.get("kind") == "eval" and r.get("val_loss") is not None]
    done = next((r for r in reversed(records) if r.get("kind") == "done"), None)
    d = _diagnosis(plan, records)
    diag = (d or {}).get("diagnosis")

    items = []
    if evals:
        best = min(evals, key=lambda r: r["val_loss"])
        items.append(
            (
                "info",
                "val loss",
                f"last {loss(evals[-1]['val_loss'])} at {h(evals[-1].get('tokens'))} tokens; best {loss(best['val_loss'])}",
            )
        )
    else:
        items.append(
            (
                "warn",
                "val loss",
                "no eval with a val loss logged yet (no val split, or the run stopped before the first eval)",
            )
        )
    if d is not None and d.get("improvement_per_doubling") is not None:
        per = d["improvement_per_doubling"]
        thr = cfg.get("plateau_threshold", 0.02)
        items.append(
            (
                "warn" if d.get("plateau") else "ok",
                "plateau",
                (
                    f"plateaued: val improves {per:.3f} per doubling of tokens (threshold {thr:g}) at {h(diag['tokens_seen'])} tokens"
                    if diag
                    else f"still improving: {per:.3f} per doubling of tokens (threshold {thr:g})"
                ),
            )
        )
    if plan.get("epochs") is not None:
        e = plan["epochs"]
        items.append(
            (
                "ok" if e <= B.REPEATS_FREE_EPOCHS else ("warn" if e <= B.REPEATS_MAX_EPOCHS else "bad"),
                "epochs",
                f"{ratio(e)} planned epochs over {h(plan.get('unique_tokens'))} unique tokens",
            )
        )
    if train and train[-1].get("tokens_per_s"):
        mfu = train[-1].get("mfu")
        items.append(
            (
                "info",
                "throughput",
                f"{h(train[-1]['tokens_per_s'])} tokens/s at the last step"
                + (f", MFU {pct(mfu)}" if isinstance(mfu, (int, float)) else ""),
            )
        )
    body = (
        f'<h1>fwpipe run</h1><p class="sub">{esc(run.resolve())} &middot; {esc(cfg.get("name", ""))}</p>{cards(items)}'
    )

    body += "<h2>Plan</h2>"
    if plan:
        recipe = cfg.get("recipe", "nanogpt")  # runs from before the recipes are nanogpt
        parts = (
            ""
            if recipe == "nanogpt"
            else (
                f" ({cfg.get('optimizer')}, {cfg.get('schedule')} schedule, {model.get('pos_emb')} positions, "
                f"{model.get('norm')}, {model.get('mlp')} MLP)"
            )
        )
        rows = [
            ["recipe", esc(recipe + parts)],
            [
                "model",
                f"{model.get('n_layer', '?')} layers x {model.get('n_embd', '?')} wide, {model.get('n_head', '?')} heads, "
                f"block {model.get('block_size', '?')}, dropout {model.get('dropout', '?')}",
            ],
            [
                "parameters (non-embedding)",
                f"{params(plan.get('params_non_embedding'))} ({params(plan.get('params_total'))} total)",
            ],
            [
                "budget",
                f"{h(plan.get('budget_tokens'))} tokens = {plan.get('iterations', 0):,} iterations of {plan.get('tokens_per_iter', 0):,} tokens",
            ],
            ["unique train tokens", h(plan.get("unique_tokens"))],
            ["epochs", ratio(plan.get("epochs"))],
            ["effective tokens (after repeats)", h(plan.get("effective_tokens"))],
            [
                "tokens per parameter",
                f"{ratio(plan['tokens_per_param'])} (Chinchilla ~{B.CHINCHILLA_TOKENS_PER_PARAM:g})"
                if plan.get("tokens_per_param")
                else "-",
            ],
            [
                "learning rate",
                f"{cfg.get('lr', '?')} to {cfg.get('min_lr', '?')}, warmup {cfg.get('warmup_iters', '?')} iterations",
            ],
            ["device", esc((plan.get("device") or {}).get("name", (plan.get("device") or {}).get("type", "?")))],
        ]
        body += table(["", ""], rows, text_cols=2, cls="plan")
        for w in plan.get("warnings") or []:
            body += f"<p>Warning: {esc(w)}</p>"
    else:
        body += none(f"No {rundir.PLAN_JSON} in the run directory.")

    body += "<h2>Loss</h2>"
    if train or evals:
        fig = loss_figure(
            records,
            _tokens_per_epoch(records, plan),
            cfg.get("name", ""),
            model.get("dropout", 0.0),
            diag,
            verdict=format_text(d["ranked"])[0] if d and d.get("ranked") else None,
        )
        body += figure(fig, "loss curves") + how(
            "tokens seen run left to right on a log scale (epochs on the top axis), so a steady gain per doubling of data is a "
            "straight line down and a plateau is flat. Compare the green (train, eval mode) and red (val) points: a widening gap is "
            "memorising repeated text. The thin blue step loss is noisier"
            + (" and sits higher because it runs with dropout." if model.get("dropout") else ".")
            + " Dotted lines are epoch boundaries; the orange region starts where the plateau was diagnosed."
        )
    else:
        body += none("No losses logged yet.")

    body += "<h2>Diagnosis</h2>"
    ranked = (d or {}).get("ranked")
    if ranked:
        rows = [
            [
                c["name"],
                f"{c['score']:.3f}",
                c["advice"],
                f"{c['expected_loss_change']:+.3f}" if c.get("expected_loss_change") is not None else "-",
            ]
            for c in ranked["causes"]
        ]
        body += f"<p>Verdict: <b>{esc(ranked['verdict'])}</b></p>"
        body += table(
            ["cause", "score (nats)", "what to change", "expected loss change"], rows, text_cols=3, cls="advice"
        )
        body += f'<pre class="diag">{esc(chr(10).join(format_text(ranked)))}</pre>'
        body += how(
            "score: the estimated val-loss excess in nats attributable to each cause (README: fwpipe diagnose); "
            "the what-if trend comes from a scaling fit on another corpus and tokenizer, shown only inside its range."
        )
    else:
        body += none("No diagnosis yet: it needs at least 3 evals with a val loss.")

    body += "<h2>Throughput and MFU</h2>"
    tp = [r for r in train if r.get("tokens_per_s")]
    if len(tp) >= 2:
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(9, 3.2))
        ax.plot([r["iter"] for r in tp], [r["tokens_per_s"] for r in tp], color="tab:blue", lw=1, label="tokens/s")
        ax.set(xlabel="iteration", ylabel="tokens per second")
        ax.grid(alpha=0.3)
        mf = [r for r in tp if isinstance(r.get("mfu"), (int, float))]
        if mf:
            ax2 = ax.twinx()
            ax2.plot(
                [r["iter"] for r in mf], [100 * r["mfu"] for r in mf], color="tab:purple", lw=1, ls="--", label="MFU %"
            )
            ax2.set_ylabel("MFU (% of peak)")
            ax2.legend(loc="lower right", fontsize=8)
        ax.legend(loc="lower left", fontsize=8)
        mfu_text = (
            "and model FLOPs utilisation, the share of the device's peak that the model's FLOPs per token reach (dashed, "
            "right axis)"
            if mf
            else "(no MFU: the device's peak FLOPs are not known, as on a CPU)"
        )
        body += figure(fig, "throughput and MFU") + how(
            f"tokens per second at each logged step (left axis) {mfu_text}. A drop that stays is a slower phase (evals, "
            "checkpoints, a throttled or shared device); the first steps include compilation and warm-up."
        )
    else:
        body += none("Fewer than two steps logged a throughput: nothing to chart.")
    if done:
        body += (
            f'<p class="sub">Finished: {done.get("iterations", 0):,} of {done.get("max_iterations", 0):,} iterations'
            f"{'' if done.get('complete') else ' (incomplete)'}.</p>"
        )
    return page(f"fwpipe run: {run.name}", body)


def write_report(run: str | Path) -> Path:
    out = Path(run) / REPORT_HTML
    write_bytes(out, [render(run).encode()])
    return out

"""`fwpipe diagnose RUN_OR_LOG [DATASET]`: the ranked causes of a stalled loss.

A thin layer over fwpipe.diagnosis: `gather` turns a fwpipe run directory, a nanoGPT or llm.c
log, or only the numbers of a plan (`--params 40M --unique-tokens 0.3B --budget-tokens 7.6B`)
into diagnosis.Inputs (it may use the stages: train's run reader and config, audit's leakage),
and the command prints diagnosis.format_text or the JSON.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click
import numpy as np

from fwpipe import diagnosis
from fwpipe.cli.common import (
    CONTEXT,
    TOKENS,
    SuggestingCommand,
    budget_option,
    json_option,
    params_option,
)
from fwpipe.errors import ConfigError, InputFormatError


def _unigram_entropy(counts: np.ndarray) -> float | None:
    total = counts.sum()
    if total == 0:
        return None
    p = counts[counts > 0] / total
    return float(-(p * np.log(p)).sum())


def dataset_evidence(path: str | Path, *, leakage: bool = True) -> dict[str, Any]:
    """Train tokens, the unigram entropy of train (nats) and audit's leakage section."""
    from fwpipe.dataset import open_dataset

    ds = open_dataset(path)
    train = ds.split("train")
    counts = np.zeros(1 << 16, dtype=np.int64)
    for tokens in train.shards:
        counts += np.bincount(np.asarray(tokens), minlength=1 << 16)[: 1 << 16]
    out: dict[str, Any] = {
        "unique_tokens": train.stream_tokens,
        "unigram_entropy": _unigram_entropy(counts) if counts.any() else None,
    }
    if leakage:
        from fwpipe.audit.run import audit

        lk = audit(path, write_clusters_file=False)["leakage"]
        out["leakage"] = {
            k: lk.get(k)
            for k in (
                "exact_fraction",
                "near_fraction",
                "ngram_docs_fraction",
                "ngram_n",
                "exact_docs",
                "near_docs",
                "val_docs",
            )
        }
    return out


def gather(
    source: str | Path | None,
    dataset: str | Path | None = None,
    *,
    config: str | None = None,
    params: float | None = None,
    tokens_per_iter: int | None = None,
    unique_tokens: float | None = None,
    budget_tokens: float | None = None,
    eval_tokens: int | None = None,
    leakage: bool = True,
) -> diagnosis.Inputs:
    """diagnosis.Inputs from a run directory, a log, or plain numbers (source None)."""
    kw: dict[str, Any] = {}
    evals: list[dict[str, Any]] = []
    train: list[dict[str, Any]] = []
    cfg = None
    if config is not None:
        from fwpipe.train.config import load_config

        cfg = load_config(config)
    if source is not None and Path(source).is_dir():
        from fwpipe.train.html import read_run

        plan, records = read_run(Path(source))
        from fwpipe.train.plan import diagnosis_inputs

        evals = [r for r in records if r.get("kind") == "eval"]
        train = [r for r in records if r.get("kind") == "train"]
        kw.update({k: v for k, v in diagnosis_inputs(plan).items() if v is not None})
        kw["diverged"] = any(not math.isfinite(r.get("loss", 0.0)) for r in train) or any(
            not math.isfinite(r.get("val_loss") or 0.0) for r in evals
        )
    elif source is not None:
        from fwpipe.diagnosis.logs import parse_log

        if cfg is not None:
            from fwpipe.train.plan import param_counts

            kw.update(
                n_params=param_counts(cfg.model)[1],
                tokens_per_iter=cfg.tokens_per_iter,
                lr=cfg.lr,
                eval_iters=cfg.eval_iters,
                eval_tokens=cfg.eval_iters * cfg.batch_size * cfg.model.block_size,
                threshold=cfg.plateau_threshold,
            )
        tpi = tokens_per_iter or kw.get("tokens_per_iter")
        if not tpi:
            raise ConfigError(
                f"{source}: a log needs the tokens per iteration",
                "pass --config NAME|TOML (the run's config) or --tokens-per-iter 524288",
            )
        _, evals, train = parse_log(source, tpi)
        kw["diverged"] = any(not math.isfinite(r["loss"]) for r in train) or any(
            not math.isfinite(e["val_loss"]) for e in evals
        )
    elif cfg is not None:
        from fwpipe.train.plan import param_counts

        kw.update(n_params=param_counts(cfg.model)[1], tokens_per_iter=cfg.tokens_per_iter, lr=cfg.lr)
    for k, v in (
        ("n_params", params),
        ("tokens_per_iter", tokens_per_iter),
        ("budget_tokens", budget_tokens),
        ("eval_tokens", eval_tokens),
    ):
        if v is not None:
            kw[k] = v
    if kw.get("tokens_per_iter") and evals:
        for r in evals + train:
            r.setdefault("tokens", r["iter"] * kw["tokens_per_iter"])
    if dataset is not None:
        d = dataset_evidence(dataset, leakage=leakage)
        kw.update(unique_tokens=d["unique_tokens"], unigram_entropy=d["unigram_entropy"], leakage=d.get("leakage"))
    if unique_tokens is not None:
        kw["unique_tokens"] = unique_tokens
    if kw.get("budget_tokens") is None and train and kw.get("tokens_per_iter"):
        kw["budget_tokens"] = max(r["iter"] for r in train) * kw["tokens_per_iter"]  # a log: the run as far as it went
    if source is None and not (kw.get("n_params") and kw.get("budget_tokens") and kw.get("unique_tokens")):
        raise ConfigError(
            "nothing to diagnose", "pass a run directory or a log, or --params, --budget-tokens and --unique-tokens"
        )
    return diagnosis.Inputs(evals=evals, train=train, **kw)


@click.command("diagnose", cls=SuggestingCommand, context_settings=CONTEXT)
@click.argument("source", metavar="RUN_OR_LOG", required=False)
@click.argument("dataset", metavar="[DATASET]", required=False)
@click.option(
    "--config", default=None, metavar="NAME|TOML", help="The log's config: model size, tokens/iter, eval_iters."
)
@params_option
@click.option("--tokens-per-iter", type=TOKENS, default=None, help="Tokens per iteration, e.g. 524288 or 512k.")
@click.option(
    "--unique-tokens",
    type=TOKENS,
    default=None,
    help="Unique train tokens (one epoch) when no DATASET is at hand, e.g. 0.3B.",
)
@budget_option("the run's planned tokens (a log: defaults to where it stopped).")
@click.option("--eval-tokens", type=TOKENS, default=None, help="Tokens per val estimate (eval_iters x batch x block).")
@click.option("--no-leakage", is_flag=True, help="Skip the val-vs-train leakage check of DATASET.")
@click.option(
    "--probe",
    is_flag=True,
    help="Branch from RUN's last checkpoint for a few iterations: repeated vs --fresh tokens, lr x0.3 and x3.",
)
@click.option(
    "--fresh", default=None, metavar="DATASET", help="With --probe: a dataset of tokens the run has not seen."
)
@click.option(
    "--probe-iters",
    type=click.IntRange(1),
    default=None,
    help="With --probe: iterations per branch (default 2% of the run, at most 200).",
)
@json_option("the diagnosis")
def diagnose_command(
    source,
    dataset,
    config,
    params,
    tokens_per_iter,
    unique_tokens,
    budget_tokens,
    eval_tokens,
    no_leakage,
    probe,
    fresh,
    probe_iters,
    json_path,
):
    """Rank the causes of a stalled loss: repetition, capacity, learning_rate, leakage, eval_noise,
    still_improving, each scored in nats of val-loss excess.

    \b
      fwpipe diagnose runs/tiny-cpu data/fineweb
      fwpipe diagnose train.log --config rtx4070-40m --unique-tokens 0.3B
      fwpipe diagnose train.log --params 40M --tokens-per-iter 524288 --unique-tokens 0.3B --json -
      fwpipe diagnose --params 40M --budget-tokens 7.6B --unique-tokens 0.3B
    """
    from fwpipe.cli.common import summary as _summary

    num = {
        k: v
        for k, v in (
            ("params", params),
            ("tokens_per_iter", tokens_per_iter),
            ("unique_tokens", unique_tokens),
            ("budget_tokens", budget_tokens),
            ("eval_tokens", eval_tokens),
        )
    }
    for k in ("tokens_per_iter", "eval_tokens"):
        num[k] = int(num[k]) if num[k] is not None else None
    if source is not None and not Path(source).exists():
        raise InputFormatError(
            f"{source}: no such run directory or log", "pass a `fwpipe train` --out directory or a training log"
        )
    if probe and (source is None or not Path(source).is_dir() or dataset is None):
        raise ConfigError(
            "--probe needs a run directory and its DATASET",
            "fwpipe diagnose runs/NAME data/fineweb --probe [--fresh OTHER]",
        )
    x = gather(source, dataset, config=config, leakage=not no_leakage, **num)
    result = diagnosis.diagnose(x)
    text = diagnosis.format_text(result)
    if probe:
        from fwpipe.cli.common import note as _note
        from fwpipe.fmt import count
        from fwpipe.train.probe import probe as run_probe
        from fwpipe.train.probe import probe_cost

        note = _note(json_path)
        c = probe_cost(Path(source), fresh, probe_iters)
        note(
            f"probe: {len(c['arms'])} branches ({', '.join(c['arms'])}) x {c['iters']:,} iterations from iteration "
            f"{c['from_iter']:,} = {count(c['tokens'])} tokens of training, plus {c['eval_batches']:,} eval batches; "
            f"{source} is only read"
        )
        result["probe"] = run_probe(source, dataset, fresh, probe_iters, on_arm=lambda a: note(f"probe: {a}"))
        text += [
            f"probe ({result['probe']['iters']:,} iterations per branch, base val {result['probe']['base_val_loss']:.4f}):"
        ]
        text += ["  " + ln for ln in result["probe"]["reading"]]
    _summary(json_path, json.loads(json.dumps(result, default=str)), "\n".join(text))

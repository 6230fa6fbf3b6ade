"""`audit(path, ...) -> dict`: the library entry point behind `fwpipe audit`.

Opens the dataset (any of the three layouts, through fwpipe.shards), indexes its documents,
and runs the sections in order: totals, lengths, exact duplicates, near duplicates, leakage,
budget. The result is the JSON report (schema in fwpipe/audit/report.py).
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from fwpipe import __version__
from fwpipe.audit.budget_section import budget_section
from fwpipe.audit.corpus import index
from fwpipe.audit.exactdup import exact_duplicates
from fwpipe.audit.leakage import leakage
from fwpipe.audit.lengths import lengths
from fwpipe.audit.neardup import near_duplicates, write_clusters
from fwpipe.audit.quality import quality as quality_section
from fwpipe.audit.totals import per_source, totals
from fwpipe.budget import check_budget
from fwpipe.dataset import CLUSTERS, QUALITY, SPLITS, open_dataset, written_by_audit
from fwpipe.dedup import SCHEME, DedupConfig, near_clusters, scratch_bytes
from fwpipe.dedup import memory_bytes as dedup_memory_bytes
from fwpipe.errors import ConfigError, FwpipeError, InputFormatError
from fwpipe.executors import INLINE, Executor
from fwpipe.fmt import pct, ratio, size
from fwpipe.quality.config import load_config
from fwpipe.shards import release_pages

log = logging.getLogger(__name__)
SCHEMA_VERSION = 1
DEFAULT_DATASET = "data/fineweb"


def _check_path(path: str | Path) -> None:
    p = Path(path)
    if p.is_file() and p.suffix != ".bin":
        with open(p, "rb") as f:
            magic = f.read(4)
        what = "a parquet file" if magic == b"PAR1" else f"a {p.suffix or 'suffix-less'} file"
        raise InputFormatError(
            f"{p}: {what}, not a token dataset",
            "audit reads token shards; run `fwpipe prepare FILE.parquet` first, then `fwpipe audit`",
        )


def _check_params(budget_tokens: float | None, params: float | None) -> None:
    if params is None:
        return
    if isinstance(params, bool) or not isinstance(params, (int, float)) or not math.isfinite(params) or params <= 0:
        raise ConfigError(f"--params {params} is not a positive number of model parameters", "pass e.g. --params 40e6")
    if budget_tokens is None:
        raise ConfigError(
            "--params sizes the model against a budget, but no --budget-tokens was given",
            "add --budget-tokens, e.g. --budget-tokens 7.6e9 --params 40e6",
        )


def _check_options(block_size: int, shingle: int, num_perm: int, ngram: int) -> None:
    for name, value, flag in (
        ("block size", block_size, "--block-size"),
        ("shingle", shingle, "--shingle"),
        ("n-gram", ngram, "--ngram"),
    ):
        if value < 1:
            raise ConfigError(f"{name} {value} is below 1", f"pass a positive {flag}")
    if num_perm < 2 or num_perm > 4096:
        raise ConfigError(f"num_perm {num_perm} is outside [2, 4096]", "pass e.g. --num-perm 128")


def _identity(ds) -> dict:
    """What makes two audits the same run for the scratch directory: the shard files as they are."""
    files = [p for name in SPLITS for p in ds.split(name).paths]
    return {
        "root": str(Path(ds.root).resolve()),
        "files": [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in map(Path, files)],
    }


def audit(
    path: str | Path = DEFAULT_DATASET,
    *,
    budget_tokens: float | None = None,
    params: float | None = None,
    block_size: int = 1024,
    shingle: int = 5,
    threshold: float = 0.8,
    num_perm: int = 128,
    ngram: int = 13,
    seed: int = 1,
    write_clusters_file: bool = True,
    memory_gb: float | None = None,
    tmp_dir: str | Path | None = None,
    against_path: str | Path | None = None,
    on_step: Callable[[str], None] | None = None,
    executor: Executor = INLINE,
    quality: bool = True,
    quality_config: str | Path | None = None,
) -> dict:
    """Audit a tokenized dataset; return the report as a JSON-ready dict.

    path: a fwpipe dataset directory, a nanoGPT directory (train.bin/val.bin) or llm.c shards
    (a directory or a glob). budget_tokens adds the budget section; params adds Chinchilla
    sizing to it. In a fwpipe dataset directory, clusters.parquet is written beside the shards.
    memory_gb caps the near-duplicate stages' memory beyond ~50 bytes per document (default 1);
    tmp_dir holds their scratch files (default: the system temp dir; reused by a rerun).
    against_path: an eval set (parquet or JSONL with a text column, or a dataset) to check
    for contamination by train and val (the "against" section).
    executor: where the near-duplicate signature units and the quality units run (fwpipe.executors.make_executor: local
    processes or a Ray cluster; default: in this process). The report is the same either way.
    quality: the quality section (Gopher, FineWeb, C4 rules and language; quality.parquet beside
    clusters.parquet); quality_config: a TOML file of thresholds (fwpipe.quality.config).
    """
    step = on_step or (lambda s: None)
    t0 = time.perf_counter()
    _check_options(block_size, shingle, num_perm, ngram)
    if budget_tokens is not None:
        check_budget(budget_tokens)  # fail before the expensive part
    _check_params(budget_tokens, params)
    cfg = DedupConfig(threshold=threshold, shingle=shingle, num_perm=num_perm, seed=seed)
    memory_bytes = dedup_memory_bytes(memory_gb)
    qcfg = load_config(quality_config) if quality else None  # a bad config fails before the audit
    _check_path(path)
    loaded_eval = None
    if against_path is not None:  # a bad eval set is one line before any audit work, not after it
        from fwpipe.audit.against import load_eval

        loaded_eval = load_eval(against_path)
    step("opening")
    ds = open_dataset(path)
    corpus = index(ds)
    if corpus.n_docs == 0:
        raise InputFormatError(f"{path}: the dataset holds no documents", "re-run fwpipe prepare on non-empty input")
    report: dict = {
        "schema_version": SCHEMA_VERSION,
        "fwpipe_version": __version__,
        "dataset": str(ds.root),
        "format": ds.format,
        "options": {
            "block_size": block_size,
            "shingle": shingle,
            "threshold": threshold,
            "num_perm": num_perm,
            "ngram": ngram,
            "seed": seed,
            "minhash_scheme": SCHEME,
        },
    }
    step("totals")
    report["splits"] = totals(corpus)
    for tokens in corpus.shards:  # indexing and totals read every shard: drop those pages
        release_pages(tokens)
    sources = per_source(ds)
    if sources is not None:
        report["sources"] = sources
    step("lengths")
    report["lengths"] = lengths(corpus, block_size)
    step("exact duplicates")
    exact = exact_duplicates(corpus)
    report["exact_duplicates"] = exact.report
    scratch_dir = tmp_dir or tempfile.gettempdir()
    step(f"near duplicates (scratch: {size(scratch_bytes(corpus.n_docs, cfg.bands))} in {scratch_dir})")
    scratch, comp = near_clusters(
        corpus,
        cfg,
        copy_of=exact.first,
        tmp_dir=scratch_dir,
        identity=_identity(ds),
        memory_bytes=memory_bytes,
        executor=executor,
    )
    near = near_duplicates(corpus, comp, cfg)
    del comp
    report["near_duplicates"] = near.report
    if against_path is not None:
        step(f"eval set {against_path}")
        from fwpipe.audit.against import against

        report["against"] = against(corpus, exact.first, scratch, cfg, against_path, ngram=ngram, loaded=loaded_eval)
    scratch.remove()
    clusters_path = ds.root / CLUSTERS
    if (
        ds.format == "fwpipe"
        and write_clusters_file
        and _write_optional(clusters_path, lambda p: write_clusters(p, corpus, near.cluster))
    ):
        report["near_duplicates"]["clusters_file"] = str(clusters_path)
    step(f"{ngram}-gram leakage")
    report["leakage"] = leakage(corpus, exact.first, near.near_train, ngram=ngram)
    if qcfg is not None:
        step("quality signals")
        qpath = ds.root / QUALITY
        writable = ds.format == "fwpipe" and write_clusters_file and _writable(qpath)
        report["quality"] = quality_section(corpus, qcfg, qpath if writable else None, executor=executor)
    if budget_tokens is not None:
        report["budget"] = budget_section(
            budget_tokens, report["splits"]["train"]["stream_tokens"], params=params, sources=ds.n_sources
        )
    report["verdicts"] = verdicts(report)
    report["seconds"] = time.perf_counter() - t0
    return report


def _writable(path: Path) -> bool:
    """An optional output can go to `path`: the directory is writable and no user's file of that name is there."""
    if not os.access(path.parent, os.W_OK):
        log.warning("could not write %s: the dataset directory is read-only; the report is complete without it", path)
        return False
    if (path.exists() or path.is_symlink()) and not written_by_audit(path):
        log.warning(
            "did not write %s: a file of that name that audit did not write is there; the report is complete without it",
            path,
        )
        return False
    return True


def _write_optional(path: Path, write: Callable[[Path], int]) -> bool:
    """Write an extra output into the dataset directory if it can be; a read-only dataset
    (a shared copy, a read-only mount) still gets its report, with a warning instead."""
    if not _writable(path):  # read-only, or a user's file of that name: never replaced
        return False
    try:
        rows = write(path)
    except (FwpipeError, OSError) as e:
        log.warning("could not write %s (%s); the report is complete without it", path, getattr(e, "message", e))
        return False
    log.info("wrote %d rows to %s", rows, path)
    return True


def verdicts(report: dict) -> list[dict]:
    """One line per question the user came with, worst first is not needed: fixed order."""
    out = []
    b = report.get("budget")
    if b:
        out.append(
            {
                "section": "budget",
                "level": {"fresh": "ok", "nearly-free": "ok", "diminishing": "warn", "wasted": "bad"}[b["verdict"]],
                "text": f"{ratio(b['epochs'])} epochs over train: {b['verdict_text']}",
            }
        )
    lk = report["leakage"]
    if lk["val_docs"] and lk["train_docs"]:
        bad = lk["near_docs"] or lk["exact_docs"]
        out.append(
            {
                "section": "leakage",
                "level": "bad" if bad else ("warn" if lk["ngram_docs"] else "ok"),
                "text": f"{lk['exact_docs']} val docs copied from train, {lk['near_docs']} near-copied, "
                f"{pct(lk['ngram_docs_fraction'])} share a {lk['ngram_n']}-gram with train",
            }
        )
    else:
        out.append({"section": "leakage", "level": "warn", "text": lk["note"]})
    ag = report.get("against")
    if ag:
        bad = ag["train"]["exact_docs"] + ag["train"]["near_docs"]
        out.append(
            {
                "section": "against",
                "level": "bad" if bad else ("warn" if ag["train"]["ngram_docs"] else "ok"),
                "text": f"eval set: {ag['train']['exact_docs']} of {ag['eval_docs']} docs copied in train, "
                f"{ag['train']['near_docs']} near-copied, {ag['train']['ngram_docs']} share a {ag['ngram_n']}-gram",
            }
        )
    if b and b.get("params"):
        out.append(diagnosis_verdict(b, report["leakage"]))
    nd = report["near_duplicates"]
    n_docs = sum(s["docs"] for s in report["splits"].values())
    share = nd["removable_docs"] / n_docs
    out.append(
        {
            "section": "duplicates",
            "level": "ok" if share < 0.01 else ("warn" if share < 0.1 else "bad"),
            "text": f"{pct(share)} of documents are removable near/exact duplicates "
            f"({report['exact_duplicates']['docs']} exact copies)",
        }
    )
    return out


def diagnosis_verdict(b: dict, lk: dict) -> dict:
    """fwpipe.diagnosis on the data-side numbers (no curve yet): repetition and leakage ranked,
    and the model-side capacity score beside them, so that "more data" is weighed against "a
    bigger model" in the same nats that `train --dry-run` and `fwpipe diagnose` print."""
    from fwpipe.diagnosis import Inputs, diagnose

    d = diagnose(
        Inputs(
            evals=[],
            n_params=b["params"],
            budget_tokens=b["budget_tokens"],
            unique_tokens=b["unique_tokens"],
            leakage=lk if lk.get("val_docs") and lk.get("train_docs") else None,
        )
    )
    s = {c["name"]: c["score"] for c in d["causes"]}
    data = max(("repetition", "leakage"), key=lambda k: s[k])
    text = (
        f"data side: {data} scores {s[data]:.3f} nats (repetition {s['repetition']:.3f}, leakage {s['leakage']:.3f}); "
        f"model side: capacity {s['capacity']:.3f} (scores: val-loss excess, fwpipe diagnose)"
    )
    return {"section": "diagnosis", "level": "warn" if s[data] > 0 else "ok", "text": text}

"""Training logs that fwpipe did not write: nanoGPT's train.py stdout and llm.c's log.

nanoGPT prints `step N: train loss X, val loss Y` at each eval (both estimated in eval mode over
eval_iters batches) and `iter N: loss X, time Tms, mfu M%` at each log step; llm.c writes
`s:N trl:X` (train) and `s:N tel:Y` (val) lines to its -o log file. Iteration N has seen
N * tokens_per_iter tokens, so records carry tokens when tokens_per_iter is known. Lines that are
neither (banners, config echoes) are skipped only before the first record; after it, a line that
looks like a record but does not parse stops with its line number.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from fwpipe.errors import InputFormatError

_NUM = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf)"
NANOGPT_EVAL = re.compile(rf"^step (\d+): train loss {_NUM}, val loss {_NUM}\s*$")
NANOGPT_ITER = re.compile(rf"^iter (\d+): loss {_NUM}(?:,.*)?$")
LLMC = re.compile(rf"^s:(\d+) (trl|tel):{_NUM}\s*$")
_LOOKS = re.compile(r"^(step \d+:|iter \d+:|s:\d+ )")
HINT = (
    "pass the stdout of nanoGPT's train.py (step N: train loss X, val loss Y / iter N: loss X, ...) "
    "or an llm.c log (s:N trl:X / s:N tel:Y)"
)

Format = Literal["nanogpt", "llmc"]


def parse_log(
    path: str | Path, tokens_per_iter: int | None = None
) -> tuple[Format, list[dict[str, Any]], list[dict[str, Any]]]:
    """(format, evals, train records). evals: {iter, tokens, val_loss, train_loss (nanoGPT only)};
    train: {iter, tokens, loss}. Raises InputFormatError naming the first bad line."""
    path = Path(path)
    try:
        text = path.read_text(errors="strict")
    except (OSError, UnicodeDecodeError) as e:
        raise InputFormatError(f"{path}: cannot read the log ({e})", HINT) from e
    fmt: Format | None = None
    evals: dict[int, dict[str, Any]] = {}
    train: list[dict[str, Any]] = []
    for i, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        m = NANOGPT_EVAL.match(line)
        if m and fmt in (None, "nanogpt"):
            fmt = "nanogpt"
            it = int(m[1])
            evals[it] = {"iter": it, "train_loss": float(m[2]), "val_loss": float(m[3])}
            continue
        m = NANOGPT_ITER.match(line)
        if m and fmt in (None, "nanogpt"):
            fmt = "nanogpt"
            train.append({"iter": int(m[1]), "loss": float(m[2])})
            continue
        m = LLMC.match(line)
        if m and fmt in (None, "llmc"):
            fmt = "llmc"
            it = int(m[1])
            if m[2] == "tel":
                evals.setdefault(it, {"iter": it})["val_loss"] = float(m[3])
            else:
                train.append({"iter": it, "loss": float(m[3])})
            continue
        if fmt is not None and _LOOKS.match(line):
            raise InputFormatError(f"{path}:{i}: not a {fmt} log line: {line[:80]!r}", HINT)
    if fmt is None:
        raise InputFormatError(f"{path}: no nanoGPT or llm.c loss line in {len(text.splitlines()):,} lines", HINT)
    ev = [evals[k] for k in sorted(evals) if "val_loss" in evals[k]]
    if tokens_per_iter:
        for r in ev + train:
            r["tokens"] = r["iter"] * tokens_per_iter
    return fmt, ev, train


def write_nanogpt(records: list[dict[str, Any]]) -> str:
    """A run's metrics as nanoGPT's train.py would have printed them (for tests and exports)."""
    out = []
    for r in records:
        if r.get("kind") == "eval" and r.get("val_loss") is not None:
            out.append(f"step {r['iter']}: train loss {r['train_loss']:.4f}, val loss {r['val_loss']:.4f}")
        elif r.get("kind") == "train":
            out.append(f"iter {r['iter']}: loss {r['loss']:.4f}, time 10.00ms, mfu 1.00%")
    return "\n".join(out) + "\n"


def write_llmc(records: list[dict[str, Any]]) -> str:
    """A run's metrics as llm.c writes its -o log."""
    out = []
    for r in records:
        if r.get("kind") == "eval" and r.get("val_loss") is not None:
            out.append(f"s:{r['iter']} tel:{r['val_loss']:.6f}")
        elif r.get("kind") == "train":
            out.append(f"s:{r['iter']} trl:{r['loss']:.6f}")
    return "\n".join(out) + "\n"

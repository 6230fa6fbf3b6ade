"""How fwpipe writes numbers for people: counts, byte sizes, durations and fractions.

One module, so that the terminal summaries, the HTML pages, the plan, the training log and the
error lines write the same number the same way (`380M tokens` everywhere, not `380.0M` here and
`3.8e+08` there). Machine-readable output (--json, manifest.json) keeps the raw numbers and never
comes here. One function per kind of quantity, so that a quantity is rounded one way everywhere:

    tokens(7.6e9) -> 7.6B      params(40_559_616) -> 40.56M     pct(0.005) -> 0.5%
    loss(3.61234) -> 3.612     ratio(187.4) -> 187 (epochs, tokens/param, multiples)

It also reads such numbers back (`parse_count`, for the CLI's token and parameter flags), so the
suffixes a flag accepts are the ones the output writes.
"""

from __future__ import annotations

import re

_UNITS = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K"))  # B for billion: tokens and parameters, not bytes


def count(n: float | None, digits: int = 3) -> str:
    """A count in short form, `digits` significant figures: 1234 -> 1.23K, 3.8e8 -> 380M,
    7.6e9 -> 7.6B, 40_560_000 at digits=4 -> 40.56M; under 1,000 as is; None -> '-'."""
    if n is None:
        return "-"
    for div, unit in _UNITS:
        if abs(n) >= div:
            return f"{n / div:.{digits}g}{unit}"
    return f"{n:,.0f}" if float(n).is_integer() else f"{n:.{digits}g}"


def size(n_bytes: float | None, digits: int = 3, *, binary: bool = False) -> str:
    """Bytes for reading: decimal units for files and disks (1.69 GB), binary for device memory
    (binary=True: 11.2 GiB, as nvidia-smi and torch report it)."""
    if n_bytes is None:
        return "-"
    step, names = (1024.0, ("B", "KiB", "MiB", "GiB", "TiB")) if binary else (1000.0, ("B", "KB", "MB", "GB", "TB"))
    v, i = float(n_bytes), 0
    while abs(v) >= step and i < len(names) - 1:
        v, i = v / step, i + 1
    return f"{v:,.0f} B" if i == 0 else f"{v:.{digits}g} {names[i]}"


def clock(seconds: float | None) -> str:
    """An ETA or elapsed time as a clock: 75 -> 1:15, 3725 -> 1:02:05; None (unknown) -> '?'."""
    if seconds is None:
        return "?"
    s = int(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def duration(seconds: float) -> str:
    """A long span in one unit: 45 -> 45s, 600 -> 10min, 9000 -> 2.5h (seconds under 2 minutes,
    minutes under 2 hours)."""
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}min"
    return f"{seconds / 3600:.1f}h"


def _is_num(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def pct(x: object, digits: int = 1) -> str:
    """A fraction as a percentage with one decimal (0.123 -> 12.3%, 0.005 -> 0.5%, 1 -> 100.0%);
    a share too small for that keeps two significant figures (0.00031 -> 0.031%), so a nonzero
    share never reads 0.0%; anything not a number (a missing key) -> '-'."""
    if not _is_num(x):
        return "-"
    if x != 0 and abs(x) < 0.5 * 10 ** -(digits + 2):
        return f"{x * 100:.2g}%"
    return f"{x:.{digits}%}"


def tokens(n: float | None) -> str:
    """A token count: 3 significant figures (7.6B, 380M, 1.23K); under 1,000 as is."""
    return count(n, 3)


def params(n: float | None) -> str:
    """A parameter count: 4 significant figures, so nearby model sizes stay apart (40.56M, 124.4M)."""
    return count(n, 4)


def loss(x: float | None) -> str:
    """A loss in nats per token, to 3 decimals (3.612); None or not a number -> '-'."""
    return f"{x:.3f}" if _is_num(x) else "-"


def ratio(x: float | None) -> str:
    """A plain ratio (epochs, tokens per parameter, a data multiple) to 3 significant figures and
    never in scientific notation: 0.00312, 3.8, 25.3, 187, 1,870; not a number -> '-'."""
    if not _is_num(x):
        return "-"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}" if x == 0 or abs(x) >= 1e-4 else f"{x:.2e}"


_SUFFIX = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}  # the units count() writes, any case (G as in 7.6G)
_COUNT = re.compile(r"^\s*([+-]?(?:[0-9][0-9_]*\.?[0-9_]*|\.[0-9_]+)(?:e[+-]?[0-9]+)?)\s*([kmbgt]?)\s*$", re.IGNORECASE)


def parse_count(text: str) -> float:
    """A count as people write it: 7.6e9, 7.6B, 100M, 40m, 2.5k, 1_000_000 -> a float (the caller
    checks it is whole and positive). Raises ValueError for anything else."""
    m = _COUNT.match(str(text))
    if not m:
        if str(text).strip().lower().lstrip("+-") in ("nan", "inf", "infinity"):
            return float(text)  # a number, but not a count: the caller says so
        raise ValueError(text)
    return float(m.group(1).replace("_", "")) * _SUFFIX.get(m.group(2).lower(), 1.0)


def num(x: object) -> str:
    """A number in full with thousands separators (1,234; 1,234.5); not a number -> '-'."""
    if isinstance(x, bool):
        return "-"
    return f"{x:,}" if isinstance(x, int) else (f"{x:,.1f}" if isinstance(x, float) else "-")

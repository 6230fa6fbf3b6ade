"""How fwpipe writes numbers for people: counts, byte sizes, durations and fractions.

One module, so that the terminal summaries, the HTML pages, the plan and the error lines write
the same number the same way (`380M tokens` everywhere, not `380.0M` here and `3.8e+08` there).
Machine-readable output (--json, manifest.json) keeps the raw numbers and never comes here.
"""

from __future__ import annotations

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


def pct(x: object, digits: int = 1) -> str:
    """A fraction as a percentage (0.123 -> 12.3%); anything not a number (a missing key) -> '-'."""
    return f"{x:.{digits}%}" if isinstance(x, (int, float)) and not isinstance(x, bool) else "-"


def num(x: object) -> str:
    """A number in full with thousands separators (1,234; 1,234.5); not a number -> '-'."""
    if isinstance(x, bool):
        return "-"
    return f"{x:,}" if isinstance(x, int) else (f"{x:,.1f}" if isinstance(x, float) else "-")

"""The disk a prepare needs, estimated from the inputs' footers before anything is written, and
the check that refuses a run its disk cannot hold (in one line, before the first file).

The estimate is the measured peak (bench/disk_bench.py: the output directory's bytes, .work
included, sampled while prepare runs) over the dataset it leaves, times that dataset's size:

    tokens   text bytes (the text column's uncompressed size in the footer) / BYTES_PER_TOKEN,
             one EOT a row; 2 bytes a token in the shards
    rows     ROW_BYTES each: the units' rows tables (uncompressed, kept until finalize) and
             docs.parquet
    peak     peak_ratio(): measured, and for --dedup the largest input's share on top
    dedup    near: the engine's scratch (fwpipe.dedup.scratch_bytes) when it is under the output
             directory (no --tmp-dir); the engine checks its own disk again when it opens it

A budget caps the tokens at what it needs. What a resumed run finds already written counts as
written: the check asks for the rest.
"""

from __future__ import annotations

import os
from pathlib import Path

from fwpipe.atomic import require_free
from fwpipe.pipeline.options import Run

# UTF-8 bytes a GPT-2 token: 4.4 on FineWeb's English (bench/disk_bench.py's corpus); other
# languages take more tokens a byte. A little under the measured figure, so the estimate errs high.
BYTES_PER_TOKEN = 4.0
# a row's share of the disk: ~170 bytes in a unit's rows table (9 numbers, id, url; Arrow,
# uncompressed) and ~80 in docs.parquet; rounded up
ROW_BYTES = 300
# peak disk over the dataset, measured (bench/disk_bench.py --only disk): dedup none frees each
# unit's tokens as the shards take them (1.03-1.17); --dedup's second pass copies one input at a
# time out of the first pass, which it frees input by input, so the largest input's tokens are
# on the disk twice at the peak (1.29-1.35 with 4 equal inputs, ~1 + 1/4 + rows)
PEAK_NONE = 1.2
PEAK_DEDUP = 1.1  # plus the largest input's share of the bytes
_HINT = "free disk space or pass -o on a disk with room (a resumed run asks only for the rest)"


def peak_ratio(run: Run) -> float:
    """The peak disk of `run` over the dataset it leaves (measured, see PEAK_NONE)."""
    if run.options.dedup == "none":
        return PEAK_NONE
    total = sum(s.bytes for s in run.sources) or 1
    return PEAK_DEDUP + max((s.bytes for s in run.sources), default=0) / total


def needed_bytes(run: Run) -> int:
    """Bytes the prepare of `run` takes on its output disk at its peak (an estimate)."""
    o = run.options
    rows = sum(s.rows for s in run.sources)
    tokens = sum(s.text_bytes for s in run.sources) / BYTES_PER_TOKEN + rows  # with one EOT a row
    if run.target is not None and tokens > 0:  # a budget stops at target train tokens
        keep = min(1.0, run.target / (1 - o.val_fraction) / tokens)
        tokens, rows = tokens * keep, rows * keep
    need = peak_ratio(run) * (2 * tokens + ROW_BYTES * rows)
    if o.dedup == "near" and run.scratch.get("tmp_dir") is None:
        from fwpipe.dedup import scratch_bytes
        from fwpipe.pipeline.dedup_passes import CONFIG

        need += scratch_bytes(int(rows), CONFIG.bands)
    return int(need)


def check_free(run: Run) -> None:
    """Refuse a run whose output disk lacks what it still needs (DiskSpaceError, one line)."""
    need = needed_bytes(run) - used_bytes(run.work.out_dir)
    if need > 0:
        require_free(run.work.given, need, "this prepare needs about", _HINT)


def used_bytes(root: Path) -> int:
    """Bytes already under `root` (a resumed run's units and shards), links not followed."""
    total = 0
    for d, _, files in os.walk(root):
        for f in files:
            try:
                total += os.lstat(os.path.join(d, f)).st_blocks * 512
            except OSError:
                pass
    return total

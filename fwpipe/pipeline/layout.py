"""prepare's one global step: from the units' rows, in unit order, the budget stop and every shard.

Cheap and in the driver: it reads two small columns of each unit's rows tables (status and
n_tokens; gpos only where the budget ends) and decides, exactly as one streaming writer would:

* the budget stop: the train document at which cumulative train stream tokens reach
  ceil(budget / max_epochs); rows after it (by global position) are dropped in both splits;
* the shards of each split: rows are taken in input order and a shard is closed before the
  first document that would overflow `shard_tokens` (skipped rows are 0 tokens wide, so they
  stay in the shard before them); a last shard holding no tokens is not written, its rows
  only counted (`trailing`).

A shard is a list of pieces (a row range of one unit's split and its token range), which
assemble.ShardWriter turns into files as the layout grows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fwpipe.pipeline.split import SPLIT_NAMES, TRAIN
from fwpipe.pipeline.tokenize import OK
from fwpipe.pipeline.units import read_rows


@dataclass(frozen=True)
class Piece:
    """Rows [row_lo, row_hi) of one unit's split, whose tokens are [tok_lo, tok_hi) of its stream."""

    unit_dir: str
    split: str
    row_lo: int
    row_hi: int
    tok_lo: int
    tok_hi: int


@dataclass
class ShardPlan:
    split: str
    index: int
    n_tokens: int = 0
    pieces: list[Piece] = field(default_factory=list)


class Layout:
    """Feed it each unit's directory and result in unit order; then `finish()`."""

    def __init__(self, shard_tokens: int, target: int | None):
        self.shard_tokens = shard_tokens
        self.target = target
        self.shards: dict[str, list[ShardPlan]] = {s: [] for s in SPLIT_NAMES}
        self.open = {s: ShardPlan(s, 0) for s in SPLIT_NAMES}
        self.trailing: dict[str, list[Piece]] = {s: [] for s in SPLIT_NAMES}
        self.train_stream = 0
        self.stop: int | None = None  # global row of the budget's last train document

    def add(self, unit_dir: str, result: dict) -> None:
        """Lay out the next unit's rows (nothing once the budget stop is behind)."""
        if self.stop is not None:
            return
        widths = {}
        for s in SPLIT_NAMES:
            if result[s]["rows"] == 0:
                widths[s] = np.zeros(0, np.int64)
                continue
            t = read_rows(unit_dir, s, ["status", "n_tokens"])
            widths[s] = np.where(t["status"].to_numpy() == OK, t["n_tokens"].to_numpy() + 1, 0)
        train = SPLIT_NAMES[TRAIN]
        if self.target is not None and self.train_stream + result[train]["stream_tokens"] >= self.target:
            cum = self.train_stream + np.cumsum(widths[train])
            k = int(np.searchsorted(cum, self.target, side="left"))  # the train document that reaches the target
            self.stop = int(read_rows(unit_dir, train, ["gpos"])["gpos"].to_numpy()[k])
            for s in SPLIT_NAMES:
                if s == train:
                    widths[s] = widths[s][: k + 1]
                elif len(widths[s]):
                    gpos = read_rows(unit_dir, s, ["gpos"])["gpos"].to_numpy()
                    widths[s] = widths[s][: int(np.searchsorted(gpos, self.stop, side="right"))]
        self.train_stream += int(widths[train].sum())
        for s in SPLIT_NAMES:
            self._cut(s, unit_dir, widths[s])

    def _cut(self, split: str, unit_dir: str, widths: np.ndarray) -> None:
        cum = np.cumsum(widths)
        lo, n = 0, len(widths)
        while lo < n:
            base = int(cum[lo - 1]) if lo else 0
            room = self.shard_tokens - self.open[split].n_tokens
            hi = int(np.searchsorted(cum, base + room, side="right"))  # rows that fit
            if hi == lo:
                self._close(split)  # the next document does not fit: it starts a new shard
                continue
            shard = self.open[split]
            shard.pieces.append(Piece(unit_dir, split, lo, hi, base, int(cum[hi - 1])))
            shard.n_tokens += int(cum[hi - 1]) - base
            lo = hi
            if lo < n:
                self._close(split)

    def _close(self, split: str) -> None:
        shard = self.open[split]
        if shard.n_tokens == 0:
            return  # a shard of only skipped rows is not written; its rows stay for the next
        self.shards[split].append(shard)
        self.open[split] = ShardPlan(split, shard.index + 1)

    def shard_counts(self) -> dict[str, int]:
        return {s: len(self.shards[s]) for s in SPLIT_NAMES}

    def finish(self) -> None:
        """Close the last shard of each split; one without tokens leaves its rows as `trailing`."""
        for s in SPLIT_NAMES:
            self._close(s)
            self.trailing[s] = self.open[s].pieces

"""Batches of token windows from memory-mapped shards, in exact, reshuffled epochs.

A window is block_size + 1 tokens (inputs and the targets shifted by one). Window starts are
0, T, 2T, ... in each shard (T = block_size), so one epoch predicts every token of every shard
once (except a shard's last partial window) and a window never crosses two shards. Each epoch
visits every window once, in the order of a permutation seeded by (seed, epoch): the position
(epoch, index in epoch) is the loader's whole state, so a checkpoint restores it exactly.

Under DDP every rank walks the same permutation: of each iteration's global batch (grad_accum
micro-batches) rank r takes the r-th contiguous share and steps over the others', so the ranks
together see exactly the single-process token stream, and the position between iterations (what
a checkpoint stores) is the same for any world size.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from fwpipe.dataset import Split
from fwpipe.errors import BudgetError

log = logging.getLogger(__name__)


@dataclass
class Position:
    epoch: int = 0  # epochs started so far, from 0
    index: int = 0  # windows of this epoch already handed out


class Windows:
    """The window starts of one split: shard k holds windows offsets[k] .. offsets[k+1]-1."""

    def __init__(self, split: Split, block_size: int):
        self.shards = split.shards
        self.block_size = block_size
        counts = np.array([max(0, (len(s) - 1) // block_size) for s in self.shards], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(counts)])
        self.n = int(self.offsets[-1])

    def gather(self, window_ids: np.ndarray) -> np.ndarray:
        """(len(window_ids), block_size + 1) int64 tokens."""
        T = self.block_size
        out = np.empty((len(window_ids), T + 1), dtype=np.int64)
        shard_ids = np.searchsorted(self.offsets, window_ids, side="right") - 1
        for row, (w, k) in enumerate(zip(window_ids, shard_ids)):
            start = int(w - self.offsets[k]) * T
            out[row] = self.shards[k][start : start + T + 1]
        return out


def _to_device(xy: np.ndarray, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.from_numpy(xy)
    x, y = t[:, :-1].contiguous(), t[:, 1:].contiguous()  # (B, T) inputs and (B, T) next-token targets
    if device.startswith("cuda"):
        # pinned memory lets the copy run asynchronously with the previous step's kernels
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    return x.to(device), y.to(device)


class TrainLoader:
    """Endless batches of train windows; each epoch a fresh seeded permutation."""

    def __init__(
        self,
        split: Split,
        block_size: int,
        batch_size: int,
        seed: int,
        device: str = "cpu",
        *,
        rank: int = 0,
        world_size: int = 1,
        micro_per_rank: int = 1,
    ):
        self.windows = Windows(split, block_size)
        if self.windows.n == 0:
            raise BudgetError(
                f"the train split has no window of block_size+1 = {block_size + 1} tokens",
                "prepare more text or lower block_size with --set",
            )
        self.batch_size, self.seed, self.device = batch_size, seed, device
        self.rank, self.world_size, self.micro_per_rank = rank, world_size, micro_per_rank
        self._micro = 0  # micro-batches of this rank's share handed out in the current iteration
        self.pos = Position()
        self._perm_epoch, self._perm = -1, np.empty(0, dtype=np.int64)
        log.info("train loader: %s windows of %d tokens per epoch", f"{self.windows.n:,}", block_size + 1)

    @property
    def windows_per_epoch(self) -> int:
        return self.windows.n

    @property
    def tokens_per_epoch(self) -> int:
        """Tokens predicted per epoch: every window's block_size targets."""
        return self.windows.n * self.windows.block_size

    @property
    def epoch(self) -> float:
        """Fractional epochs consumed so far (1.5 = one full pass and half of the second)."""
        return self.pos.epoch + self.pos.index / self.windows.n

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.windows.n)
            self._perm_epoch = epoch
        return self._perm

    def next_ids(self, n: int | None = None) -> np.ndarray:
        """The next n (default batch_size) window ids; they may span the end of one epoch and the next."""
        ids = [np.empty(0, dtype=np.int64)]
        need = self.batch_size if n is None else n
        while need:
            perm = self._permutation(self.pos.epoch)
            take = perm[self.pos.index : self.pos.index + need]
            ids.append(take)
            need -= len(take)
            self.pos.index += len(take)
            if self.pos.index == self.windows.n:
                self.pos = Position(self.pos.epoch + 1, 0)
        return np.concatenate(ids)

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        share = self.micro_per_rank * self.batch_size  # windows per rank per iteration
        if self._micro == 0 and self.rank:
            self.next_ids(self.rank * share)  # the lower ranks' shares of this global batch
        xy = self.windows.gather(self.next_ids())
        self._micro += 1
        if self._micro == self.micro_per_rank:
            self._micro = 0
            self.next_ids((self.world_size - 1 - self.rank) * share)  # the higher ranks' shares
        return _to_device(xy, self.device)

    def state_dict(self) -> dict:
        return {
            "epoch": self.pos.epoch,
            "index": self.pos.index,
            "seed": self.seed,
            "windows": self.windows.n,
            "batch_size": self.batch_size,
        }

    def load_state_dict(self, state: dict) -> None:
        if state["windows"] != self.windows.n:
            raise ValueError(f"checkpoint loader had {state['windows']} windows, this dataset {self.windows.n}")
        self.seed = state["seed"]
        self.pos = Position(state["epoch"], state["index"])
        self._micro = 0


def fixed_batches(split: Split, block_size: int, batch_size: int, n_batches: int, seed: int) -> list[np.ndarray]:
    """The same n_batches batches every eval (seeded, spread over the split), so losses compare.
    A split with fewer windows than needed is cycled."""
    windows = Windows(split, block_size)
    if windows.n == 0:
        return []
    order = np.random.default_rng([seed, 2**31 - 1]).permutation(windows.n)
    ids = np.resize(order, batch_size * n_batches)  # cycles when the split is small
    return [windows.gather(ids[i * batch_size : (i + 1) * batch_size]) for i in range(n_batches)]


def batch_to_device(xy: np.ndarray, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    return _to_device(xy, device)

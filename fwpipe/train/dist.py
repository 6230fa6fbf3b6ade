"""Data-parallel training under torchrun: who this process is, and the few collectives the loop needs.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them (a plain `fwpipe train`) the world is
one process and every helper here is a no-op, so the single-process path runs no distributed code.
The process group uses nccl on CUDA and gloo on CPU. Only rank 0 takes the run-dir lock and writes.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass

from fwpipe.errors import ConfigError

log = logging.getLogger(__name__)

# a collective that waits longer than this for a peer that died fails instead of hanging; torchrun's
# agent normally tears the other ranks down within seconds of one exiting, before this matters
TIMEOUT_S = int(os.environ.get("FWPIPE_DIST_TIMEOUT_S", "300"))


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.size > 1


def world() -> World:
    """This process's place, from torchrun's environment (one process when it is not set)."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as e:
        raise ConfigError(
            f"torchrun's RANK / WORLD_SIZE / LOCAL_RANK are not integers ({e})",
            "start fwpipe with torchrun, or unset them",
        ) from e
    if size < 1 or not 0 <= rank < size:
        raise ConfigError(
            f"RANK={rank} with WORLD_SIZE={size} is not a valid place", "start fwpipe with torchrun, or unset them"
        )
    return World(rank, size, local)


def accum_per_rank(grad_accum: int, w: World) -> int:
    """Micro-steps each rank runs so that the global batch stays the config's."""
    if grad_accum % w.size:
        raise ConfigError(
            f"grad_accum={grad_accum} does not divide over {w.size} processes",
            f"pick --nproc_per_node dividing {grad_accum}, or --set grad_accum to a multiple of {w.size}",
        )
    return grad_accum // w.size


def init(w: World, device_type: str) -> None:
    """Join the process group (once); a one-process world joins nothing."""
    if not w.enabled:
        return
    import torch
    import torch.distributed as td

    if td.is_initialized():
        return
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(w.local_rank)
    td.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=TIMEOUT_S))
    log.info("rank %d of %d joined the %s process group", w.rank, w.size, backend)


def close(w: World) -> None:
    if w.enabled:
        import torch.distributed as td

        if td.is_initialized():
            td.destroy_process_group()


def all_sum(w: World, values: list[float], device: str) -> list[float]:
    """The element-wise sum of `values` over the ranks (the values themselves in one process)."""
    if not w.enabled:
        return list(values)
    import torch
    import torch.distributed as td

    t = torch.tensor(values, dtype=torch.float64, device=device)
    td.all_reduce(t, op=td.ReduceOp.SUM)  # gloo has no AVG: sum, and the caller divides
    return t.tolist()


def all_min(w: World, value, device: str):
    """The minimum of a 0-d tensor over the ranks."""
    if not w.enabled:
        return value
    import torch.distributed as td

    t = value.clone()
    td.all_reduce(t, op=td.ReduceOp.MIN)
    return t

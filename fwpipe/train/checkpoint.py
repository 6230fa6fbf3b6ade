"""Checkpoints written atomically (temp file, fsync, rename) and the dataset they belong to."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from fwpipe.atomic import atomic_file
from fwpipe.errors import DatasetMismatchError, InputNotFoundError
from fwpipe.shards import Dataset

LAST, BEST = "last.pt", "best.pt"


def dataset_fingerprint(ds: Dataset) -> str:
    """The manifest's sha256 for a fwpipe dataset; for nanoGPT / llm.c files (no manifest), a
    hash of every token file's name, size and first and last 1 MiB."""
    if ds.manifest_sha256:
        return ds.manifest_sha256
    h = hashlib.sha256()
    for name in sorted(ds.splits):
        for path in ds.splits[name].paths:
            size = path.stat().st_size
            h.update(f"{name}/{path.name}/{size}".encode())
            with open(path, "rb") as f:
                h.update(f.read(1 << 20))
                f.seek(max(0, size - (1 << 20)))
                h.update(f.read(1 << 20))
    return h.hexdigest()


def save(path: Path, state: dict[str, Any]) -> None:
    with atomic_file(path, hint="free disk space or pass another --out") as f:
        torch.save(state, f)


def load(path: Path, map_location: str = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(f"{path}: no checkpoint to resume from", "start the run without --resume, or pass the --out of an earlier run")
    # our own file: it holds numpy scalars and dicts besides tensors, so not weights_only
    return torch.load(path, map_location=map_location, weights_only=False)


def check_dataset(ckpt: dict[str, Any], fingerprint: str, data_path: Path) -> None:
    if ckpt.get("dataset_sha256") != fingerprint:
        raise DatasetMismatchError(
            f"the checkpoint was trained on another dataset (sha256 {str(ckpt.get('dataset_sha256'))[:12]}..., "
            f"{data_path} is {fingerprint[:12]}...)",
            f"resume with --data {ckpt.get('dataset_path', 'the original dataset')}, or start a new run with another --out",
        )

"""Corpus helpers shared by test folders: planted near-copies of real text and token datasets
written in the three layouts the readers accept (fwpipe, llm.c shards, nanoGPT .bin).

Plain functions, no fixtures: tests/audit/conftest.py builds its planted dataset from them, and
tests/pipeline, tests/dedup, tests/cluster and tests/audit import them directly; `dir_digest`
compares whole output directories byte for byte.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import numpy as np

from fwpipe import dataset
from fwpipe.shards import write_shard
from fwpipe.tokenizer import EOT


def edit_words(text: str, rate: float, rng: random.Random) -> str:
    """Replace, delete or insert words, each with probability rate/3 per word."""
    words = text.split(" ")
    out = []
    for w in words:
        r = rng.random()
        if r < rate / 3:
            out.append(rng.choice(words))  # replace
        elif r < 2 * rate / 3:
            continue  # delete
        elif r < rate:
            out.extend([w, rng.choice(words)])  # insert
        else:
            out.append(w)
    return " ".join(out)


def stream(docs: list[np.ndarray], eot_after: bool = False) -> np.ndarray:
    parts = []
    for d in docs:
        parts += [d, [EOT]] if eot_after else [[EOT], d]
    return np.concatenate([np.asarray(p, dtype=np.uint16) for p in parts]) if parts else np.zeros(0, np.uint16)


def write_fwpipe(root: Path, splits: dict[str, list[list[np.ndarray]]], manifest_extra: dict | None = None) -> Path:
    """A fwpipe dataset dir: per split a list of shards, each a list of docs."""
    root.mkdir(parents=True, exist_ok=True)
    man = dataset.Manifest("complete", "fwpipe", splits={}, **(manifest_extra or {}))
    for name, shards in splits.items():
        files = []
        for i, docs in enumerate(shards):
            f = dataset.shard_name(name, i)
            write_shard(root / f, stream(docs))
            files.append(dataset.ShardFile(f, len(docs) + sum(len(d) for d in docs)))
        man.splits[name] = dataset.SplitTotals(shard_files=files)
    dataset.write_manifest(root, man)
    return root


def write_llmc(root: Path, splits: dict[str, list[list[np.ndarray]]]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, shards in splits.items():
        for i, docs in enumerate(shards):
            write_shard(root / f"fineweb_{name}_{i:06d}.bin", stream(docs))
    return root


def write_nanogpt(root: Path, splits: dict[str, list[np.ndarray]]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, docs in splits.items():
        stream(docs, eot_after=True).tofile(root / f"{name}.bin")
    return root


def dir_digest(path: Path) -> dict[str, str]:
    """sha256 of every file under `path`, by relative name."""
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }

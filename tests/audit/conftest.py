"""Audit fixtures: real FineWeb documents, tokenized, with planted copies, in all three layouts.

The planted dataset (built once per session):
  train = 600 distinct real documents, then 4 exact copies of train docs (doc 0 three times,
          doc 1 once), then 3 word-edited copies of train docs 10, 11, 12 (~1% of words);
  val   = 150 distinct real documents (none in train), then 2 exact copies of train docs 20, 21,
          then 2 edited copies of train docs 30, 31.
So: exact duplicates 4 (train) + 2 (val) = 6; exact leakage 2; near leakage 4 (2 exact + 2 edited).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from fwpipe.tokenizer import encode
from tests.corpus import edit_words, write_fwpipe, write_llmc, write_nanogpt


@dataclass
class Planted:
    train: list[np.ndarray]
    val: list[np.ndarray]
    exact_dups: int
    exact_leak: int
    near_leak: int


@pytest.fixture(scope="session")
def real_texts(sample1400) -> list[str]:
    texts = pl.read_parquet(sample1400, columns=["text"])["text"].to_list()
    seen, out = set(), []
    for t in texts:  # distinct texts of some length, so planted counts are the only copies
        if t not in seen and len(t.split()) >= 60:
            seen.add(t)
            out.append(t)
    return out


@pytest.fixture(scope="session")
def planted(real_texts) -> Planted:
    rng = random.Random(7)
    base = [encode(t).astype(np.uint16) for t in real_texts[:750]]
    train = base[:600]
    val = base[600:750]
    train = train + [train[0], train[0], train[0], train[1]]
    train += [encode(edit_words(real_texts[i], 0.01, rng)).astype(np.uint16) for i in (10, 11, 12)]
    val = val + [train[20], train[21]]
    val += [encode(edit_words(real_texts[i], 0.01, rng)).astype(np.uint16) for i in (30, 31)]
    return Planted(train, val, exact_dups=6, exact_leak=2, near_leak=4)


@pytest.fixture(scope="session")
def planted_dirs(planted, tmp_path_factory) -> dict[str, Path]:
    """The planted dataset in the three layouts (train split over two shards where shards exist)."""
    tmp = tmp_path_factory.mktemp("planted")
    t, v = planted.train, planted.val
    shards = {"train": [t[:300], t[300:]], "val": [v]}
    return {
        "fwpipe": write_fwpipe(tmp / "fwpipe", shards, {"sources": [{"path": "a.parquet"}, {"path": "b.parquet"}]}),
        "llmc": write_llmc(tmp / "llmc", shards),
        "nanogpt": write_nanogpt(tmp / "nanogpt", {"train": t, "val": v}),
    }


@pytest.fixture(scope="session")
def planted_reports(planted_dirs) -> dict[str, dict]:
    from fwpipe.audit import audit

    return {fmt: audit(path, budget_tokens=7.6e9, params=40e6) for fmt, path in planted_dirs.items()}

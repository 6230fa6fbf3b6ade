"""Planted causes: tiny CPU runs whose reason for a high loss is known, shared by the tests.

The text is real FineWeb (../shared/data), tokenized with GPT-2 BPE, then mapped onto a 256-token
vocabulary (the 255 most frequent ids keep a slot, every other id becomes 255), so that a GPT
small enough to train in seconds on a CPU still learns real text statistics; the model's
vocab_size is set to 256 on the config object (the CLI's check for GPT-2's 50,257 applies to
user configs, not to these planted runs). Each run is session-scoped: trained once, read by
every test that needs it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from fwpipe.dataset import shard_name
from fwpipe.shards import write_shard
from fwpipe.tokenizer import EOT, encode
from fwpipe.train.config import load_config
from fwpipe.train.loop import plan_run, train

torch.set_num_threads(2)
V = 256
BASE = {
    "n_layer": 2,
    "n_head": 2,
    "n_embd": 32,
    "block_size": 64,
    "batch_size": 8,
    "grad_accum": 1,
    "lr": 1e-2,
    "min_lr": 1e-3,
    "warmup_iters": 10,
    "log_interval": 5,
    "eval_interval": 25,
    "eval_iters": 24,
}
BUDGET = 100_000  # tokens: ~195 iterations of 512 tokens, 8 evals
SHORT = 200  # iterations of a run stopped early


@pytest.fixture(scope="session")
def small_vocab_docs(sample1400) -> dict[str, list[np.ndarray]]:
    texts = pl.read_parquet(sample1400, columns=["text"])["text"].to_list()
    toks = [encode(t) for t in texts[:800] + texts[1300:1340]]
    counts = np.bincount(np.concatenate(toks), minlength=50257)
    mapping = np.full(50257, V - 1, dtype=np.uint16)
    mapping[np.argsort(-counts, kind="stable")[: V - 1]] = np.arange(V - 1)
    docs = [mapping[t] for t in toks]
    with_eot = [np.concatenate([[EOT], t]).astype(np.uint16) for t in toks]
    return {"train": docs[:800], "val": docs[800:], "train_ids": with_eot[:800], "val_ids": with_eot[800:]}


def _write(root: Path, train_docs: list[np.ndarray], val_docs: list[np.ndarray]) -> Path:
    root.mkdir(parents=True)
    write_shard(root / shard_name("train", 0), np.concatenate(train_docs))
    write_shard(root / shard_name("val", 0), np.concatenate(val_docs))
    return root


@pytest.fixture(scope="session")
def datasets(tmp_path_factory, small_vocab_docs) -> dict[str, Path]:
    d = small_vocab_docs
    base = tmp_path_factory.mktemp("planted")
    return {
        "fresh": _write(base / "fresh", d["train"], d["val"]),  # ~1.2M train tokens: the budget is 0.08 epochs
        "tiny": _write(base / "tiny", d["train"][:10], d["val"]),  # ~15K train tokens: the budget is ~7 epochs
        "leaky": _write(base / "leaky", d["train"][:200] + d["val"], d["val"]),  # every val document also in train
        # the same documents in GPT-2 ids with their EOTs: the 256-token mapping has no EOT, so
        # audit's leakage check (documents split at EOT) reads these
        "leaky_ids": _write(base / "leaky_ids", d["train_ids"][:200] + d["val_ids"], d["val_ids"]),
        "fresh_ids": _write(base / "fresh_ids", d["train_ids"], d["val_ids"]),
    }


def _run(root: Path, name: str, data: Path, budget: int = BUDGET, stop_after: int | None = None, **over) -> Path:
    cfg = load_config("tiny-cpu", {**BASE, **over})
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, vocab_size=V))
    out = root / name
    train(plan_run(data, budget, cfg, out=out, allow_repeats=True), stop_after=stop_after)
    return out


@pytest.fixture(scope="session")
def planted(tmp_path_factory, datasets):
    """Trains each planted run on first use: planted('repetition') -> its run directory."""
    root = tmp_path_factory.mktemp("runs")
    recipes = {
        # a short run: a quarter of a 4x budget, stopped while the learning rate is still high;
        # 48 eval batches so that the val estimate resolves its per-doubling progress
        "still_improving": lambda: _run(root, "healthy", datasets["fresh"], 4 * BUDGET, SHORT, eval_iters=48),
        "repetition": lambda: _run(root, "repeated", datasets["tiny"]),
        "capacity": lambda: _run(root, "small-model", datasets["fresh"], n_layer=1, n_head=1, n_embd=4),
        "learning_rate": lambda: _run(root, "high-lr", datasets["fresh"], lr=3.0, min_lr=0.3),
        "eval_noise": lambda: _run(
            root, "one-eval-batch", datasets["fresh"], 4 * BUDGET, SHORT, eval_iters=1
        ),  # the same, one eval batch
        "leakage": lambda: _run(root, "leaky", datasets["leaky"], budget=30_000),
    }
    done: dict[str, Path] = {}

    def get(cause: str) -> Path:
        if cause not in done:
            done[cause] = recipes[cause]()
        return done[cause]

    return get

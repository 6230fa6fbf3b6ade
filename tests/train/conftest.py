"""Tiny real datasets for the train tests: FineWeb text tokenized into llm.c-style shards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch  # noqa: E402  (the README's test command installs it; a missing torch must fail, not skip)

from fwpipe.dataset import shard_name
from fwpipe.shards import write_shard
from fwpipe.tokenizer import EOT, encode
from fwpipe.train.config import load_config

torch.set_num_threads(2)  # the CI machine has 2 cores; also keeps float sums in one order

# A really tiny GPT: 2 layers, 2 heads, 64 wide, 64 tokens of context, 8 x 64 = 512 tokens/iter.
TINY = {
    "n_layer": 2,
    "n_head": 2,
    "n_embd": 64,
    "block_size": 64,
    "batch_size": 8,
    "grad_accum": 1,
    "lr": 1e-2,
    "min_lr": 1e-3,
    "warmup_iters": 10,
    "log_interval": 1,
    "eval_interval": 25,
    "eval_iters": 2,
}


def tiny_config(**extra):
    return load_config("tiny-cpu", {**TINY, **extra})


def _tokens(texts: list[str]) -> np.ndarray:
    parts = []
    for t in texts:
        parts += [np.array([EOT], dtype=np.uint32), encode(t)]  # EOT before each document
    return np.concatenate(parts).astype(np.uint16)


def write_dataset(root: Path, train_texts: list[str], val_texts: list[str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    write_shard(root / shard_name("train", 0), _tokens(train_texts))
    write_shard(root / shard_name("val", 0), _tokens(val_texts))
    return root


@pytest.fixture(scope="session")
def fineweb_texts(sample1400) -> list[str]:
    return pl.read_parquet(sample1400, columns=["text"])["text"].to_list()


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory, fineweb_texts) -> Path:
    """~300 FineWeb documents (about 0.2M tokens) for train, 30 for val, as llm.c shards."""
    return write_dataset(tmp_path_factory.mktemp("tiny") / "data", fineweb_texts[:300], fineweb_texts[1300:1330])


@pytest.fixture(scope="session")
def other_data(tmp_path_factory, fineweb_texts) -> Path:
    """A different dataset of the same shape, for the resume-refuses test."""
    return write_dataset(tmp_path_factory.mktemp("other") / "data", fineweb_texts[300:600], fineweb_texts[1330:1360])

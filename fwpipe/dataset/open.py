"""Opening a tokenized dataset in any of three layouts: a fwpipe directory (manifest.json), a
nanoGPT directory (train.bin / val.bin) or llm.c shards (a directory or a glob). The other
stages see a Dataset and, for a fwpipe one, its typed Manifest.
"""

from __future__ import annotations

import glob as globlib
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from fwpipe.dataset.files import DOCS, MANIFEST, SPLITS
from fwpipe.dataset.manifest import Manifest, Sizing, load_manifest
from fwpipe.errors import InputNotFoundError, ShardFormatError
from fwpipe.shards import MAGIC, document_bounds, read_raw_bin, read_shard
from fwpipe.tokenizer import EOT

Format = Literal["fwpipe", "nanogpt", "llmc"]


@dataclass
class Split:
    """One split of a dataset: its token files, memory-mapped, in order."""

    name: str
    paths: list[Path]
    shards: list[np.ndarray]

    @property
    def stream_tokens(self) -> int:
        """Tokens including the EOT separators, as a training loader sees them."""
        return int(sum(len(s) for s in self.shards))

    def documents(self) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Per shard: (shard index, doc starts, doc ends) of every non-empty run between EOTs."""
        for i, tokens in enumerate(self.shards):
            starts, ends = document_bounds(tokens, EOT)  # a slice at a time, its pages dropped after it
            yield i, starts, ends


@dataclass
class Dataset:
    """A tokenized dataset in any of the three layouts, with its splits memory-mapped."""

    root: Path
    format: Format
    splits: dict[str, Split]
    manifest: Manifest | None = None  # fwpipe datasets only
    manifest_sha256: str | None = None

    def split(self, name: str) -> Split:
        return self.splits.get(name) or Split(name, [], [])

    @property
    def n_sources(self) -> int | None:
        """Input files prepare read, where a manifest records them."""
        return len(self.manifest.sources) if self.manifest and self.manifest.sources else None

    @property
    def sizing(self) -> Sizing | None:
        """The budget a dataset was prepared for (prepare --budget-tokens), if any."""
        return self.manifest.sizing if self.manifest else None

    @property
    def docs_table(self) -> Path | None:
        """docs.parquet (DOCS_SCHEMA) of a fwpipe dataset, if it is there."""
        path = self.root / DOCS
        return path if self.manifest is not None and path.exists() else None


def _is_llmc(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return len(head) == 12 and int(np.frombuffer(head[:4], "<i4")[0]) == MAGIC


def _split_of(path: Path) -> str | None:
    """train or val from a file name's words: fineweb_train_000001.bin, tinyshakespeare_val.bin.

    Whole words only (runs of letters), so `..._train_interval_...` is train, not val.
    """
    words = set(re.findall(r"[a-z]+", path.name.lower()))
    found = [name for name in SPLITS if name in words]
    if len(found) > 1:
        raise ShardFormatError(f"{path}: the name says both train and val", "rename it so that it names one split")
    return found[0] if found else None


def open_dataset(path: str | Path) -> Dataset:
    """Open a fwpipe dataset directory, a nanoGPT directory, or llm.c shards (dir or glob).

    The layout is detected: manifest.json -> fwpipe; train.bin/val.bin without the llm.c magic
    -> nanoGPT; *.bin files with the llm.c magic -> llm.c. A directory that holds two layouts
    is refused rather than guessed. Every token file is checked against the vocabulary.
    """
    spath = str(path)
    root = Path(spath)
    if any(c in spath for c in "*?["):
        files = sorted(Path(p) for p in globlib.glob(spath))
        if not files:
            raise InputNotFoundError(
                f"{spath}: the glob matches no files", "check the pattern; quote it so the shell does not expand it"
            )
        return _open_llmc(root.parent, files)
    if not root.exists():
        raise InputNotFoundError(
            f"{root}: no such dataset", "run `fwpipe prepare INPUT.parquet -o DIR` first, or pass an existing dataset"
        )
    if root.is_file():
        files = [root]
        return (
            _open_llmc(root.parent, files)
            if _is_llmc(root)
            else _open_nanogpt(root.parent, {(_split_of(root) or "train"): root})
        )
    if (root / MANIFEST).exists():
        return _open_fwpipe(root)
    bins = sorted(root.glob("*.bin"))
    if not bins:
        raise InputNotFoundError(
            f"{root}: no manifest.json and no .bin token files",
            "pass a fwpipe dataset, a nanoGPT dir (train.bin/val.bin) or llm.c shards",
        )
    raw_named = _raw_named(root)
    if raw_named and not any(_is_llmc(p) for p in raw_named.values()):
        llmc = [p.name for p in bins if p not in raw_named.values() and _is_llmc(p)]
        if llmc:
            more = f" and {len(llmc) - 2} more" if len(llmc) > 2 else ""
            _refuse_two_layouts(root, f"llm.c shards ({', '.join(llmc[:2])}{more})", list(raw_named.values()))
        return _open_nanogpt(root, raw_named)
    return _open_llmc(root, bins)


def _open_fwpipe(root: Path) -> Dataset:
    path = root / MANIFEST
    manifest, raw = load_manifest(path)
    if manifest.status != "complete":
        raise ShardFormatError(
            f"{root}: prepare did not finish (manifest status {manifest.status!r})",
            "re-run the same fwpipe prepare command to finish it",
        )
    listed = {name: [root / f.file for f in manifest.split_totals(name).shard_files] for name in SPLITS}
    if manifest.format == "fwpipe":
        n_listed = sum(len(fs) for fs in listed.values())
        _refuse_two_layouts(
            root, f"a fwpipe dataset ({MANIFEST} and its {n_listed} shard(s))", list(_raw_named(root).values())
        )
    splits = {}
    for name, files in listed.items():
        for f in files:
            if not f.exists():
                raise ShardFormatError(
                    f"{f}: listed in the manifest but missing", "re-run fwpipe prepare with --overwrite"
                )
        read = read_raw_bin if manifest.format == "nanogpt" else read_shard
        splits[name] = Split(name, files, [read(f) for f in files])
    return Dataset(root, manifest.format, splits, manifest, hashlib.sha256(raw).hexdigest())


def _raw_named(root: Path) -> dict[str, Path]:
    """nanoGPT's train.bin / val.bin in a directory, by split."""
    return {name: root / f"{name}.bin" for name in SPLITS if (root / f"{name}.bin").is_file()}


def _refuse_two_layouts(root: Path, shards: str, nanogpt: list[Path]) -> None:
    """Refuse a directory that holds shards and nanoGPT files too: reading either one would be a guess."""
    if nanogpt:
        raise ShardFormatError(
            f"{root}: holds two datasets, {shards} and nanoGPT {' and '.join(p.name for p in nanogpt)}, "
            "and fwpipe will not guess which one you mean",
            f"move one of them into a directory of its own, or pass the shards as a quoted glob: '{root / '*_[0-9]*.bin'}'",
        )


def _open_nanogpt(root: Path, named: dict[str, Path]) -> Dataset:
    splits = {name: Split(name, [p], [read_raw_bin(p)]) for name, p in sorted(named.items())}
    return Dataset(root, "nanogpt", splits)


def _open_llmc(root: Path, files: list[Path]) -> Dataset:
    by_split: dict[str, list[Path]] = {}
    for f in files:
        if not _is_llmc(f):
            raise ShardFormatError(
                f"{f}: no llm.c magic {MAGIC} in its header",
                "pass only llm.c shards, or a nanoGPT directory with train.bin/val.bin",
            )
        split = _split_of(f)
        if split is None:
            raise ShardFormatError(
                f"{f}: cannot tell train from val by its name",
                "rename llm.c shards to contain 'train' or 'val' as a word, e.g. fineweb_val_000000.bin",
            )
        by_split.setdefault(split, []).append(f)
    splits = {name: Split(name, ps, [read_shard(p) for p in ps]) for name, ps in by_split.items()}
    return Dataset(root, "llmc", splits)

"""The token-shard format: the only module that reads or writes token files.

Three layouts are read, one is written:

* fwpipe / llm.c / modded-nanogpt shards: a header of 256 little-endian int32 (magic 20240520,
  version 1, token count, the rest zero), then the tokens as little-endian uint16. EOT (50256)
  stands *before* every document.
* nanoGPT `train.bin` / `val.bin`: raw little-endian uint16, EOT *after* every document.

Either way a document is a non-empty run of tokens between EOTs, so every reader below finds
documents the same way (kernels.doc_bounds) whatever the convention.
"""

from __future__ import annotations

import glob as globlib
import json
import mmap
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Literal

import numpy as np

from fwpipe.atomic import discard, fsync_dir, open_new, output_error, write_bytes
from fwpipe.errors import InputNotFoundError, OutputError, ShardFormatError
from fwpipe.tokenizer import EOT, VOCAB_SIZE

MAGIC = 20240520
VERSION = 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
TOKEN_DTYPE = np.dtype("<u2")  # since EOT == 50256 < 2**16
SPLITS = ("train", "val")
MANIFEST = "manifest.json"
CLUSTERS = "clusters.parquet"  # audit's output inside a fwpipe dataset
# parquet key-value metadata that marks a table fwpipe wrote, so that prepare --overwrite
# deletes a clusters.parquet only when it is audit's and never a user's file of that name
WRITTEN_BY = (b"fwpipe.written_by", b"fwpipe audit")


def written_by_audit(path: Path) -> bool:
    """True for a parquet file that carries audit's mark (only its footer is read, as data)."""
    import pyarrow.parquet as pq

    if path.is_symlink() or not path.is_file():
        return False
    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception:  # noqa: BLE001 - not parquet, truncated, unreadable: not audit's
        return False
    if WRITTEN_BY[0] in meta:
        return meta[WRITTEN_BY[0]] == WRITTEN_BY[1]
    # audit before the mark (fwpipe 0.1 datasets) wrote exactly these columns, in this order
    return pq.read_schema(path).names == list(_LEGACY_CLUSTERS_COLUMNS)


_LEGACY_CLUSTERS_COLUMNS = ("split", "doc", "shard", "offset", "n_tokens", "cluster", "keep")

Format = Literal["fwpipe", "nanogpt", "llmc"]
_HINT = "free disk space or choose another -o directory, then re-run to resume"
_REPREPARE = "re-run fwpipe prepare into a new -o directory"


def shard_name(split: str, index: int) -> str:
    return f"{split}_{index:06d}.bin"


def header(n_tokens: int) -> np.ndarray:
    h = np.zeros(HEADER_INTS, dtype="<i4")
    h[0], h[1], h[2] = MAGIC, VERSION, n_tokens
    return h


def write_shard(path: Path, tokens: np.ndarray) -> None:
    """Write one llm.c-format shard atomically (temp file, fsync, rename)."""
    tokens = np.ascontiguousarray(tokens, dtype=TOKEN_DTYPE)
    if len(tokens) >= 2**31:
        raise ShardFormatError(f"{path}: {len(tokens):,} tokens do not fit an llm.c header", "lower --shard-tokens")
    write_bytes(path, [header(len(tokens)).tobytes(), tokens.data], hint=_HINT)


def read_shard(path: Path) -> np.memmap:
    """Memory-map the tokens of one llm.c-format shard after checking header and size."""
    path = Path(path)
    size = path.stat().st_size
    if size < HEADER_BYTES:
        raise ShardFormatError(f"{path}: {size} bytes is shorter than the 1024-byte llm.c header", "re-run fwpipe prepare")
    h = np.fromfile(path, dtype="<i4", count=HEADER_INTS)
    if h[0] != MAGIC:
        raise ShardFormatError(f"{path}: magic {h[0]} is not {MAGIC}, not an llm.c shard", "pass a fwpipe, nanoGPT or llm.c dataset")
    if h[1] != VERSION:
        raise ShardFormatError(f"{path}: shard version {h[1]} is not {VERSION} (uint16 tokens)", "re-tokenize with GPT-2 into version-1 shards")
    expected = HEADER_BYTES + int(h[2]) * TOKEN_DTYPE.itemsize
    if size != expected:
        raise ShardFormatError(
            f"{path}: header says {int(h[2]):,} tokens ({expected:,} bytes) but the file has {size:,} bytes",
            "the shard is truncated or corrupt; delete it and re-run fwpipe prepare",
        )
    if h[2] == 0:
        return np.zeros(0, dtype=TOKEN_DTYPE)  # np.memmap cannot map zero bytes
    return check_token_ids(path, np.memmap(path, dtype=TOKEN_DTYPE, mode="r", offset=HEADER_BYTES, shape=(int(h[2]),)), HEADER_BYTES)


def read_raw_bin(path: Path) -> np.memmap:
    """Memory-map a nanoGPT raw uint16 token file."""
    path = Path(path)
    size = path.stat().st_size
    if size % 2:
        raise ShardFormatError(f"{path}: {size} bytes is odd, not a uint16 token file", "re-export it with fwpipe prepare --format nanogpt")
    if size == 0:
        return np.zeros(0, dtype=TOKEN_DTYPE)
    return check_token_ids(path, np.memmap(path, dtype=TOKEN_DTYPE, mode="r"), 0)


def release_pages(tokens: np.ndarray) -> None:
    """Drop a memory-mapped shard's pages from this process's resident memory (they stay in the
    page cache, so a later pass reads them back cheaply). A pass over every shard would
    otherwise keep the whole corpus resident: 2 bytes per token, 80 bytes per 40-token document.
    """
    base = tokens
    while base is not None and not isinstance(getattr(base, "_mmap", None), mmap.mmap):
        base = getattr(base, "base", None)
    if base is not None and hasattr(mmap, "MADV_DONTNEED"):
        try:
            base._mmap.madvise(mmap.MADV_DONTNEED)
        except (OSError, ValueError):  # a closed or unusual mapping: keeping the pages is harmless
            pass


def check_token_ids(path: Path, tokens: np.ndarray, offset: int) -> np.ndarray:
    """Return `tokens` if every id is in the GPT-2 vocabulary, else raise ShardFormatError.

    uint16 holds ids up to 65535 but GPT-2 stops at 50256: an id past it would index past the
    token histogram and the embedding table. One vectorized max per file, so every reader
    (audit, train, the nanoGPT export) is covered once: ~0.02 s per 100M tokens in page cache
    (bench/shards_bench.py); from a cold disk, one read of the file.
    """
    if len(tokens) == 0:
        return tokens
    top = int(tokens.max())
    release_pages(tokens)  # the pass maps every page; a dataset larger than RAM must not stay resident
    if top < VOCAB_SIZE:
        return tokens
    bad = tokens >= VOCAB_SIZE
    pos = int(np.argmax(bad))
    raise ShardFormatError(
        f"{path}: token {pos:,} (byte {offset + pos * TOKEN_DTYPE.itemsize:,}) is id {int(tokens[pos])}, outside the GPT-2 "
        f"vocabulary 0..{VOCAB_SIZE - 1} ({int(np.count_nonzero(bad)):,} such ids in the file)",
        "the file is corrupt or not GPT-2 tokens (tiktoken 'gpt2'): re-tokenize the text with fwpipe prepare",
    )


class TokenFileWriter:
    """Streams tokens into a shard (llm.c header) or a raw nanoGPT .bin under a temp name.

    seal() makes the temp file complete and durable; commit() then gives it its final name, so
    a file under a final name is always whole. abort() removes the temp file.
    """

    def __init__(self, path: Path, *, with_header: bool = True):
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.name}.tmp")
        self.with_header = with_header
        self.n_tokens = 0
        try:
            self.f = open_new(self.tmp)  # never through a symbolic link planted at the temp name
            if with_header:
                self.f.write(header(0).tobytes())
        except OSError as e:
            raise self._error(e) from e

    def _error(self, e: OSError) -> OutputError:
        self.abort()
        return output_error(self.path, e, _HINT)

    def write(self, tokens: np.ndarray) -> None:
        tokens = np.ascontiguousarray(tokens, dtype=TOKEN_DTYPE)
        if self.with_header and self.n_tokens + len(tokens) >= 2**31:
            raise ShardFormatError(f"{self.path}: over 2**31 tokens do not fit an llm.c header", "lower --shard-tokens")
        try:
            self.f.write(tokens.data)
        except OSError as e:
            raise self._error(e) from e
        self.n_tokens += len(tokens)

    def seal(self) -> None:
        try:
            if self.with_header:
                self.f.seek(0)
                self.f.write(header(self.n_tokens).tobytes())
            self.f.flush()
            os.fsync(self.f.fileno())
            self.f.close()
        except OSError as e:
            raise self._error(e) from e

    def commit(self) -> None:
        if not self.f.closed:
            self.seal()
        try:
            os.replace(self.tmp, self.path)
        except OSError as e:
            raise self._error(e) from e
        fsync_dir(self.path.parent)

    def abort(self) -> None:
        try:
            if not self.f.closed:
                self.f.close()
        except (OSError, AttributeError):
            pass
        discard(self.tmp)


# ----------------------------------------------------------------------------- reading datasets


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
        from fwpipe.kernels import doc_bounds

        for i, tokens in enumerate(self.shards):
            starts, ends = doc_bounds(tokens, EOT)
            release_pages(tokens)
            yield i, starts, ends


@dataclass
class Dataset:
    """A tokenized dataset in any of the three layouts, with its splits memory-mapped."""

    root: Path
    format: Format
    splits: dict[str, Split]
    manifest: dict | None = None
    manifest_sha256: str | None = None
    extra: dict = field(default_factory=dict)

    def split(self, name: str) -> Split:
        return self.splits.get(name) or Split(name, [], [])


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


def _load_manifest(path: Path) -> tuple[dict, bytes]:
    """The manifest as a dict, checked to be the shape prepare writes, and its raw bytes."""
    try:
        raw = path.read_bytes()
        manifest = json.loads(raw)
    except OSError as e:
        raise InputNotFoundError(f"{path}: cannot read it ({e.strerror or e})", "check the file's permissions") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ShardFormatError(f"{path}: not valid JSON ({e})", _REPREPARE) from e
    if not isinstance(manifest, dict):
        raise ShardFormatError(f"{path}: a JSON {type(manifest).__name__}, not the object fwpipe prepare writes", _REPREPARE)
    if manifest.get("status") != "complete":
        raise ShardFormatError(f"{path.parent}: prepare did not finish (manifest status {manifest.get('status')!r})",
                               "re-run the same fwpipe prepare command to finish it")
    if manifest.get("format", "fwpipe") not in ("fwpipe", "nanogpt"):
        raise ShardFormatError(f"{path}: format {manifest.get('format')!r} is neither 'fwpipe' nor 'nanogpt'", _REPREPARE)
    splits = manifest.get("splits")
    if not isinstance(splits, dict):
        raise ShardFormatError(f"{path}: 'splits' is missing or not an object", _REPREPARE)
    for name in SPLITS:
        files = splits.get(name, {}).get("shard_files", []) if isinstance(splits.get(name, {}), dict) else None
        if not isinstance(files, list) or not all(isinstance(f, dict) and plain_name(f.get("file")) for f in files):
            raise ShardFormatError(f"{path}: splits.{name}.shard_files is not a list of {{'file': NAME}} in the directory",
                                   _REPREPARE)
    return manifest, raw


def plain_name(name: object) -> bool:
    """A file beside the manifest: no directory part, so a manifest cannot point a reader (or
    prepare's deletions) elsewhere."""
    return isinstance(name, str) and name not in ("", ".", "..") and Path(name).name == name and "\\" not in name


def open_dataset(path: str | Path) -> Dataset:
    """Open a fwpipe dataset directory, a nanoGPT directory, or llm.c shards (dir or glob).

    The layout is detected: manifest.json -> fwpipe; train.bin/val.bin without the llm.c magic
    -> nanoGPT; *.bin files with the llm.c magic -> llm.c. A directory that holds two layouts
    is refused rather than guessed. Every token file is checked against the vocabulary.
    """
    import hashlib

    spath = str(path)
    root = Path(spath)
    if any(c in spath for c in "*?["):
        files = sorted(Path(p) for p in globlib.glob(spath))
        if not files:
            raise InputNotFoundError(f"{spath}: the glob matches no files", "check the pattern; quote it so the shell does not expand it")
        return _open_llmc(root.parent, files)
    if not root.exists():
        raise InputNotFoundError(f"{root}: no such dataset", "run `fwpipe prepare INPUT.parquet -o DIR` first, or pass an existing dataset")
    if root.is_file():
        files = [root]
        return _open_llmc(root.parent, files) if _is_llmc(root) else _open_nanogpt(root.parent, {(_split_of(root) or "train"): root})
    manifest_path = root / MANIFEST
    if manifest_path.exists():
        manifest, raw = _load_manifest(manifest_path)
        fmt: Format = "nanogpt" if manifest.get("format") == "nanogpt" else "fwpipe"
        listed = {name: [root / f["file"] for f in manifest["splits"].get(name, {}).get("shard_files", [])] for name in SPLITS}
        if fmt == "fwpipe":
            n_listed = sum(len(fs) for fs in listed.values())
            _refuse_two_layouts(root, f"a fwpipe dataset ({MANIFEST} and its {n_listed} shard(s))", list(_raw_named(root).values()))
        splits = {}
        for name, files in listed.items():
            for f in files:
                if not f.exists():
                    raise ShardFormatError(f"{f}: listed in the manifest but missing", "re-run fwpipe prepare with --overwrite")
            read = read_raw_bin if fmt == "nanogpt" else read_shard
            splits[name] = Split(name, files, [read(f) for f in files])
        return Dataset(root, fmt, splits, manifest, hashlib.sha256(raw).hexdigest())
    bins = sorted(root.glob("*.bin"))
    if not bins:
        raise InputNotFoundError(f"{root}: no manifest.json and no .bin token files", "pass a fwpipe dataset, a nanoGPT dir (train.bin/val.bin) or llm.c shards")
    raw_named = _raw_named(root)
    if raw_named and not any(_is_llmc(p) for p in raw_named.values()):
        llmc = [p.name for p in bins if p not in raw_named.values() and _is_llmc(p)]
        if llmc:
            more = f" and {len(llmc) - 2} more" if len(llmc) > 2 else ""
            _refuse_two_layouts(root, f"llm.c shards ({', '.join(llmc[:2])}{more})", list(raw_named.values()))
        return _open_nanogpt(root, raw_named)
    return _open_llmc(root, bins)


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
            raise ShardFormatError(f"{f}: no llm.c magic {MAGIC} in its header", "pass only llm.c shards, or a nanoGPT directory with train.bin/val.bin")
        split = _split_of(f)
        if split is None:
            raise ShardFormatError(f"{f}: cannot tell train from val by its name",
                                   "rename llm.c shards to contain 'train' or 'val' as a word, e.g. fineweb_val_000000.bin")
        by_split.setdefault(split, []).append(f)
    splits = {name: Split(name, ps, [read_shard(p) for p in ps]) for name, ps in by_split.items()}
    return Dataset(root, "llmc", splits)


def token_source(tokens: np.ndarray) -> tuple:
    """What another process or node needs to map these tokens again: (file, byte offset, count,
    dtype) for a whole memory-mapped shard, else (None, the array itself): a slice's or an
    in-memory array's (tests') tokens travel as they are."""
    if isinstance(tokens, np.memmap) and isinstance(tokens.base, mmap.mmap) and tokens.filename:
        return (str(tokens.filename), int(tokens.offset), len(tokens), tokens.dtype.str)
    return (None, tokens)


def open_tokens(source: tuple) -> np.ndarray:
    """The tokens a token_source names, memory-mapped read-only (or the array it carries)."""
    if source[0] is None:
        return source[1]
    path, offset, count, dtype = source
    if count == 0:
        return np.zeros(0, dtype=dtype)  # np.memmap cannot map zero bytes
    need = offset + count * np.dtype(dtype).itemsize
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise InputNotFoundError(f"{path}: {e.strerror or e} (it was there when the run started)",
                                 "rerun once nothing else moves or writes the dataset; on a cluster, every node must mount it") from e
    if size < need:  # truncated or rewritten since it was opened: mapping it would fault or read past the end
        raise ShardFormatError(f"{path}: {size} bytes, {need} when the run started: the shard changed while it was read",
                               "rerun once nothing else writes the dataset")
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=(count,))

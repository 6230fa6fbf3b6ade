r"""The dataset directory: everything on disk besides the token bytes (those are fwpipe.shards').

    manifest.json        the Manifest below: versioned, read and written only here
    train_000000.bin     token shards (shard_name; their bytes: fwpipe.shards)
    docs.parquet         docs_schema(): one row per document, written by prepare
    token_counts.npy     int64 (2, vocab): the token histograms of train and val
    removed.parquet      REMOVED_COLUMNS: with --dedup, each dropped document and its keeper
    clusters.parquet     clusters_schema(): written by audit, marked WRITTEN_BY

open_dataset() reads a fwpipe directory, a nanoGPT directory (train.bin / val.bin) or llm.c
shards; the other stages see a Dataset and, for a fwpipe one, its typed Manifest.

One owner: outside this module a manifest is a Manifest (typed attributes), never a dict, and
no other module parses manifest.json. Both greps print nothing (run from the repository root):
    grep -rnE --include=*.py 'json\.loads\(.*(MANIFEST|manifest)|(MANIFEST|manifest\.json).*read_(text|bytes)' fwpipe bench \
        | grep -v fwpipe/dataset.py
    grep -rnE --include=*.py '(manifest|\bman|\bold)(\[|\.get\()' fwpipe bench | grep -v fwpipe/dataset.py
"""

from __future__ import annotations

import glob as globlib
import hashlib
import json
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterator, Literal

import numpy as np

from fwpipe.atomic import write_bytes
from fwpipe.errors import FwpipeError, InputNotFoundError, OutputError, ShardFormatError
from fwpipe.shards import MAGIC, read_raw_bin, read_shard, release_pages
from fwpipe.tokenizer import EOT

MANIFEST_VERSION = 1  # bump when a reader of the old shape would misread the new one
MANIFEST = "manifest.json"
DOCS = "docs.parquet"
TOKEN_COUNTS = "token_counts.npy"
REMOVED = "removed.parquet"
CLUSTERS = "clusters.parquet"  # audit's output inside a fwpipe dataset
QUALITY = "quality.parquet"  # audit's per-document quality signals (README, Quality), marked WRITTEN_BY
WORK = ".work"  # prepare's private scratch inside a dataset
SPLITS = ("train", "val")
NANOGPT_FILES = tuple(f"{s}.bin" for s in SPLITS)  # nanoGPT's raw uint16 files
SHARD_RE = re.compile(r"(train|val)_(\d{6})\.bin")
STATUSES = ("in_progress", "complete", "overwriting")
FORMATS = ("fwpipe", "nanogpt")
Format = Literal["fwpipe", "nanogpt", "llmc"]

_REPREPARE = "re-run fwpipe prepare into a new -o directory"
_NEWER = "upgrade fwpipe (pip install -U fwpipe), or prepare the dataset again with this one into a new -o directory"


def shard_name(split: str, index: int) -> str:
    return f"{split}_{index:06d}.bin"


def plain_name(name: object) -> bool:
    """A file beside the manifest: no directory part, so a manifest cannot point a reader (or
    prepare's deletions) elsewhere."""
    return isinstance(name, str) and name not in ("", ".", "..") and Path(name).name == name and "\\" not in name


# ----------------------------------------------------------------------------- tables


def docs_schema():
    """docs.parquet: one row per document prepare kept, in shard order within each split."""
    import pyarrow as pa

    return pa.schema([
        ("split", pa.string()),
        ("shard", pa.int32()),
        ("offset", pa.int64()),  # the document's first token (after its EOT), from the shard's first token
        ("n_tokens", pa.int64()),  # without the EOT
        ("n_bytes", pa.int64()),
        ("source_file", pa.dictionary(pa.int32(), pa.string())),  # the input's path or URL, as the manifest's sources
        ("source_row", pa.int64()),
        ("id", pa.string()),  # FineWeb `id`, null where the input has none
        ("url", pa.string()),
        ("key_hash", pa.uint64()),  # the split hash of the document key
        ("fineweb_token_count", pa.int64()),  # the input's `token_count`, null where it has none
    ])  # fmt: skip


# removed.parquet (prepare --dedup): the dropped document, why ("exact" or "near"), its cluster,
# and the kept document it duplicates
REMOVED_COLUMNS = ("id", "source_file", "source_row", "n_tokens", "reason", "cluster", "kept_id", "kept_source_file", "kept_source_row")


def clusters_schema():
    """clusters.parquet (audit): one row per document in a near-duplicate cluster."""
    import pyarrow as pa

    return pa.schema([
        ("split", pa.string()),
        ("doc", pa.int64()),  # index within the split, in shard order
        ("shard", pa.int64()),
        ("offset", pa.int64()),  # token offset of the document in its shard
        ("n_tokens", pa.int64()),
        ("cluster", pa.int64()),  # shared by near duplicates
        ("keep", pa.bool_()),  # the earliest member: the one a deduplicating prepare keeps
    ], metadata=dict([WRITTEN_BY]))  # fmt: skip


# parquet key-value metadata that marks a table fwpipe wrote, so that prepare --overwrite
# deletes a clusters.parquet only when it is audit's and never a user's file of that name
WRITTEN_BY = (b"fwpipe.written_by", b"fwpipe audit")
_LEGACY_CLUSTERS_COLUMNS = ("split", "doc", "shard", "offset", "n_tokens", "cluster", "keep")


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


# ----------------------------------------------------------------------------- the manifest


@dataclass
class ShardFile:
    file: str  # a plain name beside the manifest
    tokens: int | None = None  # stream tokens (older fixtures omit it)


@dataclass
class SplitTotals:
    """One split as prepare wrote it."""

    docs: int | None = None
    tokens: int | None = None  # document tokens, EOTs not counted
    stream_tokens: int | None = None  # tokens + one EOT per document: what a loader streams
    distinct_tokens: int | None = None
    shards: int | None = None
    shard_files: list[ShardFile] = field(default_factory=list)
    length_hist: list[int] | None = None  # per length_bin_edges


@dataclass
class Sizing:
    """What a budget-sized prepare (--budget-tokens) used, reached, and still needs."""

    budget_tokens: int
    max_epochs: float
    target_train_tokens: int
    train_stream_tokens: int
    epochs: float | None
    reached: bool
    inputs_used: list[dict]  # [{"path", "rows"}]
    inputs_unused: list[str]
    # only when not reached (the inputs ran out before the target)
    shortfall_tokens: int | None = None
    files_needed: int | None = None
    more_files_needed: int | None = None

    def to_json(self) -> dict:
        unreached = ("shortfall_tokens", "files_needed", "more_files_needed")
        return {k: v for k, v in vars(self).items() if not (self.reached and k in unreached)}


@dataclass
class Manifest:
    """manifest.json. prepare writes it first ("in_progress", its identity only), records each
    finished shard, and rewrites it whole ("complete") last; "overwriting" lists the files an
    --overwrite is deleting. Sections only humans and the audit's pages read (skipped,
    token_count_check, dedup, summary, files) stay plain JSON objects."""

    status: Literal["in_progress", "complete", "overwriting"]
    format: Literal["fwpipe", "nanogpt"]
    manifest_version: int = MANIFEST_VERSION
    # identity: what decides the bytes; an equal identity means the same dataset
    tokenizer: dict | None = None
    sources: list[dict] | None = None  # inputs.Source.to_json(): path, bytes, rows, sha256[, revision]
    split: dict | None = None  # key column, hash, val fraction, seed
    options: dict | None = None  # prepare's PrepareOptions
    shards_done: dict[str, int] | None = None  # in progress: shards finished per split
    fwpipe_version: str | None = None
    splits: dict[str, SplitTotals] | None = None
    length_bin_edges: list[int] | None = None
    skipped: dict | None = None
    token_count_check: dict | None = None
    sizing: Sizing | None = None
    dedup: dict | None = None
    files: dict | None = None
    summary: dict | None = None  # what prepare() returned
    outputs: list[str] | None = None  # every file prepare wrote: the only ones --overwrite deletes
    extra: dict = field(default_factory=dict)  # keys of a same-version manifest that this fwpipe does not know, kept

    IDENTITY = ("manifest_version", "format", "tokenizer", "sources", "split", "options")

    def identity(self) -> dict:
        return {k: getattr(self, k) for k in self.IDENTITY}

    def split_totals(self, name: str) -> SplitTotals:
        return (self.splits or {}).get(name) or SplitTotals()

    def listed_outputs(self) -> list[str] | None:
        """The files a complete (or overwriting) manifest says prepare wrote; None while in progress."""
        if self.status == "in_progress":
            return None
        if self.outputs is not None:
            return list(self.outputs)
        # manifests before `outputs`: their shard files and tables
        names = [f.file for s in (self.splits or {}).values() for f in s.shard_files]
        return names + [DOCS, TOKEN_COUNTS] + ([REMOVED] if "removed" in (self.files or {}) else [])

    def to_json(self) -> dict:
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            # in progress and overwriting manifests hold only what they know; a complete one
            # writes every field (sizing and token_count_check may be null)
            if f.name == "extra" or (v is None and (self.status != "complete" or f.name == "shards_done")):
                continue
            if f.name == "splits":
                v = {k: _split_json(s) for k, s in v.items()}
            elif f.name == "sizing" and v is not None:
                v = v.to_json()
            out[f.name] = v
        return {**out, **self.extra}


def _split_json(s: SplitTotals) -> dict:
    d = {k: v for k, v in vars(s).items() if v is not None}
    d["shard_files"] = [{k: v for k, v in vars(f).items() if v is not None} for f in s.shard_files]
    order = [f.name for f in fields(SplitTotals)]
    return {k: d[k] for k in order if k in d}


class _Shape(Exception):
    """What is wrong with a manifest's shape (turned into the caller's one-line error)."""


def _get(d: dict, key: str, types: tuple, what: str, *, required: bool = False):
    v = d.get(key)
    if v is None:
        if required:
            raise _Shape(f"'{key}' is missing")
        return None
    if not isinstance(v, types) or isinstance(v, bool) and bool not in types:
        raise _Shape(f"'{key}' is not {what}")
    return v


def parse_manifest(obj: object) -> Manifest:
    """A Manifest from decoded JSON; raises _Shape (without the path) on anything else."""
    if not isinstance(obj, dict):
        raise _Shape(f"a JSON {type(obj).__name__}, not the object fwpipe prepare writes")
    version = obj.get("manifest_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _Shape(f"no valid manifest_version (found {version!r})")
    if version > MANIFEST_VERSION:
        raise _Newer(version)
    status = obj.get("status")
    if status not in STATUSES:
        raise _Shape(f"status {status!r} is none of {', '.join(STATUSES)}")
    if obj.get("format") not in FORMATS:
        raise _Shape(f"format {obj.get('format')!r} is neither 'fwpipe' nor 'nanogpt'")
    known = {f.name for f in fields(Manifest)} - {"extra"}
    m = Manifest(status=status, format=obj["format"], manifest_version=version, extra={k: v for k, v in obj.items() if k not in known})
    for name in ("tokenizer", "split", "options", "skipped", "token_count_check", "dedup", "files", "summary", "shards_done"):
        setattr(m, name, _get(obj, name, (dict,), "an object"))
    m.fwpipe_version = _get(obj, "fwpipe_version", (str,), "a string")
    m.length_bin_edges = _get(obj, "length_bin_edges", (list,), "a list")
    m.sources = _get(obj, "sources", (list,), "a list")
    if m.sources is not None and not all(isinstance(s, dict) and isinstance(s.get("path"), str) for s in m.sources):
        raise _Shape("'sources' is not a list of {'path': ...} objects")
    outputs = _get(obj, "outputs", (list,), "a list")
    if outputs is not None and not all(plain_name(n) for n in outputs):
        raise _Shape("'outputs' lists an output that is not a plain file name")
    m.outputs = outputs
    splits = _get(obj, "splits", (dict,), "an object", required=status == "complete")
    if splits is not None:
        m.splits = {name: _parse_split(name, s) for name, s in splits.items()}
    sizing = _get(obj, "sizing", (dict,), "an object")
    if sizing is not None:
        try:
            m.sizing = Sizing(**sizing)
        except TypeError as e:
            raise _Shape(f"'sizing' is not the object prepare --budget-tokens writes ({e})") from None
        if not all(_number(getattr(m.sizing, k)) and getattr(m.sizing, k) > 0 for k in ("budget_tokens", "max_epochs")):
            raise _Shape("'sizing' holds a budget_tokens or max_epochs that is not a positive number")
    return m


def _number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _parse_split(name: str, s: object) -> SplitTotals:
    files = s.get("shard_files", []) if isinstance(s, dict) else None
    if not isinstance(files, list) or not all(isinstance(f, dict) and plain_name(f.get("file")) for f in files):
        raise _Shape(f"splits.{name}.shard_files is not a list of {{'file': NAME}} in the directory")
    counts = {k: s[k] for k in ("docs", "tokens", "stream_tokens", "distinct_tokens", "shards") if s.get(k) is not None}
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts.values()):
        raise _Shape(f"splits.{name} holds a count that is not a whole number")
    return SplitTotals(**counts, length_hist=s.get("length_hist"), shard_files=[ShardFile(f["file"], f.get("tokens")) for f in files])


class _Newer(_Shape):
    def __init__(self, version: int):
        super().__init__(f"written by a newer fwpipe (manifest version {version}; this fwpipe reads version {MANIFEST_VERSION})")
        self.version = version


def load_manifest(path: Path, *, error: type[FwpipeError] = ShardFormatError, hint: str = _REPREPARE) -> tuple[Manifest, bytes]:
    """The manifest at `path` and its raw bytes; anything fwpipe cannot use is one `error`.

    A manifest from a newer fwpipe gets its own hint (upgrade), whoever reads it.
    """
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InputNotFoundError(f"{path}: cannot read it ({e.strerror or e})", "check the file's permissions") from e
    try:
        return parse_manifest(json.loads(raw)), raw
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{path}: not a fwpipe manifest: not valid JSON ({e})", hint) from e
    except _Newer as e:
        raise error(f"{path}: {e}", _NEWER) from None
    except _Shape as e:
        raise error(f"{path}: not a fwpipe manifest: {e}", hint) from None


def check_report_path(report: str | Path | None, dataset: str | Path, *, flag: str) -> None:
    """Refuse (OutputError, before anything is written) a report path (--json, --html) that is,
    or would replace, a file the dataset `dataset` owns: its manifest, any token file (*.bin),
    docs/token_counts/removed/clusters/quality tables, anything its manifest lists, anything
    under .work. The one rule every command that writes a report beside a dataset follows;
    `dataset` may not exist yet (prepare's -o) or be a glob of shards (audit)."""
    if report is None or str(report) == "-":
        return
    target = Path(report).resolve()  # a symlink at the path is followed: it is the file replaced
    spec = str(dataset)
    if any(c in spec for c in "*?["):
        owned = target in {Path(p).resolve() for p in globlib.glob(spec)}
    else:
        root = Path(spec)
        if root.is_file():
            owned = target == root.resolve()
        else:
            r = root.resolve()
            names = {MANIFEST, DOCS, TOKEN_COUNTS, REMOVED, CLUSTERS, QUALITY}
            try:
                m = read_manifest(r)
                names.update((m.listed_outputs() or []) if m else [])
            except FwpipeError:  # a damaged manifest: the fixed names still hold
                pass
            owned = (target.parent == r and (target.name in names or target.suffix == ".bin")) or r / WORK in target.parents
    if owned:
        raise OutputError(f"{flag} {report}: is a file the dataset {dataset} owns; writing the report there would destroy it",
                          f"choose a path outside the dataset's own files, e.g. {flag} {Path(spec).name or 'report'}-report"
                          f"{'.html' if 'html' in flag else '.json'}")  # fmt: skip


def read_manifest(root: Path, **kw) -> Manifest | None:
    """The manifest of dataset directory `root`, None if it has none (see load_manifest)."""
    path = Path(root) / MANIFEST
    if not path.exists():
        return None
    return load_manifest(path, **kw)[0]


def write_manifest(root: Path, manifest: Manifest) -> None:
    write_bytes(Path(root) / MANIFEST, [json.dumps(manifest.to_json(), indent=2).encode() + b"\n"])


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
            raise InputNotFoundError(f"{spath}: the glob matches no files", "check the pattern; quote it so the shell does not expand it")
        return _open_llmc(root.parent, files)
    if not root.exists():
        raise InputNotFoundError(f"{root}: no such dataset", "run `fwpipe prepare INPUT.parquet -o DIR` first, or pass an existing dataset")
    if root.is_file():
        files = [root]
        return _open_llmc(root.parent, files) if _is_llmc(root) else _open_nanogpt(root.parent, {(_split_of(root) or "train"): root})
    if (root / MANIFEST).exists():
        return _open_fwpipe(root)
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


def _open_fwpipe(root: Path) -> Dataset:
    path = root / MANIFEST
    manifest, raw = load_manifest(path)
    if manifest.status != "complete":
        raise ShardFormatError(f"{root}: prepare did not finish (manifest status {manifest.status!r})",
                               "re-run the same fwpipe prepare command to finish it")
    listed = {name: [root / f.file for f in manifest.split_totals(name).shard_files] for name in SPLITS}
    if manifest.format == "fwpipe":
        n_listed = sum(len(fs) for fs in listed.values())
        _refuse_two_layouts(root, f"a fwpipe dataset ({MANIFEST} and its {n_listed} shard(s))", list(_raw_named(root).values()))
    splits = {}
    for name, files in listed.items():
        for f in files:
            if not f.exists():
                raise ShardFormatError(f"{f}: listed in the manifest but missing", "re-run fwpipe prepare with --overwrite")
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
            raise ShardFormatError(f"{f}: no llm.c magic {MAGIC} in its header", "pass only llm.c shards, or a nanoGPT directory with train.bin/val.bin")
        split = _split_of(f)
        if split is None:
            raise ShardFormatError(f"{f}: cannot tell train from val by its name",
                                   "rename llm.c shards to contain 'train' or 'val' as a word, e.g. fineweb_val_000000.bin")
        by_split.setdefault(split, []).append(f)
    splits = {name: Split(name, ps, [read_shard(p) for p in ps]) for name, ps in by_split.items()}
    return Dataset(root, "llmc", splits)

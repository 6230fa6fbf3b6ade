r"""manifest.json as a typed, versioned Manifest: the only module that parses or writes it.

One owner: outside this module a manifest is a Manifest (typed attributes), never a dict, and
no other module parses manifest.json. Both greps print nothing (run from the repository root):
    grep -rnE --include=*.py 'json\.loads\(.*(MANIFEST|manifest)|(MANIFEST|manifest\.json).*read_(text|bytes)' fwpipe bench \
        | grep -v fwpipe/dataset/manifest.py
    grep -rnE --include=*.py '(manifest|\bman|\bold)(\[|\.get\()' fwpipe bench | grep -v fwpipe/dataset/manifest.py
"""

from __future__ import annotations

import glob as globlib
import json
import os
import stat
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from fwpipe.atomic import write_bytes
from fwpipe.dataset.files import CLUSTERS, DOCS, MANIFEST, QUALITY, REMOVED, TOKEN_COUNTS, WORK, plain_name
from fwpipe.errors import DatasetMismatchError, FwpipeError, InputNotFoundError, OutputError, ShardFormatError

MANIFEST_VERSION = 1  # bump when a reader of the old shape would misread the new one
STATUSES = ("in_progress", "complete", "overwriting")
FORMATS = ("fwpipe", "nanogpt")

_REPREPARE = "re-run fwpipe prepare into a new -o directory"
_NEWER = "upgrade fwpipe (pip install -U fwpipe), or prepare the dataset again with this one into a new -o directory"
LINK_HINT = (
    "fwpipe never follows a link inside its output directory; remove the link (or choose another -o) and run again"
)


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
    m = Manifest(
        status=status,
        format=obj["format"],
        manifest_version=version,
        extra={k: v for k, v in obj.items() if k not in known},
    )
    for name in (
        "tokenizer",
        "split",
        "options",
        "skipped",
        "token_count_check",
        "dedup",
        "files",
        "summary",
        "shards_done",
    ):
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
    return SplitTotals(
        **counts, length_hist=s.get("length_hist"), shard_files=[ShardFile(f["file"], f.get("tokens")) for f in files]
    )


class _Newer(_Shape):
    def __init__(self, version: int):
        super().__init__(
            f"written by a newer fwpipe (manifest version {version}; this fwpipe reads version {MANIFEST_VERSION})"
        )
        self.version = version


def load_manifest(
    path: Path, *, error: type[FwpipeError] = ShardFormatError, hint: str = _REPREPARE
) -> tuple[Manifest, bytes]:
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


def read_manifest(root: str | Path, *, strict: bool = False) -> Manifest | None:
    """The manifest of dataset directory `root`, None if it has none.

    A reader (strict=False) gets a ShardFormatError for a manifest it cannot use. prepare,
    before it touches a directory (strict=True), refuses a manifest that is a symbolic link
    (OutputError) and one it cannot read (DatasetMismatchError): it decides what there is its
    own from that file, so it then touches nothing.
    """
    path = Path(root) / MANIFEST
    if not strict:
        return load_manifest(path)[0] if path.exists() else None
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        raise OutputError(f"{path}: is a symbolic link", LINK_HINT)
    hint = f"fwpipe decides what in {root} is its own from that file, so it touches nothing there; move it away or choose another -o"
    return load_manifest(path, error=DatasetMismatchError, hint=hint)[0]


def write_manifest(root: Path, manifest: Manifest) -> None:
    write_bytes(Path(root) / MANIFEST, [json.dumps(manifest.to_json(), indent=2).encode() + b"\n"])


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
            owned = (
                target.parent == r and (target.name in names or target.suffix == ".bin")
            ) or r / WORK in target.parents
    if owned:
        raise OutputError(
            f"{flag} {report}: is a file the dataset {dataset} owns; writing the report there would destroy it",
            f"choose a path outside the dataset's own files, e.g. {flag} {Path(spec).name or 'report'}-report"
            f"{'.html' if 'html' in flag else '.json'}",
        )

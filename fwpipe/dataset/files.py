r"""The names in a dataset directory, its tables' schemas, and which files each stage owns.

    manifest.json        the Manifest (manifest.py): versioned, read and written only there
    train_000000.bin     token shards (shard_name; their bytes: fwpipe.shards)
    docs.parquet         docs_schema(): one row per document, written by prepare
    token_counts.npy     int64 (2, vocab): the token histograms of train and val
    removed.parquet      REMOVED_COLUMNS: with --dedup, each dropped document and its keeper
    clusters.parquet     clusters_schema(): written by audit, marked WRITTEN_BY
    quality.parquet      written by audit: per document, each quality rule's value and verdict
    .work/               prepare's private scratch (fwpipe.pipeline.workdir names what is inside)

prepare_writes and prepare_outputs say which of these prepare owns (the only files its
--overwrite may delete, fwpipe.pipeline.outputs); AUDIT_OUTPUTS and written_by_audit, audit's.
"""

from __future__ import annotations

import re
from pathlib import Path

from fwpipe.atomic import final_name

MANIFEST = "manifest.json"
DOCS = "docs.parquet"
TOKEN_COUNTS = "token_counts.npy"
REMOVED = "removed.parquet"
CLUSTERS = "clusters.parquet"  # audit's output inside a fwpipe dataset
QUALITY = "quality.parquet"  # audit's per-document quality signals (README, Quality), marked WRITTEN_BY
WORK = ".work"  # prepare's scratch
SPLITS = ("train", "val")
NANOGPT_FILES = tuple(f"{s}.bin" for s in SPLITS)  # nanoGPT's raw uint16 files
SHARD_RE = re.compile(r"(train|val)_(\d{6})\.bin")
TABLES = (DOCS, TOKEN_COUNTS, REMOVED)  # prepare's tables beside the shards
AUDIT_OUTPUTS = (CLUSTERS, QUALITY)  # the audit stage writes them beside the shards, marked WRITTEN_BY


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

    return pa.schema(
        [
            ("split", pa.string()),
            ("shard", pa.int32()),
            ("offset", pa.int64()),  # the document's first token (after its EOT), from the shard's first token
            ("n_tokens", pa.int64()),  # without the EOT
            ("n_bytes", pa.int64()),
            (
                "source_file",
                pa.dictionary(pa.int32(), pa.string()),
            ),  # the input's path or URL, as the manifest's sources
            ("source_row", pa.int64()),
            ("id", pa.string()),  # FineWeb `id`, null where the input has none
            ("url", pa.string()),
            ("key_hash", pa.uint64()),  # the split hash of the document key
            ("fineweb_token_count", pa.int64()),  # the input's `token_count`, null where it has none
        ]
    )


# removed.parquet (prepare --dedup): the dropped document, why ("exact" or "near"), its cluster,
# and the kept document it duplicates
REMOVED_COLUMNS = (
    "id",
    "source_file",
    "source_row",
    "n_tokens",
    "reason",
    "cluster",
    "kept_id",
    "kept_source_file",
    "kept_source_row",
)


def clusters_schema():
    """clusters.parquet (audit): one row per document in a near-duplicate cluster."""
    import pyarrow as pa

    return pa.schema(
        [
            ("split", pa.string()),
            ("doc", pa.int64()),  # index within the split, in shard order
            ("shard", pa.int64()),
            ("offset", pa.int64()),  # token offset of the document in its shard
            ("n_tokens", pa.int64()),
            ("cluster", pa.int64()),  # shared by near duplicates
            ("keep", pa.bool_()),  # the earliest member: the one a deduplicating prepare keeps
        ],
        metadata=dict([WRITTEN_BY]),
    )


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


# ----------------------------------------------------------------------------- what prepare owns


def prepare_writes(name: str, fmt: str) -> bool:
    """Whether a prepare of format `fmt` may write `name` at the top of its output directory."""
    base = final_name(name)
    if name == WORK or base == MANIFEST or base in TABLES:
        return True
    return bool(SHARD_RE.fullmatch(base)) if fmt == "fwpipe" else base in NANOGPT_FILES


def prepare_outputs(shard_files: list[str], *, removed: bool) -> list[str]:
    """Every file a finished prepare wrote, sorted: its manifest's `outputs`, the only files a
    later --overwrite deletes."""
    return sorted([MANIFEST, DOCS, TOKEN_COUNTS, *([REMOVED] if removed else []), *shard_files])

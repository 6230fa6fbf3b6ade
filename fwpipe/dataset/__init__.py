"""The dataset directory, the contract between the stages: everything on disk besides the
token bytes (those are fwpipe.shards').

    files.py      the names in the directory, the tables' schemas, which files prepare and audit own
    manifest.py   manifest.json as a typed, versioned Manifest (the one module that parses it)
    open.py       Split, Dataset, open_dataset: a fwpipe, nanoGPT or llm.c dataset, memory-mapped

May import: the ground floor (atomic, errors, shards, tokenizer, kernels); never a stage.
`from fwpipe import dataset; dataset.X` reaches every public name below.
"""

from fwpipe.dataset.files import (
    AUDIT_OUTPUTS,
    CLUSTERS,
    DOCS,
    MANIFEST,
    NANOGPT_FILES,
    QUALITY,
    REMOVED,
    REMOVED_COLUMNS,
    SHARD_RE,
    SPLITS,
    TABLES,
    TOKEN_COUNTS,
    WORK,
    WRITTEN_BY,
    clusters_schema,
    docs_schema,
    plain_name,
    prepare_outputs,
    prepare_writes,
    shard_name,
    written_by_audit,
)
from fwpipe.dataset.manifest import (
    FORMATS,
    MANIFEST_VERSION,
    STATUSES,
    Manifest,
    ShardFile,
    Sizing,
    SplitTotals,
    check_report_path,
    load_manifest,
    parse_manifest,
    read_manifest,
    write_manifest,
)
from fwpipe.dataset.open import Dataset, Format, Split, open_dataset

__all__ = [
    "AUDIT_OUTPUTS",
    "CLUSTERS",
    "DOCS",
    "MANIFEST",
    "NANOGPT_FILES",
    "QUALITY",
    "REMOVED",
    "REMOVED_COLUMNS",
    "SHARD_RE",
    "SPLITS",
    "TABLES",
    "TOKEN_COUNTS",
    "WORK",
    "WRITTEN_BY",
    "clusters_schema",
    "docs_schema",
    "plain_name",
    "prepare_outputs",
    "prepare_writes",
    "shard_name",
    "written_by_audit",
    "FORMATS",
    "MANIFEST_VERSION",
    "STATUSES",
    "Manifest",
    "ShardFile",
    "Sizing",
    "SplitTotals",
    "check_report_path",
    "load_manifest",
    "parse_manifest",
    "read_manifest",
    "write_manifest",
    "Dataset",
    "Format",
    "Split",
    "open_dataset",
]

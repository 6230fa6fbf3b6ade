"""Inputs and comparisons shared by the remote-input tests (http, s3, hf)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from fwpipe.dataset import read_manifest
from fwpipe.pipeline.prepare import PrepareOptions
from fwpipe.tokenizer import get_encoding

# val_fraction: enough val documents expected that prepare needs no extra pass to force one
OPTS = PrepareOptions(shard_tokens=100_000, dedup="none", val_fraction=0.05)


def streaming_gets(path: Path) -> int:
    """Requests that stream `path` once: its footer, then one per row group before the footer read."""
    from fwpipe import remote

    tail_start = path.stat().st_size - min(path.stat().st_size, remote.TAIL_BYTES)
    return 1 + sum(
        1 for i, o in enumerate(remote.row_group_offsets(pq.read_metadata(path))) if i == 0 or o < tail_start
    )


def make_inputs(d: Path, sample1400: Path, first150: Path) -> dict[str, Path]:
    """Real FineWeb rows cut into several row groups (streaming fetches one per request), and a
    FineWeb-shaped file: 1,000-row row groups with a token_count column (GPT-2 counts)."""
    d.mkdir(parents=True, exist_ok=True)
    a = pq.read_table(sample1400)
    pq.write_table(a.slice(0, 600), d / "a.parquet", row_group_size=100)  # 6 row groups, ~2.6 MB
    pq.write_table(pq.read_table(first150), d / "b.parquet", row_group_size=50)
    counts = [len(t) for t in get_encoding().encode_ordinary_batch(a["text"].to_pylist())]
    fw = a.set_column(a.schema.get_field_index("token_count"), "token_count", pa.array(counts, pa.int64()))
    pq.write_table(fw, d / "fw.parquet", row_group_size=1000)
    return {p.name: p for p in (d / "a.parquet", d / "b.parquet", d / "fw.parquet")}


def estimate_gets(path: Path) -> int:
    """Requests --estimate makes for a file with token_count: its footer, then each token_count
    column chunk that the footer read (the last 64 KiB) did not already hold."""
    from fwpipe import remote

    md = pq.read_metadata(path)
    tail_start = path.stat().st_size - min(path.stat().st_size, remote.TAIL_BYTES)
    leaf = [md.schema.column(i).path for i in range(md.num_columns)].index("token_count")
    return 1 + sum(
        1 for i in range(md.num_row_groups) if remote.chunk_range(md.row_group(i).column(leaf))[0] < tail_start
    )


def assert_same_dataset(got: Path, ref: Path, urls: list[str]) -> None:
    """Byte-identical shards and token counts; docs.parquet equal but for the source names;
    the manifest equal but for the sources' path, sha256 and revision."""
    names = sorted(p.name for p in ref.iterdir() if p.is_file())
    assert sorted(p.name for p in got.iterdir() if p.is_file()) == names
    for n in names:
        if n.endswith((".bin", ".npy")):
            assert (got / n).read_bytes() == (ref / n).read_bytes(), n
    g, r = pq.read_table(got / "docs.parquet"), pq.read_table(ref / "docs.parquet")
    assert g.drop(["source_file"]).equals(r.drop(["source_file"]))
    assert sorted(set(g["source_file"].cast(pa.string()).to_pylist())) == sorted(urls)
    mg, mr = read_manifest(got), read_manifest(ref)
    assert [s["path"] for s in mg.sources] == urls
    assert dataclasses.replace(mg, sources=None) == dataclasses.replace(mr, sources=None)

"""Every path under a dataset's `.work`, prepare's private scratch (never read by other stages).

    .work/inputs.json                  the inputs' sha256s by stat_key (inputs.py), for a rerun
    .work/units/u000003/               a tokenizing unit (units.py)
    .work/units1/f000001/u000003/      --dedup's first pass: input 1's units
    .work/stage1-000001/               --dedup's first pass: input 1 as a dataset of its own
                                       (shards, docs.parquet, manifest, its own .work)
    .work/pass2/u000001/               --dedup's second pass: the kept documents of stage 1
    .work/plan/                        --dedup: the plan, saved before pass 2 (dedup_passes.py)
    .work/removed.parquet              --dedup: written before pass 2, moved out by finalize
    .work/train_000003.bin.part        a shard being written, and its journal (assemble.py)
    .work/train_000003.bin.part.json
    .work/train_000003.stats.npy       a finished shard's statistics
    .work/train.bin, ...               --format nanogpt: the shards, before finalize joins them

Paths are absolute: units may run with another working directory, or on another node.
"""

from __future__ import annotations

from pathlib import Path

from fwpipe.dataset import REMOVED, WORK, shard_name


class WorkDir:
    """The dataset directory `out_dir` and the names of everything prepare keeps under its .work."""

    def __init__(self, out_dir: str | Path):
        self.given = Path(out_dir)  # as the user spelled it, for messages and the summary
        self.out_dir = self.given.absolute()
        self.root = self.out_dir / WORK

    @property
    def inputs(self) -> Path:
        return self.root / "inputs.json"

    @property
    def units(self) -> Path:
        return self.root / "units"

    @property
    def first_units(self) -> Path:
        """All of --dedup's first-pass units (removed file by file, once in their stage's shards)."""
        return self.root / "units1"

    def first_units_of(self, file_index: int) -> Path:
        return self.first_units / f"f{file_index:06d}"

    def stage(self, file_index: int) -> WorkDir:
        """--dedup's first pass over input `file_index`: a dataset directory of its own."""
        return WorkDir(self.root / f"stage1-{file_index:06d}")

    def copy_unit(self, stage_index: int) -> Path:
        """--dedup's second pass: the unit that copies stage `stage_index`'s kept documents."""
        return self.root / "pass2" / f"u{stage_index:06d}"

    @property
    def plan(self) -> Path:
        return self.root / "plan"

    @property
    def removed(self) -> Path:
        return self.root / REMOVED

    def sidecar(self, split: str, index: int, kind: str) -> Path:
        """A shard's statistics ("stats.npy")."""
        return self.root / f"{split}_{index:06d}.{kind}"

    def part(self, split: str, index: int) -> Path:
        """A shard while it is written (its journal: this name + ".json")."""
        return self.root / f"{shard_name(split, index)}.part"

    def shard_dir(self, fmt: str) -> Path:
        """Where shards are assembled: beside the manifest, or (nanogpt) here until finalize joins them."""
        return self.root if fmt == "nanogpt" else self.out_dir

    def shard(self, fmt: str, split: str, index: int) -> Path:
        return self.shard_dir(fmt) / shard_name(split, index)

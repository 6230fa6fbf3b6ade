"""prepare's disk: the estimate made before it starts, and the one-line refusal of a disk too small."""

import os
import shutil
from collections import namedtuple

import pytest
from click.testing import CliRunner

from fwpipe.cli import main
from fwpipe.errors import DiskSpaceError
from fwpipe.executors import INLINE
from fwpipe.pipeline import inputs, space
from fwpipe.pipeline.options import PrepareOptions, Run
from fwpipe.pipeline.prepare import prepare
from fwpipe.pipeline.workdir import WorkDir


def _run(src, out, **kw) -> Run:
    return Run(PrepareOptions(**kw), [inputs.inspect(src, "text")], [src], WorkDir(out), INLINE, None, 1 << 16, False)


@pytest.mark.parametrize("dedup", ["none", "near"])
def test_the_estimate_covers_what_a_real_run_leaves_without_asking_for_far_more(tmp_path, sample1400, dedup):
    out = tmp_path / "out"
    run = _run(sample1400, out, dedup=dedup)
    need = space.needed_bytes(run)
    prepare([sample1400], out, options=PrepareOptions(dedup=dedup), progress=False)
    final = space.used_bytes(out)
    assert final > 4_000_000  # the shards, docs.parquet and the rest are really there
    # at least the dataset itself; at most the measured peak ratio of its mode, with room to spare
    assert final < need < 1.5 * space.peak_ratio(run) * final + (1 << 20)


def test_a_budget_asks_only_for_what_it_keeps(tmp_path, sample1400):
    whole = space.needed_bytes(_run(sample1400, tmp_path / "a", dedup="none"))
    part = space.needed_bytes(_run(sample1400, tmp_path / "b", dedup="none", budget_tokens=200_000))
    assert part < whole / 5


def test_a_disk_too_small_is_refused_in_one_line_before_anything_is_written(tmp_path, sample1400, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 1000, 1000))
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["prepare", str(sample1400), "-o", str(out), "--dedup", "none"])
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 1 and len(lines) == 1, r.output
    assert lines[0].startswith(f"Error: {out}: this prepare needs about ") and ", 1 KB are free" in lines[0]
    assert not out.exists() or os.listdir(out) == []  # no manifest, no .work: nothing to resume or clean


def test_a_resumed_run_asks_only_for_the_rest(tmp_path, sample1400, monkeypatch):
    out = tmp_path / "out"
    prepare([sample1400], out, options=PrepareOptions(dedup="none"), progress=False)  # bytes already there
    there = space.used_bytes(out)
    resumed, fresh = _run(sample1400, out, dedup="none"), _run(sample1400, tmp_path / "fresh", dedup="none")
    free = space.needed_bytes(fresh) - there + 4096  # enough for the rest, not for all of it
    assert free > 0
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**12, 10**12 - free, free))
    space.check_free(resumed)
    with pytest.raises(DiskSpaceError, match="this prepare needs about"):
        space.check_free(fresh)

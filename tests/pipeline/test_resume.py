"""kill -9 at random moments, then the same command: the result is byte-identical."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from fwpipe.atomic import output_error
from fwpipe.dataset import read_manifest
from fwpipe.errors import DatasetMismatchError, OutputError
from fwpipe.pipeline import inputs
from fwpipe.pipeline.assemble import ShardPart
from fwpipe.pipeline.prepare import PrepareOptions, prepare
from tests.corpus import dir_digest


def _cmd(inputs, out):
    return [
        sys.executable,
        "-m",
        "fwpipe.cli",
        "prepare",
        *map(str, inputs),
        "-o",
        str(out),
        "--shard-tokens",
        "30000",
        "--workers",
        "2",
    ]


@pytest.mark.slow
def test_kill_9_then_rerun_gives_identical_bytes(tmp_path, sample1400, first150):
    inputs = [sample1400, first150]
    ref = tmp_path / "ref"
    subprocess.run(_cmd(inputs, ref), check=True, capture_output=True)
    rng = np.random.default_rng(0)
    out = tmp_path / "out"
    kills = 0
    for delay in sorted(rng.uniform(0.5, 4.0, 6)):
        p = subprocess.Popen(_cmd(inputs, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
            kills += 1
        p.wait()
    assert kills >= 2, "the run finished before any kill; the test proved nothing"
    done = subprocess.run(_cmd(inputs, out), check=True, capture_output=True, text=True)
    assert dir_digest(out) == dir_digest(ref)
    again = subprocess.run(_cmd(inputs, out), check=True, capture_output=True, text=True)
    assert "nothing to do" in again.stdout
    assert "prepared" in done.stdout


@pytest.mark.slow
def test_disk_full_leaves_nothing_that_looks_complete_and_resumes(tmp_path, monkeypatch, sample1400):
    opts = PrepareOptions(shard_tokens=100_000)
    prepare([sample1400], tmp_path / "ref", options=opts, progress=False)
    real_write = ShardPart.write
    calls = {"n": 0}

    def failing_write(self, tokens):
        calls["n"] += 1
        if calls["n"] == 8:  # the disk fills up part way through the shards
            raise output_error(str(self.path), OSError(28, "No space left on device"))
        return real_write(self, tokens)

    monkeypatch.setattr(ShardPart, "write", failing_write)
    with pytest.raises(OutputError, match="No space left"):
        prepare([sample1400], tmp_path / "out", options=opts, progress=False)
    out = tmp_path / "out"
    assert read_manifest(out).status == "in_progress"
    assert not (out / "docs.parquet").exists()
    assert not list(out.glob(".*.tmp"))
    monkeypatch.setattr(ShardPart, "write", real_write)
    s = prepare([sample1400], out, options=opts, progress=False)
    assert s["resumed"] and dir_digest(out) == dir_digest(tmp_path / "ref")


@pytest.mark.slow
def test_crash_after_the_first_pass_of_dedup_resumes_to_identical_bytes(tmp_path, monkeypatch, sample1400, first150):
    opts = PrepareOptions(shard_tokens=100_000, dedup="near")
    prepare([sample1400, first150], tmp_path / "ref", options=opts, progress=False)
    real_write = ShardPart.write
    calls = {"n": 0}

    def failing_write(self, tokens):  # only the second pass (final shards) fails
        if ".work" not in str(self.path):
            calls["n"] += 1
            if calls["n"] == 3:
                raise output_error(str(self.path), OSError(28, "No space left on device"))
        return real_write(self, tokens)

    monkeypatch.setattr(ShardPart, "write", failing_write)
    with pytest.raises(OutputError):
        prepare([sample1400, first150], tmp_path / "out", options=opts, progress=False)
    assert (tmp_path / "out" / ".work" / "plan" / "plan.json").exists()  # the plan is saved; the first stage freed
    assert not (tmp_path / "out" / ".work" / "stage1-000000" / "manifest.json").exists()
    monkeypatch.setattr(ShardPart, "write", real_write)
    s = prepare([sample1400, first150], tmp_path / "out", options=opts, progress=False)
    assert s["resumed"] and s["tokens_this_run"] == 0  # nothing was tokenized again
    assert dir_digest(tmp_path / "out") == dir_digest(tmp_path / "ref")


# A real SIGKILL at a chosen moment: after the shard writer has taken unit `kill_after - 1`.
KILL_CHILD = r"""
import os, signal, sys
from fwpipe.pipeline import assemble
from fwpipe.pipeline.prepare import PrepareOptions, prepare
src, out, kill_after, dedup = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
real, n = assemble.ShardWriter.update, [0]
def update(self, layout, **kw):
    real(self, layout, **kw)
    n[0] += 1
    if n[0] == kill_after:
        os.kill(os.getpid(), signal.SIGKILL)
assemble.ShardWriter.update = update
prepare([src], out, options=PrepareOptions(dedup=dedup, shard_tokens=150_000), workers=2, unit_rows=100, progress=False)
"""


def _killed_at(src, out, kill_after, dedup="none"):
    p = subprocess.run([sys.executable, "-c", KILL_CHILD, str(src), str(out), str(kill_after), dedup], check=False)
    assert p.returncode == -signal.SIGKILL


@pytest.fixture
def rg100(tmp_path, sample1400):
    """The 1,400 real documents in 14 row groups of 100: 14 units of 100 rows."""
    import pyarrow.parquet as pq

    path = tmp_path / "rg100.parquet"
    pq.write_table(pq.read_table(sample1400), path, row_group_size=100)
    return path


def test_a_kill_at_90_percent_redoes_only_the_rest_and_rehashes_nothing(tmp_path, rg100, monkeypatch):
    opts = PrepareOptions(dedup="none", shard_tokens=150_000)
    full = prepare([rg100], tmp_path / "ref", options=opts, workers=2, unit_rows=100, progress=False)
    out = tmp_path / "out"
    _killed_at(rg100, out, 13)  # 13 of 14 units laid out and in shards
    units = sorted((out / ".work" / "units").glob("u*"))
    freed = [u for u in units if not (u / "train.tokens").exists()]
    assert len(freed) >= 11  # the shards took their tokens: the units' copy is gone
    for u in freed:  # and each marker says where they went before they went
        assert "train" in json.loads((u / "unit.json").read_text())["consumed"]
    hashed = []
    real_sha = inputs.file_sha256
    monkeypatch.setattr(inputs, "file_sha256", lambda p: hashed.append(p) or real_sha(p))
    s = prepare([rg100], out, options=opts, workers=2, unit_rows=100, progress=False)
    assert s["resumed"] and hashed == []  # the input is known by its stat, recorded by the killed run
    # at most the last unit was tokenized (the pool may have finished it before the kill)
    assert s["tokens_this_run"] < 0.2 * full["tokens_this_run"]
    assert dir_digest(out) == dir_digest(tmp_path / "ref")


@pytest.mark.slow
@pytest.mark.parametrize("kill_after", [3, 15], ids=["first-pass", "second-pass"])
def test_a_kill_during_dedup_resumes_to_identical_bytes(tmp_path, rg100, kill_after):
    opts = PrepareOptions(dedup="near", shard_tokens=150_000)
    prepare([rg100], tmp_path / "ref", options=opts, workers=2, unit_rows=100, progress=False)
    _killed_at(rg100, tmp_path / "out", kill_after, "near")  # 14 first-pass units, then pass 2's one
    s = prepare([rg100], tmp_path / "out", options=opts, workers=2, unit_rows=100, progress=False)
    assert s["resumed"] and dir_digest(tmp_path / "out") == dir_digest(tmp_path / "ref")


def test_an_input_rewritten_in_place_with_its_old_mtime_is_still_a_changed_input(tmp_path, rg100):
    src = tmp_path / "in.parquet"
    shutil.copyfile(rg100, src)
    out = tmp_path / "out"
    _killed_at(src, out, 5)
    assert json.loads((out / ".work" / "inputs.json").read_text())["files"]  # the killed run recorded its hash
    st = os.stat(src)
    with open(src, "r+b") as f:  # same size, same inode, one byte of the data changed
        f.seek(st.st_size // 2)
        b = f.read(1)
        f.seek(st.st_size // 2)
        f.write(bytes([b[0] ^ 1]))
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))  # and its modification time set back
    with pytest.raises(DatasetMismatchError, match="changed since"):
        prepare([src], out, options=PrepareOptions(dedup="none", shard_tokens=150_000), unit_rows=100, progress=False)


def test_a_filtered_dedup_run_resumes_to_identical_bytes(tmp_path, monkeypatch, first150):
    """--filter is in the identity as a list, as the manifest reads it back: a resume is the same run."""
    opts = PrepareOptions(dedup="exact", filters=("gopher",), shard_tokens=20_000)
    prepare([first150], tmp_path / "ref", options=opts, progress=False)
    real_write = ShardPart.write

    def failing_write(self, tokens):  # the second pass's third piece fails
        if ".work" not in str(self.path):
            failing_write.n += 1
            if failing_write.n == 3:
                raise output_error(str(self.path), OSError(28, "No space left on device"))
        return real_write(self, tokens)

    failing_write.n = 0
    monkeypatch.setattr(ShardPart, "write", failing_write)
    with pytest.raises(OutputError):
        prepare([first150], tmp_path / "out", options=opts, progress=False)
    monkeypatch.setattr(ShardPart, "write", real_write)
    s = prepare([first150], tmp_path / "out", options=opts, progress=False)
    assert s["resumed"] and s["tokens_this_run"] == 0 and s["skipped"]["filtered"] > 0
    assert dir_digest(tmp_path / "out") == dir_digest(tmp_path / "ref")

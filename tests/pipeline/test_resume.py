"""kill -9 at random moments, then the same command: the result is byte-identical."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from fwpipe.atomic import output_error
from fwpipe.dataset import read_manifest
from fwpipe.errors import OutputError
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
    assert all((d / "manifest.json").exists() for d in (tmp_path / "out" / ".work").glob("stage1-*"))
    monkeypatch.setattr(ShardPart, "write", real_write)
    s = prepare([sample1400, first150], tmp_path / "out", options=opts, progress=False)
    assert s["resumed"] and s["tokens_this_run"] == 0  # nothing was tokenized again
    assert dir_digest(tmp_path / "out") == dir_digest(tmp_path / "ref")

"""Two runs of one audit at once (issue 19): each gets a scratch directory of its own, so the
first to finish cannot delete the second's; a vanished directory is not called a full disk."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import fwpipe
from fwpipe.atomic import output_error
from fwpipe.dedup.scratch import open_scratch


def test_concurrent_runs_get_their_own_scratch_and_a_finished_one_removes_only_its_own(tmp_path):
    ident = {"shards": ["a.bin"], "sizes": [123]}
    kw = dict(n_docs=10, num_perm=128, bands=16)
    # the first run: another process (as a second `fwpipe audit` would be), holding the scratch
    code = (
        "import sys, time; from fwpipe.dedup.scratch import open_scratch\n"
        f"s = open_scratch({str(tmp_path)!r}, {ident!r}, n_docs=10, num_perm=128, bands=16)\n"
        "print(s.root, flush=True); sys.stdin.read(); s.remove()"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(fwpipe.__file__).parents[1])}
    first = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        first_root = Path(first.stdout.readline().strip())
        second = open_scratch(tmp_path, ident, **kw)  # while the first still runs
        assert second.root != first_root and second.root.name.startswith(first_root.name)
        (second.root / "sig.u32").write_bytes(b"x" * 64)
        first.communicate("", timeout=60)  # the first finishes and removes its scratch
    finally:
        first.kill()
    assert not first_root.exists() and (second.root / "sig.u32").read_bytes() == b"x" * 64
    second.remove()
    again = open_scratch(tmp_path, ident, **kw)  # no run holds it: the shared name, for resuming
    assert again.root == first_root
    again.remove()


def test_a_directory_removed_under_a_run_is_not_called_a_full_disk(tmp_path):
    e = output_error(tmp_path / "gone" / "x", FileNotFoundError(errno.ENOENT, "No such file or directory"))
    assert "removed while it ran" in e.hint and "space" not in e.hint
    full = output_error(tmp_path / "x", OSError(errno.ENOSPC, "No space left on device"))
    assert "disk space" in full.hint

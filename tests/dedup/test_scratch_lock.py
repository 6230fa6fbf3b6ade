"""Two runs of one audit at once (issue 19): each gets a scratch directory of its own, so the
first to finish cannot delete the second's; a vanished directory is not called a full disk."""

from __future__ import annotations

import errno

from fwpipe.atomic import output_error
from fwpipe.dedup.scratch import open_scratch


def test_concurrent_runs_get_their_own_scratch_and_a_finished_one_removes_only_its_own(tmp_path):
    ident = {"shards": ["a.bin"], "sizes": [123]}
    kw = dict(n_docs=10, num_perm=128, bands=16)
    first = open_scratch(tmp_path, ident, **kw)
    second = open_scratch(tmp_path, ident, **kw)  # while the first still runs
    assert first.root != second.root and second.root.name.startswith(first.root.name)
    (second.root / "sig.u32").write_bytes(b"x" * 64)
    first.remove()
    assert (second.root / "sig.u32").read_bytes() == b"x" * 64
    second.remove()
    again = open_scratch(tmp_path, ident, **kw)  # no run holds it: the shared name, for resuming
    assert again.root == first.root
    again.remove()


def test_a_directory_removed_under_a_run_is_not_called_a_full_disk(tmp_path):
    e = output_error(tmp_path / "gone" / "x", FileNotFoundError(errno.ENOENT, "No such file or directory"))
    assert "removed while it ran" in e.hint and "space" not in e.hint
    full = output_error(tmp_path / "x", OSError(errno.ENOSPC, "No space left on device"))
    assert "disk space" in full.hint

"""fwpipe.atomic: a file appears under its name only when whole; cleanup never hides the real error."""

import errno
import os

import numpy as np
import pytest

from fwpipe import atomic, shards
from fwpipe.errors import OutputError


def _unlink_fails(monkeypatch, tmp_path):
    """On a read-only filesystem even unlinking a temp file fails (EROFS): make every unlink there fail."""
    real = os.unlink
    tried = []

    def unlink(path, *a, **kw):
        if str(path).startswith(str(tmp_path)):
            tried.append(str(path))
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real(path, *a, **kw)

    monkeypatch.setattr(os, "unlink", unlink)
    return tried


def test_a_clean_write_leaves_only_the_final_name(tmp_path):
    with atomic.atomic_file(tmp_path / "a.bin") as f:
        f.write(b"abc")
        assert os.listdir(tmp_path) == [".a.bin.tmp"]
    assert os.listdir(tmp_path) == ["a.bin"] and (tmp_path / "a.bin").read_bytes() == b"abc"


def test_an_error_in_the_body_is_raised_as_itself_even_when_cleanup_fails(tmp_path, monkeypatch):
    tried = _unlink_fails(monkeypatch, tmp_path)
    with pytest.raises(ValueError, match="the real error"):
        with atomic.atomic_file(tmp_path / "a.bin") as f:
            f.write(b"x" * 10)
            raise ValueError("the real error")
    assert tried == [str(tmp_path / ".a.bin.tmp")]  # cleanup was tried, failed, and stayed quiet
    assert not (tmp_path / "a.bin").exists()


def test_a_failing_write_names_its_own_cause_not_the_cleanups(tmp_path, monkeypatch):
    _unlink_fails(monkeypatch, tmp_path)
    with pytest.raises(OutputError, match="No space left on device") as e:
        with atomic.atomic_file(tmp_path / "a.bin"):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert "Read-only" not in str(e.value) and "a.bin" in str(e.value)


def test_a_failing_close_during_cleanup_does_not_hide_the_error(tmp_path, monkeypatch):
    """The buffered bytes are flushed when the temp file is closed in cleanup; that flush failing
    (a full disk) must not replace the error that stopped the write."""
    closes = []

    with pytest.raises(KeyError, match="the real error"):
        with atomic.atomic_file(tmp_path / "a.bin") as f:
            f.write(b"x" * 100)  # buffered, not yet written

            def full():
                closes.append(1)
                raise OSError(errno.ENOSPC, "No space left on device")

            monkeypatch.setattr(f, "flush", full)
            raise KeyError("the real error")
    assert closes and not (tmp_path / ".a.bin.tmp").exists()


def test_token_file_writer_goes_through_atomic_and_keeps_the_real_error(tmp_path, monkeypatch):
    w = shards.TokenFileWriter(tmp_path / "train_000000.bin")
    w.write(np.array([50256, 1, 2], np.uint16))
    assert os.listdir(tmp_path) == [".train_000000.bin.tmp"]
    w.commit()
    assert os.listdir(tmp_path) == ["train_000000.bin"] and shards.read_shard(
        tmp_path / "train_000000.bin"
    ).tolist() == [50256, 1, 2]

    tried = _unlink_fails(monkeypatch, tmp_path)
    w = shards.TokenFileWriter(tmp_path / "train_000001.bin")
    monkeypatch.setattr(
        os, "replace", lambda *a: (_ for _ in ()).throw(OSError(errno.EXDEV, "Invalid cross-device link"))
    )
    with pytest.raises(OutputError, match="train_000001.bin: Invalid cross-device link"):
        w.commit()
    assert tried == [str(tmp_path / ".train_000001.bin.tmp")]


def test_the_temp_name_is_never_written_through_a_link(tmp_path):
    (tmp_path / "victim").write_bytes(b"keep")
    os.symlink(tmp_path / "victim", tmp_path / ".a.bin.tmp")
    with pytest.raises(OutputError, match="a symbolic link is in the way"):
        atomic.write_bytes(tmp_path / "a.bin", [b"new"])
    assert (tmp_path / "victim").read_bytes() == b"keep"

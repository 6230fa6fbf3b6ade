"""Shared fixtures: the real FineWeb rows in ../shared/data (or the bundled copies of them)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fwpipe.sample import SAMPLE_DIR

# Every Ray node a test starts binds 127.0.0.1 (also where Ray would otherwise refuse a
# multi-node cluster on one machine); set before any test imports ray
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

_SHARED = Path(os.environ.get("FWPIPE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _fineweb(name: str) -> Path:
    shared = _SHARED / "fineweb" / name
    return shared if shared.exists() else SAMPLE_DIR / name


@pytest.fixture(scope="session")
def first150() -> Path:
    """150 real FineWeb rows with FineWeb's token_count (ids are null)."""
    return _fineweb("fineweb-first150.parquet")


@pytest.fixture(scope="session")
def sample1400() -> Path:
    """1,400 real FineWeb sample-10BT documents with ids and urls, no token_count."""
    return _fineweb("fineweb-sample10bt-1400.parquet")


@pytest.fixture(autouse=True)
def _own_working_directory(tmp_path_factory, monkeypatch):
    """Run every test in an empty directory of its own, so no test reads or writes the checkout's
    `data/` or `runs/` (the README's quickstart leaves both behind) and the suite passes after
    any other command."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))

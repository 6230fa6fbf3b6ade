"""Fixtures of the remote-input tests (http, s3, hf), built once per session."""

from __future__ import annotations

import pytest

from fwpipe.pipeline.prepare import prepare
from tests.pipeline.remote_helpers import OPTS, make_inputs


@pytest.fixture(scope="session")
def remote_files(tmp_path_factory, sample1400, first150):
    """a.parquet, b.parquet (real FineWeb rows, several row groups) and fw.parquet (FineWeb-shaped)."""
    return make_inputs(tmp_path_factory.mktemp("remote-inputs"), sample1400, first150)


@pytest.fixture(scope="session")
def local_ref(tmp_path_factory, remote_files):
    """a.parquet + b.parquet prepared from local disk: what every remote prepare must equal."""
    out = tmp_path_factory.mktemp("remote-ref") / "ds"
    prepare([remote_files["a.parquet"], remote_files["b.parquet"]], out, options=OPTS, progress=False)
    return out

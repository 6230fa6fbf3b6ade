"""inputs.inspect_all: the inputs' fingerprints hashed on several threads, same answer as one by one."""

from __future__ import annotations

import shutil

import pytest

from fwpipe.errors import InputFormatError
from fwpipe.pipeline import inputs


def test_inspect_all_equals_inspect_one_by_one(tmp_path, sample1400, first150):
    copy = tmp_path / "copy.parquet"
    shutil.copy(sample1400, copy)
    paths = [sample1400, first150, copy]
    got = inputs.inspect_all(paths, "text")
    assert got == [inputs.inspect(p, "text") for p in paths]
    assert [s.path for s in got] == [str(p) for p in paths] and got[0].sha256 == got[2].sha256 != got[1].sha256


def test_inspect_all_names_the_first_bad_input_in_order(tmp_path, sample1400):
    bad1, bad2 = tmp_path / "a.parquet", tmp_path / "b.parquet"
    bad1.write_text("id,text\n1,not parquet\n")
    bad2.write_bytes(b"PAR1 truncated")
    with pytest.raises(InputFormatError, match="a.parquet: not a readable parquet file"):
        inputs.inspect_all([sample1400, bad1, bad2], "text")

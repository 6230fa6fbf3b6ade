"""Inputs a hostile user hands prepare and estimate (issue 19, medium and minor): each is one
`Error:` line or a correct answer, never a traceback or a hang."""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from fwpipe.cli import main
from tests.corpus import dir_digest


def one_line(r) -> str:
    assert r.exit_code == 1, r.output
    lines = r.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.output
    return lines[0]


@pytest.fixture(scope="module")
def rows(first150):
    return pq.read_table(first150)


def _with_token_count(t: pa.Table, values: pa.Array) -> pa.Table:
    return t.set_column(t.schema.get_field_index("token_count"), "token_count", values)


def test_two_text_columns_are_one_line(tmp_path, rows):
    p = tmp_path / "two.parquet"
    pq.write_table(pa.Table.from_arrays([rows["text"], rows["text"]], names=["text", "text"]), p)
    for cmd in (["prepare", str(p), "-o", str(tmp_path / "d")], ["estimate", str(p)]):
        assert "2 columns are named 'text'" in one_line(CliRunner().invoke(main, cmd))


def test_a_uint64_token_count_past_2_63_is_no_count(tmp_path, rows):
    p = tmp_path / "u64.parquet"
    pq.write_table(_with_token_count(rows, pa.array([2**63 + 5] * rows.num_rows, pa.uint64())), p)
    r = CliRunner().invoke(
        main, ["prepare", str(p), "-o", str(tmp_path / "d"), "--dedup", "none", "--json", str(tmp_path / "s.json")]
    )
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "s.json").read_text())["docs"] == 150
    r = CliRunner().invoke(main, ["estimate", str(p), "--json", "-"])
    assert r.exit_code == 0, r.output
    f = json.loads(r.output)["files"][0]
    assert f["method"] == "sampled ratio" and "impossible" in f["note"]


@pytest.mark.parametrize("bad", [-5, 10**9])
def test_estimate_falls_back_to_the_sampled_ratio_for_impossible_token_counts(tmp_path, rows, bad):
    p = tmp_path / "bad.parquet"
    pq.write_table(_with_token_count(rows, pa.array([bad] * rows.num_rows, pa.int64())), p)
    r = CliRunner().invoke(main, ["estimate", str(p)])
    assert r.exit_code == 0, r.output
    assert "token_count holds impossible values" in r.output and "sampled ratio" in r.output
    ref = CliRunner().invoke(main, ["estimate", str(p), "--json", "-"])
    plain = tmp_path / "plain.parquet"
    pq.write_table(rows.drop(["token_count"]), plain)
    want = CliRunner().invoke(main, ["estimate", str(plain), "--json", "-"])
    assert (
        json.loads(ref.output)["total"]["est_tokens"] == json.loads(want.output)["total"]["est_tokens"] > 0
    )  # the same measured ratio


def test_estimate_of_a_file_with_no_row_groups(tmp_path):
    p = tmp_path / "empty.parquet"
    pq.ParquetWriter(p, pa.schema([("text", pa.string())])).close()
    assert pq.read_metadata(p).num_row_groups == 0
    r = CliRunner().invoke(main, ["estimate", str(p)])
    assert r.exit_code == 0, r.output
    assert "ratio: none measured" in r.output


@pytest.mark.parametrize(
    "url,why", [("http://u:pw@[::1/x.parquet", "Invalid IPv6 URL"), ("https://h:99999/x.parquet", "Port out of range")]
)
def test_a_malformed_url_is_one_line_without_the_password(tmp_path, url, why):
    line = one_line(CliRunner().invoke(main, ["prepare", url, "-o", str(tmp_path / "d")]))
    assert "not a valid URL" in line and why in line and "pw" not in line


@pytest.mark.parametrize("where", ["named", "in a directory"])
def test_a_fifo_among_the_inputs_is_refused_not_waited_on(tmp_path, rows, where):
    d = tmp_path / "in"
    d.mkdir()
    pq.write_table(rows, d / "a.parquet")
    os.mkfifo(d / "x.parquet")
    arg = d / "x.parquet" if where == "named" else d
    assert "x.parquet: not a regular file" in one_line(
        CliRunner().invoke(main, ["prepare", str(arg), "-o", str(tmp_path / "d")])
    )


def test_a_dictionary_encoded_text_column_makes_the_same_dataset(tmp_path, rows):
    plain, dic = tmp_path / "plain.parquet", tmp_path / "dict.parquet"
    pq.write_table(rows, plain)
    pq.write_table(rows.set_column(rows.schema.get_field_index("text"), "text", rows["text"].dictionary_encode()), dic)
    for p, out in ((plain, "a"), (dic, "b")):
        r = CliRunner().invoke(main, ["prepare", str(p), "-o", str(tmp_path / out), "--dedup", "none"])
        assert r.exit_code == 0, r.output
    digest = lambda d: {k: v for k, v in dir_digest(d).items() if k.endswith(".bin")}  # noqa: E731 - the manifest names the file
    assert digest(tmp_path / "a") == digest(tmp_path / "b") and digest(tmp_path / "a")

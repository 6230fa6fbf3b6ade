"""Every bad input gives one `Error:` line naming the file, exit 1, and no complete-looking output."""

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from fwpipe.cli import main
from tests.pipeline.helpers import write_parquet


def run(*args):
    r = CliRunner().invoke(main, ["prepare", *map(str, args)])
    return r.exit_code, r.output


def one_error_line(output: str) -> str:
    lines = [ln for ln in output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), output
    return lines[0]


@pytest.mark.parametrize(
    "make, expect",
    [
        (lambda d: d / "missing.parquet", "missing.parquet: no such file"),
        (lambda d: str(d / "nothing-*.parquet"), "matches no files"),
        (
            lambda d: (d / "x.parquet").write_text("text,id\nhello,1\n") and d / "x.parquet",
            "x.parquet: not a readable parquet file",
        ),
        (
            lambda d: write_parquet(d / "nt.parquet", {"body": ["a"], "id": ["1"]}),
            "nt.parquet: no column 'text'; it has body, id",
        ),
        (
            lambda d: write_parquet(d / "int.parquet", {"text": [1, 2]}),
            "int.parquet: column 'text' is int64, not a string",
        ),
    ],
)
def test_bad_inputs(tmp_path, make, expect):
    code, out = run(make(tmp_path), "-o", tmp_path / "out")
    assert code == 1
    assert expect in one_error_line(out)
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_truncated_parquet(tmp_path, sample1400):
    src = tmp_path / "trunc.parquet"
    src.write_bytes(sample1400.read_bytes()[:2_000_000])
    code, out = run(src, "-o", tmp_path / "out")
    assert code == 1 and "trunc.parquet" in one_error_line(out)


def test_truncated_inside_data_pages(tmp_path, sample1400):
    # footer intact, data pages damaged: the error comes while streaming, and names the file
    t = pq.read_table(sample1400)
    src = tmp_path / "bad.parquet"
    pq.write_table(t, src, row_group_size=200, compression="zstd")
    raw = bytearray(src.read_bytes())
    for i in range(len(raw) // 2, len(raw) // 2 + 20000):
        raw[i] = 0
    src.write_bytes(bytes(raw))
    code, out = run(src, "-o", tmp_path / "out")
    assert code == 1 and "bad.parquet" in one_error_line(out)
    assert not (tmp_path / "out" / "docs.parquet").exists()


def test_output_directory_with_another_dataset(tmp_path, first150, sample1400):
    assert run(first150, "-o", tmp_path / "out")[0] == 0
    code, out = run(sample1400, "-o", tmp_path / "out")
    assert code == 1 and "holds a different dataset" in one_error_line(out)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    code, out = run(first150, "-o", foreign)
    assert code == 1 and "not a fwpipe dataset" in one_error_line(out)
    assert (foreign / "notes.txt").read_text() == "mine"


def test_summary_and_sample_flag(tmp_path):
    r = CliRunner().invoke(main, ["prepare", "--sample", "-o", str(tmp_path / "s")])
    assert r.exit_code == 0, r.output
    assert "train" in r.output and "token_count check: 150 rows, 5 differ (5 e-mail placeholders" in r.output


def test_two_prepares_never_write_one_dataset(tmp_path, first150):
    import subprocess
    import sys

    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import fcntl, os, sys, time\nfd = os.open({str(out)!r}, os.O_RDONLY)\nfcntl.flock(fd, fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, output = run(first150, "-o", out)
        assert code == 1 and "another fwpipe prepare is writing this dataset" in one_error_line(output)
        assert not (out / "manifest.json").exists()
    finally:
        holder.kill()
        holder.wait()
    assert run(first150, "-o", out)[0] == 0  # once the other one is gone, it proceeds

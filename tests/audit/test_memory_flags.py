"""`fwpipe audit --memory-gb --tmp-dir`: a tiny cap forces many passes and gives the same report;
the scratch directory goes where asked and is gone afterwards; bad values are one line."""

from __future__ import annotations

import json

from click.testing import CliRunner

from fwpipe.cli import main


def _report(path):
    r = json.loads(path.read_text())
    return {k: r[k] for k in ("exact_duplicates", "near_duplicates", "leakage")}


def test_tiny_memory_cap_gives_the_same_report(planted_dirs, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "mine.txt").write_text("a user's file")
    r = CliRunner().invoke(main, ["audit", str(planted_dirs["llmc"]), "--json", str(tmp_path / "a.json")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(
        main,
        [
            "-v",
            "audit",
            str(planted_dirs["llmc"]),
            "--json",
            str(tmp_path / "b.json"),
            "--memory-gb",
            "0.000004",
            "--tmp-dir",
            str(scratch),
        ],
    )
    assert r.exit_code == 0, r.output
    assert _report(tmp_path / "a.json") == _report(tmp_path / "b.json")
    assert _report(tmp_path / "a.json")["near_duplicates"]["clusters"] == 9  # the planted families
    assert sorted(p.name for p in scratch.iterdir()) == ["mine.txt"]  # ours removed, the user's kept


def test_bad_memory_and_tmp_dir_are_one_line(planted_dirs, tmp_path):
    r = CliRunner().invoke(main, ["audit", str(planted_dirs["llmc"]), "--memory-gb", "-1"])
    assert r.exit_code == 1 and r.output.startswith("Error: --memory-gb -1") and len(r.output.strip().splitlines()) == 1
    (tmp_path / "f").write_text("x")
    r = CliRunner().invoke(main, ["audit", str(planted_dirs["llmc"]), "--tmp-dir", str(tmp_path / "f")])
    assert r.exit_code != 0 and "Traceback" not in r.output, r.output

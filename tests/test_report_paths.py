"""A report path (--json, --html) never replaces a file the dataset owns (issue 19): one line,
nothing written, for prepare and audit alike (the rule: fwpipe.dataset.check_report_path)."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from fwpipe.cli import main


def one_line(r) -> str:
    assert r.exit_code == 1, r.output
    lines = r.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "owns" in lines[0], r.output
    return lines[0]


def snapshot(d) -> dict:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, first150):
    d = tmp_path_factory.mktemp("rp") / "d"
    r = CliRunner().invoke(main, ["prepare", str(first150), "-o", str(d), "--shard-tokens", "20000"])
    assert r.exit_code == 0, r.output
    return d


@pytest.mark.parametrize("name", ["manifest.json", "train_000000.bin", "docs.parquet", ".work/x.json"])
def test_prepare_refuses_a_json_path_the_new_dataset_would_own(tmp_path, first150, name):
    d = tmp_path / "d"
    r = CliRunner().invoke(main, ["prepare", str(first150), "-o", str(d), "--json", str(d / name)])
    assert f"--json {d / name}" in one_line(r)
    assert not d.exists()  # nothing written: not even the dataset directory


def test_prepare_refuses_a_json_path_over_the_existing_manifest(dataset, first150):
    before = snapshot(dataset)
    r = CliRunner().invoke(
        main,
        [
            "prepare",
            str(first150),
            "-o",
            str(dataset),
            "--shard-tokens",
            "20000",
            "--json",
            str(dataset / "manifest.json"),
        ],
    )
    one_line(r)
    assert snapshot(dataset) == before


@pytest.mark.parametrize(
    "flag,name",
    [
        ("--json", "train_000000.bin"),
        ("--json", "clusters.parquet"),
        ("--html", "manifest.json"),
        ("--html", ".work/report.html"),
        ("--json", "val_000000.bin"),
    ],
)
def test_audit_refuses_a_report_path_the_dataset_owns(tmp_path, dataset, flag, name):
    before = snapshot(dataset)
    r = CliRunner().invoke(main, ["audit", str(dataset), flag, str(dataset / name)])
    one_line(r)
    assert snapshot(dataset) == before  # no clusters.parquet either: refused before the audit ran


def test_a_symlink_to_an_owned_file_is_refused_and_a_path_beside_the_dataset_is_fine(tmp_path, dataset):
    link = tmp_path / "looks-harmless.json"
    os.symlink(dataset / "docs.parquet", link)
    before = snapshot(dataset)
    one_line(CliRunner().invoke(main, ["audit", str(dataset), "--json", str(link)]))
    assert snapshot(dataset) == before
    ok = dataset / "audit.json"  # a new file inside the directory that no one owns
    r = CliRunner().invoke(main, ["audit", str(dataset), "--json", str(ok)])
    assert r.exit_code == 0, r.output
    assert ok.read_text().startswith("{")
    ok.unlink()

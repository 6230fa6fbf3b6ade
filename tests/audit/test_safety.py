"""Hostile input to `fwpipe audit` (issue 9): every case ends in one line or a report, never a crash.

Token ids past the vocabulary ran as a subprocess: before the fix they corrupted the heap
(glibc abort, exit 134), which would take pytest down with them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import fwpipe
from fwpipe.cli import main
from fwpipe.shards import write_shard
from fwpipe.tokenizer import EOT
from tests.corpus import stream, write_llmc


def run(*args):
    return CliRunner().invoke(main, ["audit", *map(str, args)])


def run_process(*args, cwd: Path) -> subprocess.CompletedProcess:
    # the same fwpipe as this process, wherever it is imported from
    path = os.pathsep.join([str(Path(fwpipe.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "fwpipe.cli", "audit", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": path},
    )


def copy_dataset(src: Path, dst: Path) -> Path:
    # without the clusters.parquet an earlier audit of the shared fixture may have written
    return Path(shutil.copytree(src, dst, ignore=shutil.ignore_patterns("clusters.parquet", "quality.parquet")))


def one_line(r) -> str:
    assert r.exit_code == 1, r.output
    lines = r.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.output
    return lines[0]


@pytest.mark.parametrize("case", ["all ids 50256..65535", "three bad ids"])
def test_token_ids_past_the_vocabulary_give_one_line(tmp_path, planted, case):
    root = write_llmc(tmp_path / "ds", {"train": [planted.train[:30]], "val": [planted.val[:5]]})
    if case == "all ids 50256..65535":
        write_shard(root / "fineweb_train_000000.bin", np.arange(EOT, 65536, dtype=np.uint16))
        where = "token 1 (byte 1,026) is id 50257"
    else:
        toks = stream(planted.train[:30])
        toks[[100, 2000, 5000]] = 60000  # before: exit 0, with counts written past a numba array
        write_shard(root / "fineweb_train_000000.bin", toks)
        where = "token 100 (byte 1,224) is id 60000"
    p = run_process(root, cwd=tmp_path)
    assert p.returncode == 1, (p.returncode, p.stderr[-2000:])
    assert p.stdout == "" and p.stderr.count("\n") == 1 and p.stderr.startswith("Error: "), p.stderr[-2000:]
    assert f"fineweb_train_000000.bin: {where}" in p.stderr


@pytest.fixture
def read_only(tmp_path):
    """Copies a directory to where writes fail: a read-only tmpfs mount as root (root ignores
    file modes; this is the EROFS of a read-only shared dataset), else a directory chmod 555."""
    made: list[tuple[str, Path]] = []

    def make(src: Path) -> Path:
        target = tmp_path / "ro"
        if os.geteuid() != 0:
            copy_dataset(src, target)
            target.chmod(0o555)
            made.append(("chmod", target))
            return target
        target.mkdir()
        if subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(target)], capture_output=True
        ).returncode:
            pytest.skip("running as root without the right to mount: no way to make a directory root cannot write")
        made.append(("mount", target))
        shutil.copytree(
            src, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("clusters.parquet", "quality.parquet")
        )
        subprocess.run(["mount", "-o", "remount,ro", str(target)], check=True)
        return target

    yield make
    for kind, target in made:
        if kind == "mount":
            subprocess.run(["umount", str(target)], check=True)
        else:
            target.chmod(0o755)


def test_read_only_dataset_is_audited_with_a_warning(planted_dirs, read_only, tmp_path):
    ro = read_only(planted_dirs["fwpipe"])
    with pytest.raises(OSError):
        (ro / "probe").write_text("x")  # the directory really is unwritable
    p = run_process(ro, "--json", tmp_path / "report.json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "EXACT DUPLICATES  6 docs" in p.stdout and "wrote " + str(tmp_path / "report.json") in p.stdout
    assert "could not write" in p.stderr and "clusters.parquet" in p.stderr and "Traceback" not in p.stderr
    assert sorted(os.listdir(ro)) == [
        "manifest.json",
        "train_000000.bin",
        "train_000001.bin",
        "val_000000.bin",
    ]  # nothing added


@pytest.mark.parametrize(
    "args,says",
    [
        (["--budget-tokens", "1e9", "--params=-5"], "'--params': '-5' is not a positive number of parameters"),
        (["--budget-tokens", "1e9", "--params", "0"], "'--params': '0' is not a positive number of parameters"),
    ],
)
def test_bad_params_give_one_line(planted_dirs, args, says):
    assert says in one_line(run(planted_dirs["llmc"], *args))


def test_the_library_refuses_params_without_a_budget(planted_dirs):
    # --params alone is never ignored: the CLI budgets 20 tokens/param (tests/audit/test_cli.py), the library refuses
    from fwpipe.audit import audit
    from fwpipe.errors import ConfigError

    with pytest.raises(ConfigError, match="no --budget-tokens was given"):
        audit(planted_dirs["llmc"], params=40e6, quality=False)


@pytest.mark.parametrize(
    "rule,says",
    [
        ("leakage.near_doc>0", "the report has no 'leakage.near_doc' (leakage has val_docs"),
        ("budget.epochs>4", "the budget section needs --budget-tokens"),
        ("splits.train>0", "splits.train is a section, not a number"),
        ("format>0", "format is text, not a number"),
    ],
)
def test_unknown_fail_on_key_is_refused_before_any_work(tmp_path, planted_dirs, rule, says):
    # the rule is checked before the dataset is even opened: a missing dataset is not the error
    assert says in one_line(run(tmp_path / "no-such-dataset", "--fail-on", rule))
    ds = copy_dataset(planted_dirs["fwpipe"], tmp_path / "ds")
    assert says in one_line(run(ds, "--fail-on", "leakage.near_docs>0", "--fail-on", rule))
    assert not (ds / "clusters.parquet").exists()  # the audit never ran


def test_budget_params_rule_needs_params(tmp_path):
    assert "budget.params needs --params" in one_line(
        run(tmp_path, "--budget-tokens", "1e9", "--fail-on", "budget.params>1")
    )


def test_corrupt_docs_parquet_gives_one_line(planted_dirs, tmp_path):
    ds = copy_dataset(planted_dirs["fwpipe"], tmp_path / "ds")
    (ds / "docs.parquet").write_bytes(b"PAR1 this is not parquet PAR1")
    line = one_line(run(ds))
    assert f"{ds / 'docs.parquet'}: cannot read it as prepare's document table" in line


@pytest.mark.parametrize(
    "text,says",
    [
        ("[1, 2, 3]", "not a fwpipe manifest: a JSON list, not the object fwpipe prepare writes"),
        (
            '{"manifest_version": 1, "format": "fwpipe", "status": "complete", '
            '"splits": {"train": {"shard_files": [3]}}}',
            "not a fwpipe manifest: splits.train.shard_files",
        ),
    ],
)
def test_manifest_of_the_wrong_shape_gives_one_line(planted_dirs, tmp_path, text, says):
    ds = copy_dataset(planted_dirs["fwpipe"], tmp_path / "ds")
    (ds / "manifest.json").write_text(text)
    assert f"{ds / 'manifest.json'}: {says}" in one_line(run(ds))


def test_two_layouts_in_one_directory_give_one_line_naming_both(planted_dirs, planted, tmp_path):
    ds = copy_dataset(planted_dirs["fwpipe"], tmp_path / "ds")
    stream(planted.train[:5], eot_after=True).tofile(ds / "train.bin")
    line = one_line(run(ds))
    assert "holds two datasets, a fwpipe dataset (manifest.json and its 3 shard(s)) and nanoGPT train.bin" in line


def test_llmc_interval_shard_is_train(planted, tmp_path):
    root = tmp_path / "ds"
    root.mkdir()
    write_shard(root / "fineweb_train_interval_000000.bin", stream(planted.train[:40]))
    write_shard(root / "fineweb_val_000000.bin", stream(planted.val[:10]))
    r = run(root, "--json", "-")
    assert r.exit_code == 0, r.output
    splits = json.loads(r.output)["splits"]
    assert (splits["train"]["docs"], splits["val"]["docs"]) == (40, 10)

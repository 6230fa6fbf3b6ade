"""prepare as work units: the same bytes inline, on processes and for any unit size; resume by unit."""

import json

import pyarrow.parquet as pq
import pytest

from fwpipe import executors
from fwpipe.pipeline import inputs, passes
from fwpipe.pipeline.assemble import ShardWriter
from fwpipe.pipeline.inputs import Source
from fwpipe.pipeline.prepare import PrepareOptions, prepare
from fwpipe.pipeline.units import Unit, plan_units
from tests.corpus import dir_digest


@pytest.fixture(scope="module")
def small_groups(tmp_path_factory, sample1400):
    """The 1,400 real documents in 14 row groups of 100, so that units can be small."""
    path = tmp_path_factory.mktemp("rg") / "rg100.parquet"
    pq.write_table(pq.read_table(sample1400), path, row_group_size=100)
    return path


def _source(rows_per_group: list[int], nbytes: int = 1000) -> Source:
    return Source("x.parquet", nbytes, sum(rows_per_group), "", tuple(rows_per_group), True, False, True)


def test_units_come_from_parquet_metadata_alone():
    a, b = _source([100] * 5), _source([40, 0, 40])
    assert plan_units([a, b], unit_rows=250) == [
        Unit(0, 0, 0, 300, 0),
        Unit(1, 0, 300, 500, 0),  # whole row groups: 300 rows, then the rest
        Unit(2, 1, 0, 80, 500),  # the second file's row 0 is global row 500
    ]
    # the byte cap closes a unit too: 100 rows of a 1000-byte, 500-row file are 200 bytes
    assert [u.row_end for u in plan_units([a], unit_rows=10**6, unit_bytes=150)] == [100, 200, 300, 400, 500]
    assert plan_units([_source([])]) == []  # an input without rows has no unit


@pytest.mark.slow
@pytest.mark.parametrize(
    "options",
    [
        PrepareOptions(shard_tokens=60_000, val_fraction=0.05, dedup="none", budget_tokens=1_500_000),
        PrepareOptions(shard_tokens=60_000, val_fraction=0.05, dedup="near", format="nanogpt"),
    ],
    ids=["none-budget", "near-nanogpt"],
)
def test_same_bytes_inline_on_processes_and_for_any_unit_size(tmp_path, small_groups, first150, options):
    files = [first150, small_groups]
    assert len(plan_units([inputs.inspect(f, "text") for f in files], unit_rows=1)) == 15  # one unit per row group
    prepare(files, tmp_path / "ref", options=options, workers=1, progress=False)  # two units, inline
    ref = dir_digest(tmp_path / "ref")
    for name, kw in {
        "procs": dict(workers=2),
        "small": dict(workers=2, unit_rows=1),
        "mid": dict(workers=1, unit_rows=250),
    }.items():
        prepare(files, tmp_path / name, options=options, progress=False, **kw)
        assert dir_digest(tmp_path / name) == ref, name


def _crash_in_assembly(monkeypatch):
    """Every unit done and none of their tokens in a shard yet: the run dies then."""

    def boom(self, layout):
        raise OSError("killed while assembling")

    monkeypatch.setattr(ShardWriter, "update", lambda self, layout, open_shards=True: None)
    monkeypatch.setattr(ShardWriter, "finish", boom)


def test_a_rerun_verifies_finished_units_and_redoes_only_damaged_ones(tmp_path, monkeypatch, small_groups):
    opts = PrepareOptions(shard_tokens=80_000, dedup="none")
    full = prepare([small_groups], tmp_path / "ref", options=opts, workers=1, unit_rows=300, progress=False)
    out = tmp_path / "out"
    _crash_in_assembly(monkeypatch)
    with pytest.raises(OSError, match="assembling"):
        prepare([small_groups], out, options=opts, workers=1, unit_rows=300, progress=False)
    units = sorted((out / ".work" / "units").iterdir())
    assert len(units) == 5 and all((u / "unit.json").exists() for u in units)
    # one unit's tokens damaged in place (same size), another's marker names other options
    tokens = units[1] / "train.tokens"
    raw = bytearray(tokens.read_bytes())
    raw[100] ^= 1
    tokens.write_bytes(bytes(raw))
    marker = json.loads((units[3] / "unit.json").read_text())
    marker["identity"]["seed"] = 7
    (units[3] / "unit.json").write_text(json.dumps(marker))
    (units[4] / "train.rows.arrow").unlink()
    monkeypatch.undo()
    s = prepare([small_groups], out, options=opts, workers=1, unit_rows=300, progress=False)
    # the three damaged units (rows 300-599 and 900-1399) were tokenized again, the other two not
    docs = pq.read_table(tmp_path / "ref" / "docs.parquet").to_pydict()
    redone = sum(n for n, r in zip(docs["n_tokens"], docs["source_row"]) if 300 <= r < 600 or r >= 900)
    assert s["resumed"] and s["tokens_this_run"] == redone < full["tokens_this_run"]
    assert dir_digest(out) == dir_digest(tmp_path / "ref")


def test_a_one_unit_dataset_starts_no_process_pool(tmp_path, monkeypatch, first150, sample1400):
    def no_pool(self, *a, **k):
        raise AssertionError("a process pool was started")

    monkeypatch.setattr(executors.LocalExecutor, "map", no_pool)
    s = prepare([first150], tmp_path / "one", options=PrepareOptions(dedup="near"), workers=4, progress=False)
    assert s["docs"] == 150 and s["workers"] == 1
    with pytest.raises(AssertionError, match="process pool"):  # two units do start one
        prepare(
            [first150, sample1400], tmp_path / "two", options=PrepareOptions(dedup="none"), workers=4, progress=False
        )


def test_a_budget_starts_no_unit_past_the_one_that_reaches_it(tmp_path, monkeypatch, small_groups):
    started = []
    real = passes.run_unit

    def spy(task):
        started.append(task.unit.index)
        return real(task)

    monkeypatch.setattr(passes, "run_unit", spy)
    s = prepare(
        [small_groups],
        tmp_path / "b",
        options=PrepareOptions(dedup="none", budget_tokens=1_000_000),
        workers=1,
        unit_rows=1,
        progress=False,
    )
    used = s["sizing"]["inputs_used"][0]["rows"]  # rows up to the stopping document
    assert s["sizing"]["reached"] and used < 1400
    assert started == list(range((used - 1) // 100 + 1))  # units of 100 rows, in order, through the stop's


def test_a_marker_must_list_every_unit_file_and_a_truncated_one_redoes_the_unit(tmp_path, monkeypatch, small_groups):
    opts = PrepareOptions(shard_tokens=80_000, dedup="none")
    prepare([small_groups], tmp_path / "ref", options=opts, workers=1, unit_rows=300, progress=False)
    out = tmp_path / "out"
    _crash_in_assembly(monkeypatch)
    with pytest.raises(OSError, match="assembling"):
        prepare([small_groups], out, options=opts, workers=1, unit_rows=300, progress=False)
    units = sorted((out / ".work" / "units").iterdir())
    # unit 0: a marker that lists no files, over tokens corrupted after the kill
    marker = json.loads((units[0] / "unit.json").read_text())
    marker["files"] = {}
    (units[0] / "unit.json").write_text(json.dumps(marker))
    raw = bytearray((units[0] / "train.tokens").read_bytes())
    raw[100] ^= 1
    (units[0] / "train.tokens").write_bytes(bytes(raw))
    # unit 1: a marker listing only the tokens, over a truncated rows table; unit 2: a truncated token file
    marker = json.loads((units[1] / "unit.json").read_text())
    marker["files"] = {k: v for k, v in marker["files"].items() if k.endswith(".tokens")}
    (units[1] / "unit.json").write_text(json.dumps(marker))
    rows = units[1] / "val.rows.arrow"
    rows.write_bytes(rows.read_bytes()[:50])
    tok = units[2] / "train.tokens"
    tok.write_bytes(tok.read_bytes()[:-7])
    monkeypatch.undo()
    prepare([small_groups], out, options=opts, workers=1, unit_rows=300, progress=False)
    assert dir_digest(out) == dir_digest(tmp_path / "ref")


def test_workers_never_exceed_the_units_nor_two_a_core(tmp_path, first150, sample1400, caplog):
    import logging
    import os

    with caplog.at_level(logging.WARNING, logger="fwpipe.executors"):
        s = prepare(
            [first150, sample1400], tmp_path / "d", options=PrepareOptions(dedup="none"), workers=128, progress=False
        )
    n_units = len(plan_units([inputs.inspect(f, "text") for f in (first150, sample1400)]))
    assert s["workers"] == min(n_units, 2 * os.cpu_count()) < 128  # was: 128 forked processes for 2 units
    assert any("--workers 128: running" in r.getMessage() for r in caplog.records)
    assert executors.cap_workers(10**6) == 2 * os.cpu_count() and executors.cap_workers(3, units=100) == min(
        3, 2 * os.cpu_count()
    )

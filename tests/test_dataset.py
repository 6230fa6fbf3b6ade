"""The dataset directory (fwpipe.dataset): layouts, the typed and versioned manifest, the tables."""

import json

import numpy as np
import pytest

from fwpipe import dataset, shards
from fwpipe.dataset import open_dataset
from fwpipe.errors import InputNotFoundError, ShardFormatError

EOT = 50256


def test_open_dataset_detects_nanogpt_and_llmc(tmp_path):
    nano = tmp_path / "nano"
    nano.mkdir()
    np.array([5, 6, 50256, 7, 50256], dtype="<u2").tofile(nano / "train.bin")
    np.array([8, 50256], dtype="<u2").tofile(nano / "val.bin")
    ds = open_dataset(nano)
    assert ds.format == "nanogpt"
    _, starts, ends = next(ds.split("train").documents())
    assert (ends - starts).tolist() == [2, 1]

    llmc = tmp_path / "llmc"
    llmc.mkdir()
    shards.write_shard(llmc / "fineweb_train_000001.bin", np.array([50256, 5, 6, 50256, 7], dtype=np.uint16))
    shards.write_shard(llmc / "fineweb_val_000000.bin", np.array([50256, 8], dtype=np.uint16))
    ds = open_dataset(llmc)
    assert ds.format == "llmc" and ds.split("val").stream_tokens == 2
    assert open_dataset(str(llmc / "*train*.bin")).split("train").stream_tokens == 5
    with pytest.raises(InputNotFoundError):
        open_dataset(tmp_path / "missing")


@pytest.mark.parametrize(
    "name,split",
    [
        ("fineweb_train_interval_000000.bin", "train"),
        ("fineweb_val_000000.bin", "val"),
        ("tinyshakespeare-val.bin", "val"),
        ("edu.train.00.bin", "train"),
        ("fineweb_VAL0.bin", "val"),
        ("oval_train.bin", "train"),
    ],
)
def test_llmc_split_is_a_whole_word_of_the_name(tmp_path, name, split):
    shards.write_shard(tmp_path / name, np.array([EOT, 1, 2], dtype=np.uint16))
    assert list(open_dataset(tmp_path).splits) == [split]


@pytest.mark.parametrize("name", ["fineweb_train_val_000000.bin", "fineweb_interval_000000.bin"])
def test_llmc_name_with_both_or_no_split_is_refused(tmp_path, name):
    shards.write_shard(tmp_path / name, np.array([EOT, 1, 2], dtype=np.uint16))
    with pytest.raises(
        ShardFormatError, match=f"{name}: (the name says both train and val|cannot tell train from val)"
    ):
        open_dataset(tmp_path)


def _both_layouts(root, manifest: bool):
    root.mkdir()
    shards.write_shard(root / "train_000000.bin", np.array([EOT, 1, 2], dtype=np.uint16))
    if manifest:
        dataset.write_manifest(root, _complete({"train": ["train_000000.bin"]}))
    np.array([1, 2, EOT], dtype="<u2").tofile(root / "train.bin")
    np.array([3, EOT], dtype="<u2").tofile(root / "val.bin")
    return root


@pytest.mark.parametrize("manifest", [True, False])
def test_a_directory_with_two_layouts_is_refused_and_both_named(tmp_path, manifest):
    root = _both_layouts(tmp_path / "both", manifest)
    with pytest.raises(ShardFormatError) as e:
        open_dataset(root)
    msg = str(e.value)
    assert "holds two datasets" in msg and "nanoGPT train.bin and val.bin" in msg
    assert ("a fwpipe dataset (manifest.json" if manifest else "llm.c shards (train_000000.bin)") in msg
    glob = e.value.hint.split("glob: ")[1].strip("'")
    assert glob == str(root / "*_[0-9]*.bin") and open_dataset(glob).format == "llmc"  # the hint's way out works


V = '"manifest_version": 1, "format": "fwpipe", '


@pytest.mark.parametrize(
    "text,match",
    [
        ("[1, 2]", "a JSON list, not the object"),
        ('"complete"', "a JSON str, not the object"),
        ('{"status": "complete"}', "no valid manifest_version"),
        ('{"status": "complete", "manifest_version": "1"}', "no valid manifest_version"),
        (
            '{"status": "complete", "manifest_version": true, "format": "fwpipe", "splits": {}}',
            "no valid manifest_version",
        ),
        ('{%s"status": "complete"}' % V, "'splits' is missing"),
        ('{%s"status": "done", "splits": {}}' % V, "status 'done'"),
        ('{%s"status": "complete", "splits": []}' % V, "'splits' is not an object"),
        ('{%s"status": "complete", "splits": {"train": []}}' % V, "splits.train.shard_files is not a list"),
        (
            '{%s"status": "complete", "splits": {"train": {"shard_files": ["train_000000.bin"]}}}' % V,
            "splits.train.shard_files",
        ),
        (
            '{%s"status": "complete", "splits": {"val": {"shard_files": [{"file": "../elsewhere/val_000000.bin"}]}}}'
            % V,
            "splits.val",
        ),
        ('{%s"status": "complete", "splits": {}, "sizing": {"budget_tokens": 5}}' % V, "'sizing' is not the object"),
        ('{%s"status": "complete", "splits": {}, "sources": [{"bytes": 5}]}' % V, "'sources' is not a list"),
        (
            '{%s"status": "complete", "splits": {"train": {"docs": "3", "shard_files": []}}}' % V,
            "splits.train holds a count",
        ),
        ('{"manifest_version": 1, "status": "complete", "format": "parquet", "splits": {}}', "format 'parquet'"),
        ('{"status": "complete", "spl', "not valid JSON"),
        ("[]", "a JSON list"),
    ],
)
def test_a_manifest_of_the_wrong_shape_is_refused_naming_it(tmp_path, text, match):
    (tmp_path / "manifest.json").write_text(text)
    with pytest.raises(ShardFormatError, match=match) as e:
        open_dataset(tmp_path)
    assert "manifest.json" in str(e.value) and e.value.hint


def _complete(files: dict[str, list[str]], **kw) -> dataset.Manifest:
    splits = {k: dataset.SplitTotals(shard_files=[dataset.ShardFile(f) for f in v]) for k, v in files.items()}
    return dataset.Manifest("complete", "fwpipe", splits=splits, **kw)


def _tiny(root, **kw):
    root.mkdir()
    shards.write_shard(root / "train_000000.bin", np.array([EOT, 1, 2, EOT, 3], dtype=np.uint16))
    dataset.write_manifest(root, _complete({"train": ["train_000000.bin"]}, **kw))
    return root


def test_a_manifest_round_trips_through_its_json(tmp_path, first150):
    """A real prepare's manifest reads into the dataclass and writes back to the same bytes."""
    from fwpipe.pipeline.prepare import PrepareOptions, prepare

    out = tmp_path / "ds"
    prepare(
        [first150], out, options=PrepareOptions(dedup="none", budget_tokens=20_000, val_fraction=0.05), progress=False
    )
    raw = (out / "manifest.json").read_bytes()
    m, read = dataset.load_manifest(out / "manifest.json")
    assert read == raw and m.status == "complete" and m.manifest_version == dataset.MANIFEST_VERSION
    assert isinstance(m.sizing, dataset.Sizing) and m.sizing.budget_tokens == 20_000 and m.sizing.reached
    assert m.split_totals("train").stream_tokens == m.split_totals("train").tokens + m.split_totals("train").docs > 0
    assert [f.file for f in m.split_totals("val").shard_files] == ["val_000000.bin"]
    dataset.write_manifest(tmp_path, m)
    assert (tmp_path / "manifest.json").read_bytes() == raw
    ds = open_dataset(out)
    assert ds.manifest == m and ds.n_sources == 1 and ds.sizing == m.sizing and ds.docs_table == out / "docs.parquet"


def test_unknown_keys_of_the_same_version_are_kept(tmp_path):
    m = dataset.parse_manifest({**_complete({}).to_json(), "written_by_a_later_patch": [1, 2]})
    assert m.extra == {"written_by_a_later_patch": [1, 2]}
    assert m.to_json()["written_by_a_later_patch"] == [1, 2]


def test_a_newer_manifest_is_refused_with_an_upgrade_hint(tmp_path):
    root = _tiny(tmp_path / "ds", manifest_version=dataset.MANIFEST_VERSION + 1)
    with pytest.raises(ShardFormatError, match="manifest.json: written by a newer fwpipe .manifest version 2") as e:
        open_dataset(root)
    assert "upgrade fwpipe" in e.value.hint


@pytest.mark.parametrize(
    "argv",
    [
        ["audit", "{ds}"],
        [
            "train",
            "{ds}",
            "--config",
            "tiny-cpu",
            "--budget-tokens",
            "1e4",
            "--device",
            "cpu",
            "--out",
            "{run}",
            "--dry-run",
        ],
    ],
)
@pytest.mark.parametrize("version", [dataset.MANIFEST_VERSION + 1, 0])
def test_audit_and_train_refuse_an_unknown_manifest_version_in_one_line(tmp_path, argv, version):
    from click.testing import CliRunner

    from fwpipe.cli import main

    root = _tiny(tmp_path / "ds", manifest_version=version)
    r = CliRunner().invoke(main, [a.format(ds=root, run=tmp_path / "run") for a in argv])
    assert r.exit_code == 1, r.output
    assert r.output.startswith("Error: ") and len(r.output.strip().splitlines()) == 1, r.output
    says = "written by a newer fwpipe" if version > 1 else "not a fwpipe manifest: no valid manifest_version"
    assert f"{root / 'manifest.json'}: {says}" in r.output
    assert not (tmp_path / "run").exists()


def test_a_wrong_shape_manifest_stops_audit_in_one_line(tmp_path):
    from click.testing import CliRunner

    from fwpipe.cli import main

    root = _tiny(tmp_path / "ds")
    m = json.loads((root / "manifest.json").read_text())
    sizing = {
        "budget_tokens": "lots",
        "max_epochs": 1,
        "target_train_tokens": 1,
        "train_stream_tokens": 5,
        "epochs": None,
        "reached": True,
        "inputs_used": [],
        "inputs_unused": [],
    }
    (root / "manifest.json").write_text(json.dumps(dict(m, sizing=sizing)))
    for argv in (["audit", str(root)], ["train", str(root), "--config", "tiny-cpu", "--device", "cpu", "--dry-run"]):
        r = CliRunner().invoke(main, argv)
        assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1, r.output
        assert (
            "manifest.json: not a fwpipe manifest: 'sizing' holds a budget_tokens or max_epochs that is not a positive number"
            in r.output
        )


def test_an_unfinished_manifest_is_not_read_as_a_dataset(tmp_path):
    root = _tiny(tmp_path / "ds")
    dataset.write_manifest(root, dataset.Manifest("in_progress", "fwpipe", shards_done={"train": 1}))
    assert "splits" not in json.loads(
        (root / "manifest.json").read_text()
    )  # an in-progress manifest holds only what it knows
    with pytest.raises(ShardFormatError, match="prepare did not finish"):
        open_dataset(root)


def test_docs_parquet_has_the_schema_the_module_names(tmp_path, first150):
    import pyarrow.parquet as pq

    from fwpipe.audit.totals import per_source
    from fwpipe.pipeline.prepare import PrepareOptions, prepare

    out = tmp_path / "ds"
    prepare([first150], out, options=PrepareOptions(dedup="none"), progress=False)
    assert pq.read_schema(out / dataset.DOCS).remove_metadata() == dataset.docs_schema()
    ds = open_dataset(out)
    rows = per_source(ds)  # before, it guessed "source"/"source_path" columns; prepare writes source_file
    assert {r["source"] for r in rows} == {str(first150)}
    assert (
        sum(r["docs"] for r in rows)
        == ds.manifest.split_totals("train").docs + ds.manifest.split_totals("val").docs
        > 100
    )


def test_no_other_module_parses_or_indexes_a_manifest():
    """The greps in fwpipe/dataset/manifest.py's docstring, as a test: a manifest is read in one place."""
    import re
    from pathlib import Path

    root = Path(dataset.__file__).parent.parent
    parse = re.compile(r"json\.loads\(.*(MANIFEST|manifest)|(MANIFEST|manifest\.json).*read_(text|bytes)")
    index = re.compile(r"(manifest|\bman|\bold)(\[|\.get\()")
    hits = [
        f"{p.relative_to(root)}:{n}: {line.strip()}"
        for p in sorted([*(root / "fwpipe").rglob("*.py"), *(root / "bench").glob("*.py")])
        if p.relative_to(root).as_posix() != "fwpipe/dataset/manifest.py"
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if parse.search(line) or index.search(line)
    ]
    assert hits == []


def test_prepare_overwrite_touches_nothing_under_a_newer_manifest(tmp_path, first150):
    """What a newer manifest lists may mean something else: prepare refuses before deleting anything."""
    from click.testing import CliRunner

    from fwpipe.cli import main

    root = _tiny(tmp_path / "ds", manifest_version=dataset.MANIFEST_VERSION + 1)
    before = {p.name: p.read_bytes() for p in root.iterdir()}
    r = CliRunner().invoke(main, ["prepare", str(first150), "-o", str(root), "--overwrite", "--dedup", "none"])
    assert r.exit_code == 1, r.output
    assert "manifest.json: written by a newer fwpipe" in r.output and "upgrade fwpipe" in r.output
    assert {p.name: p.read_bytes() for p in root.iterdir()} == before

"""prepare never loses, corrupts or exposes a user's files (issue 9, the prepare side).

What is ours is decided from the manifest before anything is touched; a directory without one
is refused unless empty; links inside the output directory are never followed; failures are
one line and leave no temp file.
"""

import builtins
import errno
import io
import json
import os
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from fwpipe.atomic import write_bytes
from fwpipe.audit.run import audit
from fwpipe.cli import main
from fwpipe.dataset import read_manifest
from fwpipe.errors import DatasetMismatchError, OutputError
from fwpipe.pipeline.prepare import PrepareOptions, prepare
from tests.corpus import dir_digest
from tests.pipeline.helpers import write_parquet

NONE = PrepareOptions(dedup="none")


def cli(*args):
    r = CliRunner().invoke(main, ["prepare", *map(str, args)])
    return r.exit_code, r.output


def one_error_line(output: str) -> str:
    lines = [ln for ln in output.splitlines() if ln.strip() and not ln.startswith("using the bundled")]
    assert len(lines) == 1 and lines[0].startswith("Error: "), output
    return lines[0]


def _files(d) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()}


# ------------------------------------------------------------------------------- --overwrite


def test_overwrite_after_audit_deletes_only_ours_and_the_workflow_goes_on(tmp_path, first150):
    out = tmp_path / "wf"
    prepare([first150], out, options=NONE, progress=False)
    audit(out, quality=False)
    assert (out / "clusters.parquet").exists()
    user = {
        "notes.txt": b"mine",
        "train_extra.bin": b"\x01\x02",
        "notes.tmp": b"x",
        "val.bin": b"\x00\x00",
        ".cache.tmp": b"y",
    }
    for name, data in user.items():
        (out / name).write_bytes(data)
    s = prepare(
        [first150], out, options=PrepareOptions(dedup="none", val_fraction=0.01), overwrite=True, progress=False
    )
    assert s["did_work"] and s["docs"] > 0
    assert not (out / "clusters.parquet").exists()  # audit's output described the old dataset
    assert all((out / n).read_bytes() == d for n, d in user.items())  # user files untouched
    m = read_manifest(out)
    assert m.status == "complete" and m.split["val_fraction"] == 0.01
    assert sorted(m.outputs) == sorted(n for n in os.listdir(out) if n not in user)
    (out / "val.bin").unlink()  # a nanoGPT val.bin beside the shards makes audit refuse to guess
    assert audit(out, quality=False)["splits"]["train"]["docs"] > 0  # prepare -> audit -> prepare --overwrite -> audit
    again = prepare([first150], out, options=PrepareOptions(dedup="none", val_fraction=0.01), progress=False)
    assert again["did_work"] is False


def test_overwrite_keeps_a_users_own_clusters_parquet(tmp_path, first150):
    """Only a clusters.parquet that audit marked as its own is audit's; a user's file of that
    name (here a plain parquet table) survives --overwrite byte for byte."""
    out = tmp_path / "d"
    prepare([first150], out, options=NONE, progress=False)
    pq.write_table(pa.table({"cluster": [1, 2, 3]}), out / "clusters.parquet")
    before = (out / "clusters.parquet").read_bytes()
    prepare([first150], out, options=PrepareOptions(dedup="none", val_fraction=0.01), overwrite=True, progress=False)
    assert (out / "clusters.parquet").read_bytes() == before
    rep = audit(out, quality=False)  # audit does not replace it either: it reports without writing its table
    assert (out / "clusters.parquet").read_bytes() == before and "clusters_file" not in rep["near_duplicates"]
    (out / "clusters.parquet").unlink()
    assert "clusters_file" in audit(out, quality=False)["near_duplicates"]  # audit's own (marked) table...
    prepare([first150], out, options=NONE, overwrite=True, progress=False)
    assert not (out / "clusters.parquet").exists()  # ...is removed by the next --overwrite
    # one from before the mark (audit wrote exactly these columns) is still audit's
    pq.write_table(
        pa.table({c: [0] for c in ("split", "doc", "shard", "offset", "n_tokens", "cluster", "keep")}),
        out / "clusters.parquet",
    )
    assert "clusters_file" in audit(out, quality=False)["near_duplicates"]


def test_overwrite_cli_after_audit(tmp_path, first150):
    out = tmp_path / "wf"
    assert cli(first150, "-o", out)[0] == 0
    assert CliRunner().invoke(main, ["audit", str(out)]).exit_code == 0
    code, output = cli(first150, "-o", out, "--val-fraction", "0.01", "--overwrite")
    assert code == 0, output
    assert cli(first150, "-o", out, "--val-fraction", "0.01")[0] == 0


@pytest.mark.parametrize("name, fmt", [("train_000007.bin", "fwpipe"), ("val.bin", "nanogpt")])
def test_overwrite_refuses_a_user_file_named_like_an_output_and_touches_nothing(tmp_path, first150, name, fmt):
    out = tmp_path / "d"
    prepare([first150], out, options=NONE, progress=False)
    (out / name).write_bytes(b"user data")
    before = dir_digest(out)
    with pytest.raises(DatasetMismatchError, match=f"{name}: not written by fwpipe"):
        prepare(
            [first150],
            out,
            options=PrepareOptions(dedup="none", val_fraction=0.02, format=fmt),
            overwrite=True,
            progress=False,
        )
    assert dir_digest(out) == before


def test_an_interrupted_overwrite_is_finished_by_the_next_prepare(tmp_path, first150, monkeypatch):
    from fwpipe.pipeline import outputs

    out = tmp_path / "d"
    prepare([first150], out, options=NONE, progress=False)
    (out / "notes.txt").write_text("mine")
    real_remove = outputs.remove
    monkeypatch.setattr(outputs, "remove", lambda d, names: (_ for _ in ()).throw(KeyboardInterrupt()))
    opts = PrepareOptions(dedup="none", val_fraction=0.02)
    with pytest.raises(KeyboardInterrupt):
        prepare([first150], out, options=opts, overwrite=True, progress=False)
    assert read_manifest(out).status == "overwriting"
    monkeypatch.setattr(outputs, "remove", real_remove)
    prepare([first150], out, options=opts, progress=False)  # no --overwrite needed: it was asked for
    prepare([first150], tmp_path / "ref", options=opts, progress=False)
    (tmp_path / "ref" / "notes.txt").write_text("mine")
    assert dir_digest(out) == dir_digest(tmp_path / "ref")


# --------------------------------------------------------------------- no manifest: no touch


def test_a_directory_without_a_manifest_is_refused_and_untouched(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "train.bin").write_bytes(np.random.default_rng(0).bytes(1000))
    (d / "notes.tmp").write_text("x\n")
    before = dir_digest(d)
    code, out = cli("--sample", "--dedup", "none", "-o", d)
    assert code == 1 and "not a fwpipe dataset" in one_error_line(out)
    assert dir_digest(d) == before and sorted(os.listdir(d)) == ["notes.tmp", "train.bin"]
    code, out = cli("--sample", "--dedup", "none", "-o", d, "--overwrite")  # --overwrite deletes only what is ours
    assert code == 1 and dir_digest(d) == before


def test_the_manifest_is_written_before_any_other_file(tmp_path, first150, monkeypatch):
    """So no moment of a run leaves files of ours in a directory without a manifest."""
    from fwpipe.pipeline import passes

    seen = []
    real = passes.write_manifest

    def spy(out_dir, manifest):
        seen.append(sorted(os.listdir(out_dir)))
        real(out_dir, manifest)

    monkeypatch.setattr(passes, "write_manifest", spy)
    prepare([first150], tmp_path / "d", options=PrepareOptions(dedup="near"), progress=False)
    assert seen[0] == []  # the top-level manifest comes first...
    assert len(seen) >= 2 and seen[1] == []  # ...and so does the first-pass stage's, inside .work


def test_a_run_killed_while_writing_its_first_manifest_starts_again(tmp_path, first150):
    d = tmp_path / "d"
    d.mkdir()
    (d / ".manifest.json.tmp").write_bytes(b'{"status": "in_pro')  # the only thing such a run leaves
    prepare([first150], d, options=NONE, progress=False)
    prepare([first150], tmp_path / "ref", options=NONE, progress=False)
    assert dir_digest(d) == dir_digest(tmp_path / "ref")


@pytest.mark.parametrize("content", [b"[1, 2]", b"{not json", b'{"status": "complete"}'])
def test_a_manifest_fwpipe_did_not_write_is_refused_in_one_line(tmp_path, first150, content):
    d = tmp_path / "d"
    d.mkdir()
    (d / "manifest.json").write_bytes(content)
    (d / "train_000000.bin").write_bytes(b"user")
    code, out = cli(first150, "-o", d, "--overwrite")
    assert code == 1 and "manifest.json: not a" in one_error_line(out)
    assert (d / "train_000000.bin").read_bytes() == b"user" and (d / "manifest.json").read_bytes() == content


def test_a_manifest_listing_a_path_outside_is_refused(tmp_path, first150):
    out = tmp_path / "d"
    prepare([first150], out, options=NONE, progress=False)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    m = json.loads((out / "manifest.json").read_text())
    m["outputs"].append("../victim.txt")
    (out / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(DatasetMismatchError, match="not a plain file name"):
        prepare(
            [first150], out, options=PrepareOptions(dedup="none", val_fraction=0.02), overwrite=True, progress=False
        )
    assert victim.read_text() == "keep me"


# ------------------------------------------------------------------------------------ links


def _in_progress(out, first150):
    """A real dataset whose manifest says a run of these options was interrupted."""
    prepare([first150], out, options=NONE, progress=False)
    m = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps(dict(m, status="in_progress")))


def test_a_work_link_is_refused_and_its_target_untouched(tmp_path, first150):
    out = tmp_path / "d"
    _in_progress(out, first150)
    victim = tmp_path / "victim"
    victim.mkdir()
    for name in ("train_000000.rows.parquet", "train_000003.stats.npy", "val_000001.rows.parquet", "keep.txt"):
        (victim / name).write_bytes(b"user data")
    (out / ".work").symlink_to(victim, target_is_directory=True)
    before = dir_digest(victim)
    code, output = cli(first150, "-o", out, "--dedup", "none")
    assert code == 1 and ".work: is a symbolic link" in one_error_line(output)
    assert dir_digest(victim) == before
    (out / ".work").unlink()
    assert cli(first150, "-o", out, "--dedup", "none")[0] == 0  # without the link it resumes


def test_a_linked_output_name_is_never_deleted_through(tmp_path, first150):
    out = tmp_path / "d"
    prepare([first150], out, options=NONE, progress=False)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "data.bin").write_bytes(b"user data")
    (out / "docs.parquet").unlink()
    (out / "docs.parquet").symlink_to(victim / "data.bin")
    with pytest.raises(OutputError, match="docs.parquet: is a symbolic link"):
        prepare(
            [first150], out, options=PrepareOptions(dedup="none", val_fraction=0.02), overwrite=True, progress=False
        )
    assert (victim / "data.bin").read_bytes() == b"user data" and (out / "docs.parquet").is_symlink()


def test_a_link_at_a_temp_name_is_not_written_through(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (tmp_path / ".report.json.tmp").symlink_to(victim)
    with pytest.raises(OutputError, match="symbolic link"):
        write_bytes(tmp_path / "report.json", [b"{}"])
    assert victim.read_text() == "keep me" and not (tmp_path / "report.json").exists()


def test_the_output_directory_itself_may_be_a_link(tmp_path, first150):
    """data/ linked to a bigger disk is common: the link is followed, links inside it never."""
    disk = tmp_path / "bigdisk"
    disk.mkdir()
    (tmp_path / "data").symlink_to(disk, target_is_directory=True)
    prepare([first150], tmp_path / "data", options=NONE, progress=False)
    assert read_manifest(disk).status == "complete"


# ------------------------------------------------------------------------ one line, no temp


def _read_only(monkeypatch, root):
    """What a read-only filesystem does under `root`: every write, create, rename and unlink
    fails with EROFS, even the unlink of a file that is not there (Linux checks the mount
    first); reads work."""
    root = str(root)

    def inside(p):
        return isinstance(p, (str, bytes, os.PathLike)) and os.fsdecode(os.fspath(p)).startswith(root)

    def erofs(p):
        return OSError(errno.EROFS, "Read-only file system", os.fsdecode(os.fspath(p)))

    real = {n: getattr(os, n) for n in ("open", "unlink", "mkdir", "replace", "rename", "rmdir")}
    real_open = builtins.open

    def fake_open(file, mode="r", *a, **k):
        if inside(file) and any(c in mode for c in "wax+"):
            raise erofs(file)
        return real_open(file, mode, *a, **k)

    def fake_os_open(path, flags, *a, **k):
        if inside(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC):
            raise erofs(path)
        return real["open"](path, flags, *a, **k)

    def refuse(name):
        def f(p, *a, **k):
            if inside(p):
                raise erofs(p)
            return real[name](p, *a, **k)

        return f

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)
    for name in ("unlink", "mkdir", "replace", "rename", "rmdir"):
        monkeypatch.setattr(os, name, refuse(name))


def test_read_only_output_directory_is_one_line(tmp_path, first150, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    _read_only(monkeypatch, ro)
    code, out = cli(first150, "-o", ro, "--dedup", "none")
    assert code == 1
    line = one_error_line(out)
    assert "Read-only file system" in line and "ro/manifest.json" in line and "writable" in line
    assert os.listdir(ro) == []


def test_a_finished_dataset_on_a_read_only_disk_is_left_as_it_is(tmp_path, first150, monkeypatch):
    prepare([first150], tmp_path / "ds", options=NONE, progress=False)
    _read_only(monkeypatch, tmp_path / "ds")
    code, out = cli(first150, "-o", tmp_path / "ds", "--dedup", "none")
    assert code == 0 and "nothing to do" in out


def test_disk_full_while_writing_docs_parquet_leaves_no_temp_and_resumes(tmp_path, first150, monkeypatch):
    prepare([first150], tmp_path / "ref", options=NONE, progress=False)
    out = tmp_path / "out"

    real = pq.ParquetWriter.write_table

    def full(self, table, *a, **k):  # the disk fills up once docs.parquet (the only table with `split`) starts
        if "split" in table.column_names:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, table, *a, **k)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", full)
    with pytest.raises(OutputError, match="docs.parquet: No space left"):
        prepare([first150], out, options=NONE, progress=False)
    assert not (out / "docs.parquet").exists() and not list(out.glob(".*.tmp"))
    assert read_manifest(out).status == "in_progress"
    monkeypatch.setattr(pq.ParquetWriter, "write_table", real)
    s = prepare([first150], out, options=NONE, progress=False)
    assert s["resumed"] and dir_digest(out) == dir_digest(tmp_path / "ref")


def test_negative_seed_is_one_line_and_creates_nothing(tmp_path, first150):
    code, out = cli(first150, "-o", tmp_path / "s", "--seed", "-1")
    assert code == 1 and "--seed -1" in one_error_line(out)
    assert not (tmp_path / "s").exists()


def _bad_utf8_parquet(path, bad_row: int, column: str = "text"):
    n = 300
    values = [f"document number {i} with some words".encode() for i in range(n)]
    values[bad_row] = b"broken \xff\xfe text"
    offsets = np.cumsum([0] + [len(v) for v in values]).astype(np.int32)
    raw = pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(b"".join(values))])
    good = pa.array([f"document number {i} with some words" for i in range(n)])
    cols = {"text": good, "id": pa.array([f"<urn:{i}>" for i in range(n)]), "url": good}
    cols[column] = raw
    pq.write_table(pa.table(cols), path, row_group_size=100)
    return path


@pytest.mark.parametrize("column, dedup", [("text", "none"), ("text", "near"), ("url", "none")])
def test_invalid_utf8_names_file_column_and_row(tmp_path, column, dedup):
    src = _bad_utf8_parquet(tmp_path / "bad.parquet", 237, column)
    code, out = cli(src, "-o", tmp_path / "out", "--dedup", dedup)
    assert code == 1
    line = one_error_line(out)
    assert f"bad.parquet: column '{column}', row 237, is not valid UTF-8" in line
    assert not (tmp_path / "out" / "docs.parquet").exists()


def test_invalid_utf8_in_estimate_is_one_line(tmp_path):
    src = _bad_utf8_parquet(tmp_path / "bad.parquet", 237)
    code, out = cli(src, "--estimate")
    assert code == 1 and "bad.parquet: column 'text', row group 2, is not valid UTF-8" in one_error_line(out)


# --------------------------------------------------------------------- inputs are their bytes


def test_relative_and_absolute_spellings_of_one_input_are_the_same_dataset(tmp_path, first150, monkeypatch):
    shutil.copy(first150, tmp_path / "in.parquet")
    monkeypatch.chdir(tmp_path)
    prepare(["in.parquet"], "out", options=NONE, progress=False)  # as an older manifest records it
    again = prepare([str(tmp_path / "in.parquet")], tmp_path / "out", options=NONE, progress=False)
    assert again["did_work"] is False


def test_resume_with_another_spelling_of_the_inputs(tmp_path, first150, monkeypatch):
    """Interrupted after dedup's first pass with relative paths, resumed with absolute ones."""
    from fwpipe.atomic import output_error
    from fwpipe.pipeline.assemble import ShardPart

    shutil.copy(first150, tmp_path / "a.parquet")
    write_parquet(tmp_path / "b.parquet", pq.read_table(first150).slice(0, 60).to_pydict())  # 60 exact copies
    absolute = [str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")]
    opts = PrepareOptions(dedup="exact", shard_tokens=20_000)
    prepare(absolute, tmp_path / "ref", options=opts, progress=False)
    real_write = ShardPart.write

    def failing_write(self, tokens):  # only the second pass (the final shards) fails
        if ".work" not in str(self.path):
            raise output_error(str(self.path), OSError(errno.ENOSPC, "No space left on device"))
        return real_write(self, tokens)

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(ShardPart, "write", failing_write)
    with pytest.raises(OutputError):
        prepare(["a.parquet", "b.parquet"], "out", options=opts, progress=False)
    monkeypatch.setattr(ShardPart, "write", real_write)
    s = prepare(absolute, tmp_path / "out", options=opts, progress=False)
    assert s["resumed"] and s["tokens_this_run"] == 0 and s["dedup"]["removed_docs"] >= 60
    assert dir_digest(tmp_path / "out") == dir_digest(tmp_path / "ref")

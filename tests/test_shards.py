import numpy as np
import pytest

from fwpipe import dataset, shards
from fwpipe.dataset import open_dataset
from fwpipe.errors import ShardFormatError


def test_shard_round_trip_and_llmc_header(tmp_path):
    toks = np.array([50256, 1, 2, 3, 50256, 7], dtype=np.uint16)
    path = tmp_path / "train_000000.bin"
    shards.write_shard(path, toks)
    raw = path.read_bytes()
    header = np.frombuffer(raw[:1024], dtype="<i4")
    assert header[:3].tolist() == [20240520, 1, 6] and not header[3:].any()
    assert np.frombuffer(raw[1024:], dtype="<u2").tolist() == toks.tolist()
    assert shards.read_shard(path).tolist() == toks.tolist()
    assert not list(tmp_path.glob(".*tmp"))


def test_truncated_shard_is_refused(tmp_path):
    path = tmp_path / "train_000000.bin"
    shards.write_shard(path, np.arange(100, dtype=np.uint16))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ShardFormatError, match="header says 100 tokens"):
        shards.read_shard(path)


# ------------------------------------------------------------------- hostile token files (issue 9)

EOT = 50256


def _llmc_dir(root, train, val=(EOT, 1, 2)):
    root.mkdir()
    shards.write_shard(root / "fineweb_train_000000.bin", np.array(train, dtype=np.uint16))
    shards.write_shard(root / "fineweb_val_000000.bin", np.array(val, dtype=np.uint16))
    return root


def test_token_ids_past_the_vocabulary_are_refused_in_every_layout(tmp_path):
    # ids 50256..65535, the probe's shard: the first bad id is 50257 at token 1
    llmc = _llmc_dir(tmp_path / "llmc", np.arange(EOT, 65536))
    with pytest.raises(ShardFormatError) as e:
        open_dataset(llmc)
    msg = str(e.value)
    assert (
        "fineweb_train_000000.bin: token 1 (byte 1,026) is id 50257" in msg
        and "15,279 such ids" in msg
        and "hint:" in msg
    )

    nano = tmp_path / "nano"
    nano.mkdir()
    np.array([5, 6, EOT, 7, 50303, EOT], dtype="<u2").tofile(nano / "train.bin")  # 50303: inside nanoGPT's padded 50304
    np.array([8, EOT], dtype="<u2").tofile(nano / "val.bin")
    with pytest.raises(ShardFormatError, match=r"train.bin: token 4 \(byte 8\) is id 50303"):
        open_dataset(nano)
    with pytest.raises(ShardFormatError, match="id 50303"):
        open_dataset(nano / "train.bin")

    fw = tmp_path / "fw"
    fw.mkdir()
    shards.write_shard(fw / "train_000000.bin", np.array([EOT, 1, EOT, 65535], dtype=np.uint16))
    train = dataset.SplitTotals(shard_files=[dataset.ShardFile("train_000000.bin")])
    dataset.write_manifest(fw, dataset.Manifest("complete", "fwpipe", splits={"train": train}))
    with pytest.raises(ShardFormatError, match="token 3 .* is id 65535"):
        open_dataset(fw)
    with pytest.raises(ShardFormatError, match="is id 65535"):
        shards.read_shard(fw / "train_000000.bin")


def test_the_largest_id_and_an_empty_shard_are_accepted(tmp_path):
    ds = open_dataset(_llmc_dir(tmp_path / "ok", [EOT, 0, 50255, EOT, 50256], val=[]))
    assert ds.split("train").stream_tokens == 5 and ds.split("val").stream_tokens == 0


def test_bad_ids_stop_train_with_one_line(tmp_path):
    from click.testing import CliRunner

    from fwpipe.cli import main

    data = _llmc_dir(tmp_path / "bad", [EOT, *range(100), EOT, 50300, 7] * 50)  # 50300 < 50304: trained silently before
    r = CliRunner().invoke(
        main,
        [
            "train",
            str(data),
            "--config",
            "tiny-cpu",
            "--budget-tokens",
            "1e4",
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "run"),
            "--dry-run",
        ],
    )
    assert r.exit_code == 1, r.output
    assert r.output.startswith("Error: ") and len(r.output.splitlines()) == 1, r.output
    assert "fineweb_train_000000.bin: token 102 (byte 1,228) is id 50300" in r.output


def test_validating_ids_costs_a_small_fraction_of_a_second_per_100m_tokens(tmp_path):
    import time

    path = tmp_path / "train_000000.bin"
    shards.write_shard(path, np.random.default_rng(0).integers(0, 50257, 10_000_000, dtype=np.uint16))
    shards.read_shard(path)  # in page cache now, as after prepare wrote it
    t0 = time.perf_counter()
    shards.read_shard(path)
    per_100m = (time.perf_counter() - t0) * 10
    assert per_100m < 0.5, f"{per_100m:.3f} s per 100M tokens"  # ~0.03 s measured; a loose bound for a busy CI

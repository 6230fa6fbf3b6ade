import numpy as np
import pytest

from fwpipe import shards
from fwpipe.errors import InputNotFoundError, ShardFormatError


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


def test_open_dataset_detects_nanogpt_and_llmc(tmp_path):
    nano = tmp_path / "nano"
    nano.mkdir()
    np.array([5, 6, 50256, 7, 50256], dtype="<u2").tofile(nano / "train.bin")
    np.array([8, 50256], dtype="<u2").tofile(nano / "val.bin")
    ds = shards.open_dataset(nano)
    assert ds.format == "nanogpt"
    _, starts, ends = next(ds.split("train").documents())
    assert (ends - starts).tolist() == [2, 1]

    llmc = tmp_path / "llmc"
    llmc.mkdir()
    shards.write_shard(llmc / "fineweb_train_000001.bin", np.array([50256, 5, 6, 50256, 7], dtype=np.uint16))
    shards.write_shard(llmc / "fineweb_val_000000.bin", np.array([50256, 8], dtype=np.uint16))
    ds = shards.open_dataset(llmc)
    assert ds.format == "llmc" and ds.split("val").stream_tokens == 2
    assert shards.open_dataset(str(llmc / "*train*.bin")).split("train").stream_tokens == 5
    with pytest.raises(InputNotFoundError):
        shards.open_dataset(tmp_path / "missing")

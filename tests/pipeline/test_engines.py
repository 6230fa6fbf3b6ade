"""prepare writes the same bytes with either tokenizer engine, in every --dedup mode and worker count."""

import os
from pathlib import Path

import pytest

from fwpipe import tokenizer
from fwpipe.executors import LocalExecutor
from fwpipe.pipeline.prepare import PrepareOptions, prepare
from fwpipe.sample import SAMPLE_FILES
from tests.corpus import dir_digest

FAST = {("none", 2)}  # the other five: ~8 s each on 2 shared cores


@pytest.mark.parametrize(
    "dedup,workers",
    [
        pytest.param(d, w, marks=() if (d, w) in FAST else pytest.mark.slow)
        for d in ("none", "exact", "near")
        for w in (1, 2)
    ],
)
def test_prepare_is_byte_identical_with_either_engine(tmp_path, dedup, workers):
    digests = {}
    for engine in ("gigatoken", "tiktoken"):
        out = tmp_path / engine
        # 512-row units: several per file, so two workers share them
        s = prepare(
            SAMPLE_FILES,
            out,
            options=PrepareOptions(dedup=dedup, shard_tokens=500_000, tokenizer_engine=engine),
            workers=workers,
            unit_rows=512,
            progress=False,
        )
        assert s["tokenizer_engine"] == engine and s["workers"] == workers and s["docs"] > 1000
        digests[engine] = dir_digest(out)
    assert len(digests["gigatoken"]) >= 5 and digests["gigatoken"] == digests["tiktoken"]


def test_a_run_resumes_or_finishes_with_the_other_engine(tmp_path):
    """The engine is not in the dataset's identity (same bytes): a dataset made with one engine
    is complete for the other, not "made from other options"."""
    out = tmp_path / "ds"
    first = prepare(
        SAMPLE_FILES[:1], out, options=PrepareOptions(dedup="none", tokenizer_engine="tiktoken"), progress=False
    )
    again = prepare(
        SAMPLE_FILES[:1], out, options=PrepareOptions(dedup="none", tokenizer_engine="gigatoken"), progress=False
    )
    assert first["did_work"] and not again["did_work"] and again["docs"] == first["docs"]


def _threads_after_encoding(n_texts: int) -> tuple[int, int]:
    ids, _ = tokenizer.encode_batch(
        ["some words to tokenize, again and again " * 50] * n_texts
    )  # prepare's call: threads=1
    with open("/proc/self/status") as f:
        threads = next(int(line.split()[1]) for line in f if line.startswith("Threads:"))
    return threads, len(ids)


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="counts threads through /proc (Linux)")
def test_a_forked_worker_encodes_on_its_own_thread():
    """CPU use stays within --workers: in a pool worker (forked after this process may have
    built gigatoken), the engine encodes on the calling thread and starts no thread pool."""
    tokenizer.encode_batch(["the driver builds its engine first"])
    with LocalExecutor(1, start_method="fork") as ex:
        threads, n_ids = next(ex.map(_threads_after_encoding, [(2000,)]))
    assert n_ids > 100_000 and threads == 1


@pytest.fixture
def fresh_engine():
    """A test that builds its own gigatoken engine leaves none behind, passed or failed."""
    tokenizer.forget_engine()
    yield
    tokenizer.forget_engine()


def test_cli_refuses_to_start_when_gigatoken_disagrees(tmp_path, monkeypatch, fresh_engine):
    from click.testing import CliRunner

    from fwpipe.cli import main

    real = tokenizer.write_tiktoken_file

    def swapped(path):  # two tokens trade ranks: a real gigatoken tokenizer with other ids
        real(path)
        lines = Path(path).read_bytes().split(b"\n")
        a, b = lines[995].split(b" "), lines[1000].split(b" ")
        lines[995], lines[1000] = b[0] + b" " + a[1], a[0] + b" " + b[1]
        Path(path).write_bytes(b"\n".join(lines))

    monkeypatch.setattr(tokenizer, "write_tiktoken_file", swapped)
    r = CliRunner().invoke(
        main, ["prepare", str(SAMPLE_FILES[0]), "-o", str(tmp_path / "ds"), "--dedup", "none", "--workers", "1"]
    )
    assert r.exit_code == 1 and r.output.count("\n") == 1 and r.output.startswith("Error: gigatoken")
    assert "--tokenizer-engine tiktoken" in r.output and not (tmp_path / "ds" / "docs.parquet").exists()
    tokenizer.forget_engine()
    r = CliRunner().invoke(
        main,
        [
            "prepare",
            str(SAMPLE_FILES[0]),
            "-o",
            str(tmp_path / "ds"),
            "--dedup",
            "none",
            "--workers",
            "1",
            "--tokenizer-engine",
            "tiktoken",
        ],
    )
    assert r.exit_code == 0, r.output  # the fallback works


def test_estimate_counts_the_same_with_either_engine():
    from fwpipe.pipeline.estimate import estimate

    est = {e: estimate(SAMPLE_FILES, use_token_count=False, tokenizer_engine=e) for e in tokenizer.ENGINES}
    assert est["gigatoken"]["sample"]["tokens"] == est["tiktoken"]["sample"]["tokens"] > 100_000

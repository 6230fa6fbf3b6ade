"""prepare --estimate: exact where token_count is, within a stated tolerance where it is not.

Truths come from tokenizing every document with fwpipe.tokenizer.encode (and, for the null and
empty rows, from prepare itself).
"""

from __future__ import annotations

import json
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fwpipe import budget as B
from fwpipe.errors import BudgetError, ConfigError, InputFormatError, InputNotFoundError
from fwpipe.pipeline import estimate as E
from fwpipe.pipeline.estimate import estimate
from fwpipe.pipeline.summary import format_estimate
from fwpipe.pipeline.tokenize import EMAIL_PLACEHOLDERS
from fwpipe.tokenizer import encode

FINEWEB_TOKEN_COUNT_FIRST150 = 104_258
# The sampled ratio's error on sample1400 is ~0.9% (one standard error); 3% is over 3 of them.
TOLERANCE = 0.03


def _texts(path) -> list[str | None]:
    return pq.read_table(path, columns=["text"])["text"].to_pylist()


def _true_stream_tokens(texts) -> int:
    """What prepare writes: each non-empty document's tokens plus its EOT."""
    return sum(len(encode(t)) + 1 for t in texts if t)


@pytest.fixture(scope="module")
def true1400(sample1400) -> int:
    return _true_stream_tokens(_texts(sample1400))


def test_token_count_is_exact(first150):
    d = estimate([first150])
    f = d["files"][0]
    assert f["method"] == "token_count" and d["sample"] is None
    assert f["docs"] == 150
    assert f["est_tokens"] == f["est_tokens_low"] == f["est_tokens_high"] == FINEWEB_TOKEN_COUNT_FIRST150 + 150
    # against the real GPT-2 count: every row agrees except the e-mail placeholder rows
    t = pq.read_table(first150, columns=["text", "token_count"])
    texts, tc = t["text"].to_pylist(), t["token_count"].to_pylist()
    real = [len(encode(x)) for x in texts]
    differ = [i for i in range(150) if real[i] != tc[i]]
    assert len(differ) == 5 and all(any(p in texts[i] for p in EMAIL_PLACEHOLDERS) for i in differ)
    assert f["est_tokens"] - (sum(real) + 150) == sum(tc[i] - real[i] for i in differ)


def test_all_null_token_count_falls_back_to_the_ratio(sample1400, true1400):
    d = estimate([sample1400])
    f, s = d["files"][0], d["sample"]
    assert f["method"] == "sampled ratio" and "null in 1,400 of 1,400" in f["note"]
    assert f["docs"] == 1400 and f["bytes_from"] == "text lengths"  # small input: exact bytes
    assert f["text_bytes"] == sum(len(t.encode()) for t in _texts(sample1400))
    assert 200 <= s["docs"] <= 256 and s["rel_se"] < 0.02
    assert abs(f["est_tokens"] / true1400 - 1) < TOLERANCE
    assert f["est_tokens_low"] <= true1400 <= f["est_tokens_high"]


def test_ratio_over_every_systematic_sample(sample1400, true1400):
    """k = 6 gives six possible samples: all within tolerance, the 95% interval covers >= 5."""
    covered = 0
    for seed in range(6):
        t = estimate([sample1400], seed=seed)["total"]
        assert abs(t["est_tokens"] / true1400 - 1) < TOLERANCE, seed
        covered += t["est_tokens_low"] <= true1400 <= t["est_tokens_high"]
    assert covered >= 5


def test_ratio_on_the_whole_small_file_is_exact(first150):
    """150 documents <= sample_docs: the sample is the file, so the ratio has no error."""
    f = estimate([first150], use_token_count=False)["files"][0]
    assert f["method"] == "sampled ratio"
    assert f["est_tokens"] == f["est_tokens_low"] == f["est_tokens_high"] == _true_stream_tokens(_texts(first150))


def test_large_input_path_metadata_bytes_and_windows(tmp_path, sample1400, true1400, monkeypatch):
    """Inputs over SMALL_TEXT_BYTES: bytes from the footer, sample from row-group windows."""
    path = tmp_path / "rg100.parquet"
    pq.write_table(pq.read_table(sample1400), path, row_group_size=100)
    monkeypatch.setattr(E, "SMALL_TEXT_BYTES", 0)
    d = estimate([path])
    f = d["files"][0]
    assert f["bytes_from"] == "metadata" and f["docs"] == 1400
    true_bytes = sum(len(t.encode()) for t in _texts(sample1400))
    assert 0 <= f["text_bytes"] / true_bytes - 1 < 0.01  # page headers: a little high
    assert "windows" in d["sample"]["how"]
    assert abs(f["est_tokens"] / true1400 - 1) < TOLERANCE
    assert f["est_tokens_low"] <= true1400 <= f["est_tokens_high"]


def test_encoding_without_sized_pages_reads_lengths(tmp_path, sample1400, monkeypatch):
    path = tmp_path / "delta.parquet"
    pq.write_table(
        pq.read_table(sample1400, columns=["text"]),
        path,
        use_dictionary=False,
        row_group_size=500,
        column_encoding={"text": "DELTA_LENGTH_BYTE_ARRAY"},
    )
    monkeypatch.setattr(E, "SMALL_TEXT_BYTES", 0)
    f = estimate([path])["files"][0]
    assert f["bytes_from"] == "text lengths"
    assert f["text_bytes"] == sum(len(t.encode()) for t in _texts(sample1400))


def test_null_and_empty_texts_match_prepare(tmp_path):
    """A null text has no tokens and is no document; an empty one (token_count 0) neither."""
    from fwpipe.pipeline.prepare import prepare

    texts = ["Hello world.", None, "", "A second document, a little longer.", "Third."]
    path = tmp_path / "nulls.parquet"
    pq.write_table(
        pa.table(
            {
                "text": texts,
                "id": [f"d{i}" for i in range(5)],
                "token_count": [None if t is None else len(encode(t)) for t in texts],
            }
        ),
        path,
    )
    s = prepare([path], tmp_path / "out", progress=False)
    truth = s["tokens"] + s["docs"]
    for use_tc in (True, False):
        f = estimate([path], use_token_count=use_tc)["files"][0]
        assert f["method"] == ("token_count" if use_tc else "sampled ratio")
        assert (f["docs"], f["est_tokens"]) == (s["docs"], truth) == (3, _true_stream_tokens(texts))


def test_several_files_add_up(first150, sample1400):
    d = estimate([first150, sample1400])
    t = d["total"]
    assert t["files"] == 2 and t["docs"] == 1550
    for k in ("docs", "est_tokens", "est_tokens_low", "est_tokens_high", "train_tokens", "val_tokens"):
        assert t[k] == sum(f[k] for f in d["files"])
    assert t["train_tokens"] + t["val_tokens"] == t["est_tokens"]
    assert t["val_tokens"] == pytest.approx(0.005 * t["est_tokens"], abs=2)
    strip = lambda x: {k: v for k, v in x.items() if k != "seconds"}  # noqa: E731
    assert strip(d) == strip(estimate([first150, sample1400]))  # deterministic
    assert json.loads(json.dumps(d))["total"]["est_tokens"] == t["est_tokens"]


def test_budget_arithmetic_on_a_known_case(first150):
    unique = FINEWEB_TOKEN_COUNT_FIRST150 + 150  # val_fraction 0: all of it trains
    b = estimate([first150], val_fraction=0, budget_tokens=4 * unique, max_epochs=1)["budget"]
    assert b["unique_tokens"] == unique and b["epochs"] == 4.0 and b["verdict"] == "nearly-free"
    assert (b["files"], b["files_needed"], b["more_files_needed"]) == (1, 4, 3)
    b = estimate([first150], val_fraction=0, budget_tokens=4 * unique, max_epochs=4)["budget"]
    assert (b["files_needed"], b["more_files_needed"]) == (1, 0)
    b = estimate([first150], val_fraction=0, budget_tokens=4 * unique + 1, max_epochs=2)["budget"]
    assert b["files_needed"] == 3  # just over 2 files' worth at 2 epochs
    b = estimate([first150], budget_tokens=1e6, max_epochs=1)["budget"]
    train = unique - round(0.005 * unique)
    assert b["epochs"] == pytest.approx(1e6 / train) and b["verdict"] == "diminishing"
    assert b["files_needed"] == math.ceil(1e6 / train) == B.files_needed(train, 1, 1e6, 1)
    assert b["epochs_range"] == [b["epochs"], b["epochs"]]  # exact counts: no range


def test_params_or_config_default_the_budget_to_chinchilla(first150):
    from click.testing import CliRunner

    from fwpipe.cli import main
    from fwpipe.train.config import load_config
    from fwpipe.train.plan import param_counts

    b = estimate([first150], params=1e5)["budget"]
    assert b["budget_from"] == "chinchilla" and b["budget_tokens"] == 2_000_000 and b["params"] == 100_000
    b = estimate([first150], params=1e5, budget_tokens=5e5)["budget"]
    assert b["budget_from"] == "budget_tokens" and b["budget_tokens"] == 500_000
    # --config (a train preset) is the CLI's: it becomes the preset's non-embedding parameters
    r = CliRunner().invoke(main, ["estimate", str(first150), "--config", "tiny-cpu", "--json", "-"])
    assert r.exit_code == 0, r.output
    b = json.loads(r.stdout)["budget"]
    n = param_counts(load_config("tiny-cpu").model)[1]
    assert b["params"] == n and b["budget_tokens"] == round(20 * n) and b["budget_from"] == "chinchilla"
    r = CliRunner().invoke(main, ["estimate", str(first150), "--params", "1e6", "--config", "tiny-cpu"])
    assert r.exit_code == 1 and r.stderr.startswith(
        "Error: both --params and --config give the model size; pass one of them"
    )
    assert len(r.stderr.splitlines()) == 1


def test_format_fits_100_columns(first150, sample1400):
    for kw in ({}, {"budget_tokens": 7.6e9, "max_epochs": 4}, {"params": 40e6}):
        text = format_estimate(estimate([first150, sample1400], **kw))
        assert max(len(line) for line in text.splitlines()) <= 100, text
        assert "fineweb-first150.parquet" in text and "bytes/token" in text
    text = format_estimate(estimate([first150], budget_tokens=7.6e9))
    assert "BUDGET" in text and "more" in text and "no text read" in text


@pytest.mark.parametrize(
    "kw, err, words",
    [
        ({"budget_tokens": 0}, BudgetError, "not a positive number"),
        ({"budget_tokens": -1e9}, BudgetError, "not a positive number"),
        ({"budget_tokens": float("nan")}, BudgetError, "not a positive number"),
        ({"budget_tokens": 1e9, "max_epochs": 0}, BudgetError, "--max-epochs 0"),
        ({"max_epochs": -1}, BudgetError, "--max-epochs -1"),
        ({"params": 0}, ConfigError, "--params 0"),
        ({"val_fraction": 1.0}, ConfigError, "--val-fraction"),
        ({"text_column": "body"}, InputFormatError, "no column 'body'"),
    ],
)
def test_bad_options(first150, kw, err, words):
    with pytest.raises(err, match=words) as e:
        estimate([first150], **kw)
    assert e.value.hint and "\n" not in str(e.value)


def test_bad_files(tmp_path):
    no_text = tmp_path / "no_text.parquet"
    pq.write_table(pa.table({"body": ["x"]}), no_text)
    with pytest.raises(InputFormatError, match="no_text.parquet: no column 'text'") as e:
        estimate([no_text], budget_tokens=1e6)
    assert "--text-column" in e.value.hint
    fake = tmp_path / "fake.parquet"
    fake.write_text("id,text\n1,hello\n")
    with pytest.raises(InputFormatError, match="fake.parquet: not a readable parquet file"):
        estimate([fake])
    with pytest.raises(InputNotFoundError, match="missing.parquet"):
        estimate([tmp_path / "missing.parquet"])
    empty = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"text": pa.array([None, ""], pa.string())}), empty)
    assert estimate([empty])["total"]["docs"] == 0
    with pytest.raises(BudgetError, match="no documents"):
        estimate([empty], budget_tokens=1e6)


def test_the_estimate_command_and_prepare_estimate_agree(first150, tmp_path):
    """`fwpipe estimate` is `fwpipe prepare --estimate` with only the flags that apply; both write
    nothing, and `--json -` puts the numbers alone on stdout."""
    from click.testing import CliRunner

    from fwpipe.cli import main

    args = [str(first150), "--params", "1e5", "--max-epochs", "2", "--json", "-"]
    a = CliRunner().invoke(main, ["estimate", *args])
    b = CliRunner().invoke(main, ["prepare", "--estimate", "-o", str(tmp_path / "ds"), *args])
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    ja, jb = json.loads(a.stdout), json.loads(b.stdout)
    ja.pop("seconds"), jb.pop("seconds")
    assert ja == jb and ja["budget"]["budget_tokens"] == 2_000_000 and ja["budget"]["max_epochs"] == 2
    assert not (tmp_path / "ds").exists()

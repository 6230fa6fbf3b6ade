"""`fwpipe audit --against EVAL`: an eval set with planted contamination, counted per split."""

from __future__ import annotations

import json
import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from fwpipe.audit import audit
from fwpipe.cli import main
from fwpipe.errors import FwpipeError
from tests.corpus import edit_words


def test_against_finds_planted_contamination(planted_dirs, real_texts, tmp_path):
    """The planted dataset's train holds real_texts[0:600], val real_texts[600:750]."""
    rng = random.Random(5)
    words = real_texts[9].split(" ")
    passage = " ".join(words[10:50])  # 40 words of train doc 9 inside fresh text: n-grams only
    fresh = real_texts[-1]
    evals = [
        real_texts[5],
        edit_words(real_texts[7], 0.01, rng),
        f"{fresh[:300]} {passage} {real_texts[-2][:300]}",
        real_texts[700],
        fresh,
    ]
    path = tmp_path / "eval.parquet"
    pq.write_table(pa.table({"text": evals}), path)
    ag = audit(planted_dirs["fwpipe"], against_path=path, write_clusters_file=False, quality=False)["against"]
    assert ag["eval_docs"] == 5
    assert (ag["train"]["exact_docs"], ag["train"]["near_docs"], ag["train"]["ngram_docs"]) == (1, 2, 3)
    assert (ag["val"]["exact_docs"], ag["val"]["near_docs"], ag["val"]["ngram_docs"]) == (1, 1, 1)
    worst = {w["doc"]: w for w in ag["worst"]}
    assert set(worst) == {0, 1, 2, 3}  # the fresh document is clean
    assert worst[0]["exact"] == ["train"] and worst[3]["exact"] == ["val"] and worst[1]["near"] == ["train"]
    assert 0 < worst[2]["ngram_fraction"]["train"] < 0.5 and worst[2]["overlap"].strip() in passage
    # every number of the section can be a --fail-on rule, checked before the audit runs
    from fwpipe.audit.rules import parse_rule

    for split in ("train", "val"):
        for key in ag[split]:
            parse_rule(f"against.{split}.{key}>0")
    parse_rule("against.eval_docs>0")

    jsonl = tmp_path / "eval.jsonl"
    jsonl.write_text("".join(json.dumps({"text": t}) + "\n" for t in evals))
    r = CliRunner().invoke(main, ["audit", str(planted_dirs["llmc"]), "--against", str(jsonl), "--json", "-"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output[r.output.index("{") :])["against"]["train"] == ag["train"]


def test_against_bad_input_is_one_line(planted_dirs, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"body": "no text"}\n')
    r = CliRunner().invoke(main, ["audit", str(planted_dirs["llmc"]), "--against", str(bad)])
    assert r.exit_code == 1 and "bad.jsonl, line 2: not a JSON object with a `text` field" in r.output
    r = CliRunner().invoke(main, ["audit", str(planted_dirs["llmc"]), "--against", str(tmp_path / "none.parquet")])
    assert r.exit_code == 1 and "none.parquet: no such file" in r.output


def test_against_a_dataset_layout(planted_dirs):
    """A dataset as the eval set (here the same documents in nanoGPT layout): every document is
    an exact copy of itself in its own split."""
    rep = audit(planted_dirs["fwpipe"], against_path=planted_dirs["nanogpt"], write_clusters_file=False, quality=False)
    ag, splits = rep["against"], rep["splits"]
    assert ag["eval_docs"] == splits["train"]["docs"] + splits["val"]["docs"] == 761
    assert ag["train"]["exact_docs"] == splits["train"]["docs"] + 2  # and the 2 val docs copied from train
    assert ag["val"]["exact_docs"] == splits["val"]["docs"] + 2  # and train docs 20, 21, copied into val
    assert [v["level"] for v in rep["verdicts"] if v["section"] == "against"] == ["bad"]


def _one_line(r) -> str:
    assert r.exit_code == 1, r.output
    lines = r.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.output
    return lines[0]


def test_against_sniffs_the_content_not_the_suffix(planted_dirs, real_texts, tmp_path):
    """Upper-case .JSONL and JSON lines named .txt are read as JSON; parquet named .dat as
    parquet; raw token bytes named .txt are refused (before: zero contamination, exit 0)."""
    evals = [real_texts[5], real_texts[700], real_texts[-1]]
    lines = "".join(json.dumps({"text": t}) + "\n" for t in evals)
    (tmp_path / "E.JSONL").write_text(lines)
    (tmp_path / "e.txt").write_text(lines)
    pq.write_table(pa.table({"text": evals}), tmp_path / "e.dat")
    got = [
        audit(planted_dirs["llmc"], against_path=tmp_path / n, write_clusters_file=False, quality=False)["against"]
        for n in ("E.JSONL", "e.txt", "e.dat")
    ]
    assert [(g["train"]["exact_docs"], g["val"]["exact_docs"]) for g in got] == [(1, 1)] * 3
    raw = tmp_path / "tokens.txt"
    raw.write_bytes(np.arange(1000, dtype=np.uint16).tobytes())
    line = _one_line(CliRunner().invoke(main, ["audit", str(planted_dirs["llmc"]), "--against", str(raw)]))
    assert "tokens.txt: neither parquet nor JSON lines" in line
    fake = tmp_path / "fake.PARQUET"
    fake.write_text("id,text\n1,hello\n")
    assert "fake.PARQUET: not parquet" in _one_line(
        CliRunner().invoke(main, ["audit", str(planted_dirs["llmc"]), "--against", str(fake)])
    )


@pytest.mark.parametrize("case", ["int", "binary", "list", "two text columns", "jsonl null", "jsonl int"])
def test_a_bad_eval_set_is_refused_before_any_audit_work(planted_dirs, tmp_path, case):
    p = tmp_path / ("e.jsonl" if case.startswith("jsonl") else "e.parquet")
    if case == "int":
        pq.write_table(pa.table({"text": [1, 2]}), p)
    elif case == "binary":
        pq.write_table(pa.table({"text": pa.array([b"a", b"b"], pa.binary())}), p)
    elif case == "list":
        pq.write_table(pa.table({"text": [["a"], ["b"]]}), p)
    elif case == "two text columns":
        pq.write_table(pa.Table.from_arrays([pa.array(["a"]), pa.array(["b"])], names=["text", "text"]), p)
    else:
        p.write_text('{"text": "fine"}\n' + ('{"text": null}\n' if case == "jsonl null" else '{"text": 12345}\n'))
    steps = []
    with pytest.raises(FwpipeError) as e:
        audit(planted_dirs["llmc"], against_path=p, write_clusters_file=False, on_step=steps.append)
    assert steps == []  # refused before the audit opened the dataset
    want = {
        "int": "is int64, not a string",
        "binary": "is binary, not a string",
        "list": "not a string",
        "two text columns": "more than one `text` column",
        "jsonl null": "line 2: `text` is null",
        "jsonl int": "line 2: `text` is 12345",
    }
    assert want[case] in str(e.value)


def test_a_dictionary_encoded_text_column_is_read_as_strings(planted_dirs, real_texts, tmp_path):
    evals = [real_texts[5], real_texts[700], real_texts[5]]
    plain, dic = tmp_path / "p.parquet", tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": evals}), plain)
    pq.write_table(pa.table({"text": pa.array(evals).dictionary_encode()}), dic)
    a, b = (
        audit(planted_dirs["llmc"], against_path=x, write_clusters_file=False, quality=False)["against"]
        for x in (plain, dic)
    )
    assert a["train"] == b["train"] and a["eval_docs"] == b["eval_docs"] == 3

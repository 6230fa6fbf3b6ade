"""The audit page: built from a real audit of real FineWeb documents with planted copies and
hostile text, then opened in headless Chromium (skipped with a reason where it is absent)."""

from __future__ import annotations

import random
import re

import numpy as np
import polars as pl
import pytest

from fwpipe import fmt
from fwpipe.audit import audit
from fwpipe.audit.html import render, write_html
from fwpipe.tokenizer import encode
from tests.browser import assert_not_blank, dump_dom, screenshot
from tests.corpus import edit_words, write_fwpipe

HOSTILE = "<script>alert(1)</script> Town news: <img src=x onerror=alert(2)> the council met on Tuesday about the library budget. "


@pytest.fixture(scope="module")
def leaky(real_texts, tmp_path_factory):
    """200 real train docs, 40 real val docs; planted: a hostile page and two edited copies in train,
    one more edited copy of it in val, and an exact copy of train doc 7 in val."""
    rng = random.Random(5)
    hostile = HOSTILE + real_texts[300]
    train = [*real_texts[:200], hostile, edit_words(hostile, 0.01, rng), edit_words(hostile, 0.01, rng)]
    val = [*real_texts[200:240], edit_words(hostile, 0.01, rng), real_texts[7]]
    tok = lambda ts: [encode(t).astype(np.uint16) for t in ts]  # noqa: E731
    root = write_fwpipe(tmp_path_factory.mktemp("leaky") / "ds", {"train": [tok(train)], "val": [tok(val)]})
    evals = root.parent / "eval.parquet"  # an eval set: the hostile page itself and three unseen documents
    pl.DataFrame({"text": [hostile, *real_texts[400:403]]}).write_parquet(evals)
    report = audit(root, budget_tokens=1e8, params=40e6, against_path=evals)
    page = root.parent / "audit.html"
    write_html(report, page)
    return report, page, real_texts


def test_report_has_what_the_page_shows(leaky):
    report, _, _ = leaky
    assert report["leakage"]["exact_docs"] == 1 and report["leakage"]["near_docs"] == 2
    assert report["near_duplicates"]["clusters"] == 2  # the hostile page's four versions; train doc 7 and its val copy


@pytest.mark.slow
def test_audit_page_in_chromium(leaky, tmp_path):
    report, page, texts = leaky
    dom = dump_dom(page, tmp_path)
    # verdict cards, coloured by level, each with its deciding number
    cards = re.findall(r'<div class="card verdict-(\w+)".*?<span class="sec">(\w+)</span><p>(.*?)</p>', dom)
    by = {sec: (lvl, text) for lvl, sec, text in cards}
    assert by["leakage"][0] == "bad" and "1 val docs copied from train, 2 near-copied" in by["leakage"][1]
    assert by["budget"][0] == "bad" and f"{fmt.ratio(report['budget']['epochs'])} epochs" in by["budget"][1]
    assert "duplicates" in by and "lengths" in by
    assert by["against"][0] == "bad" and "eval set: 1 of 4 docs copied in train" in by["against"][1]
    against = re.search(r'<table class="against">.*?</table>', dom, re.S).group(0)
    assert re.search(r"<td class=\"t\">train</td><td>1 \(25.0%\)</td>", against)
    # real tables, holding the totals and the lengths
    totals = re.search(r'<table class="totals">.*?</table>', dom, re.S).group(0)
    assert (
        f"<td>{report['splits']['train']['docs']:,}</td>" in totals
        and f"<td>{report['splits']['train']['tokens']:,}</td>" in totals
    )
    assert '<table class="lengths">' in dom and '<table class="leakage">' in dom
    # the leaking val copy of train doc 7 beside its train neighbour, the shared run highlighted
    marks = re.findall(r"<mark>(.*?)</mark>", dom, re.S)
    assert any(texts[7][:40].replace("&", "&amp;") in m for m in marks)
    assert (
        f"<b>Data needed:</b> {report['budget']['data_multiple_for_4_epochs']:.1f}x this data" in dom
    )  # no manifest sources
    # hostile text is text: present escaped, never an element
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom and "&lt;img src=x onerror=alert(2)&gt;" in dom
    assert "<script" not in dom.lower() and not re.search(r"<img[^>]*onerror", dom, re.I)
    assert_not_blank(screenshot(page, tmp_path))


def test_sections_with_nothing_say_so(real_texts, tmp_path):
    root = write_fwpipe(
        tmp_path / "clean", {"train": [[encode(t).astype(np.uint16) for t in real_texts[:60]]], "val": []}
    )
    html = render(audit(root))
    assert "No near-duplicate clusters" in html and "Cluster sizes" not in html
    assert "Nothing to compare: the dataset has no val split" in html
    assert "No budget given" in html and "No eval set given" in html
    assert html.count("<img") == 1  # the length histogram only: no empty charts


def test_missing_sections_are_said_not_crashed(leaky):
    report = {k: v for k, v in leaky[0].items() if k not in ("leakage", "near_duplicates", "lengths")}
    html = render(report)
    for what in ("leakage", "near-duplicates", "lengths"):
        assert f"The report has no {what} section." in html

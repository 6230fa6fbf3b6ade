"""The 13-gram leak examples: which n-gram, which val and train documents, where, with the text
around it; in the report's JSON, the terminal text and the HTML page."""

from __future__ import annotations

import numpy as np
import pytest

from fwpipe.audit import audit
from fwpipe.audit.report import terminal
from fwpipe.tokenizer import encode, get_encoding
from tests.corpus import write_fwpipe


def decode(tokens) -> str:
    return get_encoding().decode([int(t) for t in tokens])


@pytest.fixture(scope="module")
def planted_quote(real_texts, tmp_path_factory):
    """val doc 0 quotes 30 tokens of train doc 5 at its token 100; val doc 1 is train doc 20 (the second train shard)."""
    docs = [encode(t).astype(np.uint16)[:200] for t in real_texts[:40]]
    train, val = docs[:30], docs[30:40]
    val[0] = np.concatenate([val[0][:100], train[5][50:80], val[0][100:]])
    val[1] = train[20]
    root = write_fwpipe(tmp_path_factory.mktemp("quote") / "ds", {"train": [train[:15], train[15:]], "val": [val]})
    return root, train, val


def test_examples_name_the_ngram_and_both_documents(planted_quote):
    root, train, val = planted_quote
    ex = audit(root, ngram=13, quality=False)["leakage"]["ngram_examples"]
    assert [(e["val"]["doc"], e["val"]["position"], e["train"]["doc"], e["train"]["position"]) for e in ex] == [
        (0, 100, 5, 50),
        (1, 0, 20, 0),
    ]
    q = ex[0]
    assert q["tokens"] == train[5][50:63].tolist() and q["text"] == decode(train[5][50:63])
    assert q["train"]["shard"] == 0 and ex[1]["train"]["shard"] == 1  # train docs 15..29 are the second shard
    assert q["val"]["before"].endswith(decode(val[0][60:100])) and q["val"]["before"].startswith("...")
    assert q["train"]["after"].startswith(decode(train[5][63:80]))
    assert ex[1]["val"]["before"] == "" and ex[1]["train"]["before"] == ""  # the n-gram opens both documents


def test_locating_in_small_chunks_finds_the_same(planted_quote, monkeypatch):
    from fwpipe.audit import leakage

    root, _, _ = planted_quote
    whole = audit(root, ngram=13, quality=False)["leakage"]["ngram_examples"]
    monkeypatch.setattr(leakage, "EXAMPLE_CHUNK_TOKENS", 150)  # one document a chunk
    assert audit(root, ngram=13, quality=False)["leakage"]["ngram_examples"] == whole


def test_examples_in_the_terminal_and_the_page(planted_quote, tmp_path):
    from fwpipe.audit.html import write_html

    root, train, _ = planted_quote
    report = audit(root, ngram=13, quality=False)
    text = terminal(report)
    assert 'e.g. val doc 0 and train doc 5 share "' in text and "e.g. val doc 1 and train doc 20 share" in text
    page = tmp_path / "audit.html"
    write_html(report, page)
    html = page.read_text()
    gram = decode(train[5][50:63])
    import html as html_mod

    assert html.count(f"<mark>{html_mod.escape(gram)}</mark>") >= 2  # highlighted in the val and in the train document
    assert "val doc 0, token 100" in html and "train doc 5, token 50" in html

"""Report outputs: required JSON keys, terminal layout, HTML, --fail-on rules."""

from __future__ import annotations

import json
import re

import pytest

from fwpipe.atomic import write_json
from fwpipe.audit.html import render
from fwpipe.audit.report import terminal
from fwpipe.audit.rules import failed_rules, parse_rule
from fwpipe.errors import ConfigError

REQUIRED = {
    "splits.train": ["docs", "tokens", "stream_tokens"],
    "splits.val": ["docs", "tokens", "stream_tokens"],
    "lengths.train": ["p50", "p90", "p99", "max", "mean", "gini", "top1pct_token_share"],
    "lengths.val": ["p50", "p90", "p99", "max", "mean", "gini", "top1pct_token_share"],
    "exact_duplicates": ["docs", "tokens"],
    "near_duplicates": [
        "threshold",
        "shingle",
        "num_perm",
        "clusters",
        "docs_in_clusters",
        "removable_docs",
        "removable_tokens",
    ],
    "leakage": ["val_docs", "exact_docs", "near_docs", "ngram_n", "ngram_docs", "ngram_fraction"],
    "budget": ["budget_tokens", "unique_tokens", "epochs", "effective_tokens", "verdict"],
}


def test_json_has_required_keys(planted_reports, tmp_path):
    write_json(tmp_path / "a.json", planted_reports["fwpipe"])
    rep = json.loads((tmp_path / "a.json").read_text())
    assert rep["format"] == "fwpipe"
    for path, keys in REQUIRED.items():
        node = rep
        for k in path.split("."):
            node = node[k]
        missing = [k for k in keys if k not in node]
        assert not missing, (path, missing)


def test_terminal_starts_with_verdicts_and_fits_100_columns(planted_reports):
    text = terminal(planted_reports["fwpipe"])
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100
    # with --params the data-side diagnosis (fwpipe.diagnosis) stands between leakage and duplicates
    assert [line[7:].split()[0] for line in lines[2:6]] == ["budget", "leakage", "diagnosis", "duplicates"]
    assert lines[2].startswith("[BAD ]")  # 7.6e9 tokens over ~1M train tokens
    assert "for <= 4 epochs: " in text and "input files like these" in text


def test_html_is_self_contained(planted_reports):
    page = render(planted_reports["fwpipe"])
    assert (
        page.count('src="data:image/png;base64,') == 2 == page.count("<img")
    )  # lengths and budget; the rest are tables and texts
    assert not re.search(r'(src|href)="(https?:)?//', page) and "<link" not in page and "<script" not in page


@pytest.mark.parametrize(
    "text,fires",
    [
        ("leakage.near_docs>0", True),
        ("leakage.near_docs>4", False),
        ("budget.epochs>=4", True),
        ("exact_duplicates.docs==6", True),
        ("splits.val.docs < 1e3", True),
        ("leakage.ngram_n!=13", False),
    ],
)
def test_rules(planted_reports, text, fires):
    rule = parse_rule(text)
    assert bool(failed_rules(planted_reports["fwpipe"], [rule])) == fires


@pytest.mark.parametrize("bad", ["leakage.near_docs", "near_docs>>0", "> 3", "leakage.near_docs>x", "a b>1"])
def test_malformed_rules(bad):
    with pytest.raises(ConfigError, match="is not a rule"):
        parse_rule(bad)


def test_rule_on_missing_key_names_the_key(planted_reports):
    rep = {k: v for k, v in planted_reports["fwpipe"].items() if k != "budget"}
    with pytest.raises(ConfigError, match="needs --budget-tokens"):
        failed_rules(rep, [parse_rule("budget.epochs>4")])
    with pytest.raises(ConfigError, match="no 'leakage.nope'"):
        failed_rules(rep, [parse_rule("leakage.nope>4")])


def _leaves(node, path=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, (*path, k))
    else:
        yield ".".join(path), node


def test_rule_schema_matches_a_real_report(planted_reports):
    """report.KEYS, which checks rules before the audit, names exactly the keys a report has."""
    from fwpipe.audit.report import KEYS, LIST, TEXT

    rep = planted_reports["fwpipe"]  # with --budget-tokens and --params: every section
    for path, value in _leaves(rep):
        if isinstance(value, list):
            continue
        if isinstance(value, str):
            with pytest.raises(ConfigError, match="is text"):
                parse_rule(f"{path}>0")
        else:
            parse_rule(f"{path}>0")  # a key of a real report is never refused
    in_report = {p for p, _ in _leaves(rep)}
    optional = {
        "sources",
        "leakage.note",
        "leakage.ngram_sampled_every",  # only some datasets have them
        "quality.removed_by_prepare.docs",
        "quality.removed_by_prepare.by_rule",
    }
    missing = {
        p for p, kind in _leaves(KEYS) if p not in in_report and p not in optional and not p.startswith("against.")
    }
    assert not missing, f"report.KEYS has keys no report has: {sorted(missing)}"
    assert {kind for _, kind in _leaves(KEYS)} == {"number", TEXT, LIST}


def test_terminal_shows_a_documents_control_characters_as_spaces(planted_reports):
    """A document holding terminal escape sequences (retitle, clear screen) or a bidi override
    is printed inert: before, the snippet reached the terminal raw."""
    import copy

    from fwpipe.audit.report import terminal

    rep = copy.deepcopy(planted_reports["fwpipe"])
    assert rep["exact_duplicates"]["largest"], "the planted data has exact duplicates"
    rep["exact_duplicates"]["largest"][0]["snippet"] = "\x1b]0;pwned\x07\x1b[2Jhello\u202eevil\r\nnext"
    text = terminal(rep)
    assert not any(ord(ch) < 0x20 and ch != "\n" or 0x7F <= ord(ch) < 0xA0 or ch == "\u202e" for ch in text)
    line = next(ln for ln in text.splitlines() if "pwned" in ln)
    assert "]0;pwned  [2Jhello evil  next" in line

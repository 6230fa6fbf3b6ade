"""Quality thresholds: the published defaults, overridable by a TOML file.

One dataclass per filter, field names and defaults exactly as datatrove's filters take them
(GopherQualityFilter, GopherRepetitionFilter, FineWebQualityFilter, C4QualityFilter), so a
threshold reads the same in the paper, in datatrove and here. A TOML file overrides them:

    [gopher_quality]
    min_doc_words = 100
    [fineweb]
    line_punct_thr = 0.2

Unknown sections or keys are rejected by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from fwpipe.errors import ConfigError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")  # Gopher's (Rae et al. 2021, A1)


@dataclass(frozen=True)
class GopherQuality:  # Rae et al. 2021 (MassiveText), appendix A1; a 0 turns a rule off, as in datatrove
    min_doc_words: int = 50
    max_doc_words: int = 100_000
    min_avg_word_length: float = 3
    max_avg_word_length: float = 10
    max_symbol_word_ratio: float = 0.1  # '#' per word, and '...'/'…' per word
    max_bullet_lines_ratio: float = 0.9
    max_ellipsis_lines_ratio: float = 0.3
    max_non_alpha_words_ratio: float = 0.8  # despite the name: the minimum share of words with a letter
    min_stop_words: int = 2
    stop_words: tuple[str, ...] = STOP_WORDS


@dataclass(frozen=True)
class GopherRepetition:  # Rae et al. 2021, table A1
    dup_line_frac: float = 0.3
    dup_para_frac: float = 0.3
    dup_line_char_frac: float = 0.2
    dup_para_char_frac: float = 0.2
    top_n_grams: tuple[tuple[int, float], ...] = ((2, 0.2), (3, 0.18), (4, 0.16))
    dup_n_grams: tuple[tuple[int, float], ...] = ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10))


@dataclass(frozen=True)
class FineWeb:  # Penedo et al. 2024 (FineWeb), datatrove's FineWebQualityFilter
    line_punct_thr: float = 0.12
    line_punct_exclude_zero: bool = False
    short_line_thr: float = 0.67
    short_line_length: int = 30
    char_duplicates_ratio: float = 0.01
    new_line_ratio: float = 0.3


@dataclass(frozen=True)
class C4:  # Raffel et al. 2020 (C4), datatrove's C4QualityFilter; -1 turns a rule off
    min_num_sentences: int = 5
    min_words_per_line: int = 3
    max_word_length: int = 1000
    filter_lorem_ipsum: bool = True
    filter_javascript: bool = True
    filter_curly_bracket: bool = True
    filter_policy: bool = True
    remove_citations: bool = True
    filter_no_terminal_punct: bool = True


@dataclass(frozen=True)
class Lang:
    keep: tuple[str, ...] = ("en",)  # `--filter lang` keeps these; `lang=de,fr` overrides
    min_score: float = 0.65  # FineWeb's LanguageFilter threshold for English
    max_chars: int = 10_000  # the model reads this much of each document (speed; the score settles long before)


@dataclass(frozen=True)
class QualityConfig:
    gopher_quality: GopherQuality = field(default_factory=GopherQuality)
    gopher_repetition: GopherRepetition = field(default_factory=GopherRepetition)
    fineweb: FineWeb = field(default_factory=FineWeb)
    c4: C4 = field(default_factory=C4)
    lang: Lang = field(default_factory=Lang)


def _tupled(v):
    return tuple(_tupled(x) for x in v) if isinstance(v, list) else v


def load_config(path: str | Path | None) -> QualityConfig:
    """The defaults, overridden by the TOML file at `path` (None: the defaults)."""
    cfg = QualityConfig()
    if path is None:
        return cfg
    p = Path(path)
    hint = (
        "sections: "
        + ", ".join(f.name for f in fields(QualityConfig))
        + "; keys as datatrove's filter arguments (README, Quality)"
    )
    try:
        data = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{p}: quality config file not found", "pass an existing TOML file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: not a TOML file ({e})", hint) from None
    sections = {f.name: f for f in fields(QualityConfig)}
    for name, values in data.items():
        if name not in sections or not isinstance(values, dict):
            raise ConfigError(f"{p}: unknown section [{name}]", hint)
        section = getattr(cfg, name)
        known = {f.name: f for f in fields(section)}
        for key, value in values.items():
            if key not in known:
                raise ConfigError(f"{p}: [{name}] has no key {key!r} (it has {', '.join(known)})", hint)
            default = getattr(section, key)
            if (
                isinstance(default, bool) != isinstance(value, bool)
                or (isinstance(default, (int, float)) and not isinstance(value, (int, float)))
                or (isinstance(default, tuple) and not isinstance(value, list))
            ):
                raise ConfigError(f"{p}: [{name}] {key} = {value!r} is not a {type(default).__name__}", hint)
        cfg = replace(cfg, **{name: replace(section, **{k: _tupled(v) for k, v in values.items()})})
    return cfg

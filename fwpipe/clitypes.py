"""Small click pieces the CLI builds on: the count type for token and parameter flags, and the
did-you-mean for options that do not exist.

Ground floor (imports click and fwpipe.fmt only), so that any command module can use them.

    --budget-tokens 7.6e9 | 7.6B | 7600M    --params 40M | 40e6    --shard-tokens 100m
    fwpipe train --lr 1e-3   ->   Error: no such option --lr; did you mean --set lr=1e-3?
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable

import click

from fwpipe.fmt import parse_count

SPELLINGS = "7.6e9, 7.6B, 100M, 40M or 2.5k"  # what the one error line offers; every one of them parses


class Count(click.ParamType):
    """A positive whole number of tokens or parameters, written plainly, in scientific notation
    or with a suffix (k, M, B or G, T; any case): 7.6e9 = 7.6B = 7600M; 2.5k = 2500; 1_000_000."""

    def __init__(self, name: str, unit: str):
        self.name, self.unit = name, unit  # name is the metavar: TOKENS, PARAMS

    def convert(self, value, param, ctx):
        if isinstance(value, int) and not isinstance(value, bool):
            v = float(value)
        elif isinstance(value, float):
            v = value
        else:
            try:
                v = parse_count(value)
            except ValueError:
                self.fail(f"{value!r} is not a number of {self.unit}; write e.g. {SPELLINGS}", param, ctx)
        if math.isnan(v) or math.isinf(v):
            self.fail(f"{value!r} is not a finite number of {self.unit}", param, ctx)
        if v != int(v):
            self.fail(f"{value!r} is not a whole number of {self.unit}", param, ctx)
        if v <= 0:
            self.fail(f"{value!r} is not a positive number of {self.unit}; write e.g. {SPELLINGS}", param, ctx)
        return int(v)


TOKENS = Count("TOKENS", "tokens")
PARAMS = Count("PARAMS", "parameters")


def _value_after(args: list[str], opt: str) -> str | None:
    """The value written with an unknown option: `--lr=1e-3` or `--lr 1e-3` (None if there is none)."""
    for i, a in enumerate(args):
        if a.startswith(opt + "="):
            return a.split("=", 1)[1]
        if a == opt:
            nxt = args[i + 1] if i + 1 < len(args) else None
            if nxt is not None and not (nxt.startswith("--") or (nxt.startswith("-") and not _numberish(nxt))):
                return nxt
            return None
    return None


def _numberish(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def no_such_option(opt: str, possibilities: Iterable[str], args: list[str], set_keys: Iterable[str] = ()) -> str:
    """The one line for an unknown option: a config key becomes `--set key=value` (train), else
    click's close matches among the real options, else nothing to suggest."""
    keys = list(set_keys)
    name = opt.lstrip("-").replace("-", "_").split("=", 1)[0]
    key = name if name in keys else next(iter(difflib.get_close_matches(name, keys, n=1, cutoff=0.85)), None)
    if key is not None and not name.startswith("set"):
        value = _value_after(args, opt.split("=", 1)[0])
        return f"no such option {opt}; did you mean --set {key}={value if value is not None else 'VALUE'}?"
    close = list(possibilities)  # click's close matches (difflib), best first: name the best one
    if close:
        return f"no such option {opt}; did you mean {close[0]}?"
    return f"no such option {opt}"


class SuggestingCommand(click.Command):
    """A click command whose unknown options get a did-you-mean; `set_keys` (a callable, so that
    nothing heavy is imported before an error) names the keys `--set KEY=VALUE` takes."""

    def __init__(self, *a, set_keys: Callable[[], Iterable[str]] | None = None, **kw):
        super().__init__(*a, **kw)
        self.set_keys = set_keys

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        raw = list(args)
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as e:
            keys = self.set_keys() if self.set_keys is not None else ()
            raise click.UsageError(no_such_option(e.option_name, e.possibilities or (), raw, keys), ctx) from None

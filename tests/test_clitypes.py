"""One type for every token and parameter flag, and a did-you-mean for every unknown option."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from fwpipe.cli import main
from fwpipe.clitypes import SPELLINGS, Count


def _count_flags() -> dict[tuple[str, str], click.Option]:
    """Every option of every command whose name says it holds tokens or parameters."""
    out = {}
    for name, cmd in main.commands.items():
        for p in cmd.params:
            if isinstance(p, click.Option) and any(w in o for o in p.opts for w in ("tokens", "params", "block-size")):
                out[(name, p.opts[0])] = p
    return out


def test_every_token_and_parameter_flag_is_the_one_count_type():
    flags = _count_flags()
    assert (
        ("train", "--budget-tokens") in flags
        and ("prepare", "--shard-tokens") in flags
        and ("audit", "--params") in flags
    )
    odd = {k: type(p.type).__name__ for k, p in flags.items() if not isinstance(p.type, Count)}
    assert not odd, odd


@pytest.mark.parametrize(
    "text,value",
    [
        ("7.6e9", 7_600_000_000),
        ("7.6B", 7_600_000_000),
        ("7.6b", 7_600_000_000),
        ("7600M", 7_600_000_000),
        ("100M", 100_000_000),
        ("40m", 40_000_000),
        ("2.5k", 2_500),
        ("2.5K", 2_500),
        ("1_000_000", 1_000_000),
        ("3G", 3_000_000_000),
        ("1e3", 1_000),
        ("1T", 10**12),
    ],
)
def test_counts_spelled_as_people_write_them(text, value):
    assert Count("TOKENS", "tokens").convert(text, None, None) == value


def test_every_spelling_the_error_offers_parses():
    for s in SPELLINGS.replace(" or ", ", ").split(", "):
        assert Count("TOKENS", "tokens").convert(s, None, None) > 0, s


@pytest.mark.parametrize(
    "args,line",
    [
        (
            ["audit", "--budget-tokens", "7.6bn"],
            "'7.6bn' is not a number of tokens; write e.g. 7.6e9, 7.6B, 100M, 40M or 2.5k",
        ),
        (["audit", "--params", "40 M params"], "'40 M params' is not a number of parameters"),
        (["train", "--budget-tokens", "1.5k5"], "'1.5k5' is not a number of tokens"),
        (["prepare", "x.parquet", "--shard-tokens", "2.0005k"], "'2.0005k' is not a whole number of tokens"),
    ],
)
def test_a_bad_spelling_is_one_clear_line(args, line):
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1 and r.output.count("\n") == 1 and line in r.output, r.output


def test_an_accepted_suffix_reaches_the_library(tmp_path):
    # estimate --params 40M on the bundled sample: the same JSON as --params 40e6
    outs = []
    for spelling in ("40M", "40e6"):
        r = CliRunner().invoke(
            main, ["estimate", "--sample", "--budget-tokens", "7.6B", "--params", spelling, "--json", "-"]
        )
        assert r.exit_code == 0, r.output
        outs.append(r.stdout)
    assert outs[0] == outs[1] or outs[0].split('"seconds"')[0] == outs[1].split('"seconds"')[0]
    assert '"params": 40000000' in outs[0] and '"budget_tokens": 7600000000' in outs[0]


@pytest.mark.parametrize(
    "args,line",
    [
        (["train", "--lr", "1e-3"], "Error: no such option --lr; did you mean --set lr=1e-3?"),
        (["train", "--lr=3e-4", "--dry-run"], "Error: no such option --lr; did you mean --set lr=3e-4?"),
        (["train", "--n-layer", "6"], "Error: no such option --n-layer; did you mean --set n_layer=6?"),
        (
            ["train", "--warmup-iters", "--dry-run"],
            "Error: no such option --warmup-iters; did you mean --set warmup_iters=VALUE?",
        ),
        (["train", "--dryrun"], "Error: no such option --dryrun; did you mean --dry-run?"),
        (["audit", "--thresold", "0.7"], "Error: no such option --thresold; did you mean --threshold?"),
        (["--verbos"], "Error: no such option --verbos; did you mean --verbose?"),
    ],
)
def test_unknown_options_get_a_did_you_mean(args, line):
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1 and r.output.strip() == line, r.output

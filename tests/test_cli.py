"""The CLI's conventions, for every command: help on every option, shared flags that read the
same everywhere, and every usage error as one `Error:` line with exit code 1 (no usage block)."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from fwpipe.cli import main

SHARED = ("--budget-tokens", "--params", "--device", "--json", "--workers", "--memory-gb", "--tmp-dir")


def _options(cmd: click.Command) -> dict[str, click.Option]:
    return {name: p for p in cmd.params if isinstance(p, click.Option) for name in p.opts}


def test_every_option_of_every_command_has_help():
    for name, cmd in main.commands.items():
        for p in cmd.params:
            if isinstance(p, click.Option) and not p.hidden:
                assert p.help and p.help.strip(), f"fwpipe {name} {p.opts[0]} has no help"
        assert cmd.help and "\b" in cmd.help, f"fwpipe {name} has no help with examples"


def test_shared_flags_have_one_type_metavar_and_help():
    ctx = click.Context(main)
    for flag in SHARED:
        seen = {name: _options(cmd)[flag] for name, cmd in main.commands.items() if flag in _options(cmd)}
        assert seen, flag
        kinds = {(type(o.type).__name__, getattr(o.type, "name", None), o.make_metavar(ctx)) for o in seen.values()}
        assert len(kinds) == 1, f"{flag} differs between commands: {seen.keys()} -> {kinds}"
        helps = [o.help for o in seen.values()]
        prefix = {
            "--budget-tokens": "The training budget in tokens (e.g. 7.6e9 or 7.6B):",
            "--json": "Also write",
            "--workers": None,
            "--tmp-dir": "Scratch directory for near-duplicate detection",
        }.get(flag, helps[0])
        assert prefix is None or all(h.startswith(prefix) for h in helps), f"{flag}: {helps}"
    assert _options(main.commands["audit"])["--params"].make_metavar(ctx) == "PARAMS"  # it was TOKENS
    assert {n for n, c in main.commands.items() if "--json" in _options(c)} >= {
        "estimate",
        "prepare",
        "audit",
        "train",
        "eval",
    }
    assert all(
        _options(main.commands[n])["--json"].make_metavar(ctx) == "PATH|-"
        for n in ("estimate", "prepare", "audit", "train")
    )


def test_the_dataset_is_given_the_same_way_to_every_command_that_reads_one():
    for name in ("audit", "train"):
        args = [p for p in main.commands[name].params if isinstance(p, click.Argument)]
        assert [(a.name, a.default) for a in args] == [("dataset", "data/fineweb")], name


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["bogus"], "No such command 'bogus'"),
        (["--nonsense-flag"], "no such option --nonsense-flag"),
        (["estimate", "x.parquet", "--budget-tokens", "7.6x"], "'7.6x' is not a number of tokens"),
        (["estimate", "x.parquet", "--params", "0"], "'0' is not a positive number of parameters"),
        (["prepare", "x.parquet", "--shard-tokens", "1.5"], "not a whole number of tokens"),
        (["prepare", "x.parquet", "--params", "40e6"], "--params and --config go with --estimate"),
        (["prepare", "x.parquet", "--dedup", "fuzzy"], "--dedup"),
        (["audit", "--threshold", "high"], "--threshold"),
        (["audit", "--budget-tokens", "nan"], "not a finite number of tokens"),
        (["audit", "--bogus"], "no such option --bogus"),
        (["train", "--budget-tokens", "-1e9"], "not a positive number of tokens"),
        (["train", "--device", "tpu"], "--device"),
        (["train", "a", "b"], "unexpected extra argument"),
        (["report"], "Missing argument 'RUN'"),
        (["sample"], "Missing argument 'CHECKPOINT'"),
        (["sample", "x.pt", "--temperature", "0"], "--temperature"),
        (["eval", "x.pt"], "Missing option '--hellaswag'"),
    ],
)
def test_every_usage_error_is_one_line_and_exit_1(args, fragment):
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1, (args, r.output)
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Usage:" not in r.output, r.output
    assert fragment in lines[0] and "--help" in lines[0], lines[0]
    assert "Traceback" not in r.output


def test_help_is_not_an_error():
    for args in ([], ["-h"], ["audit", "-h"], ["estimate", "--help"]):
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 0 and r.output.startswith("Usage: fwpipe"), r.output
    assert "Commands:" in CliRunner().invoke(main, []).output

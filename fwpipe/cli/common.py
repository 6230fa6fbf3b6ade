"""What every command module of the CLI shares: number types, the flags two commands take, and
how a summary reaches stdout.

A flag two commands share (--budget-tokens, --params, --config, --device, --json, --workers,
--ray, --memory-gb, --tmp-dir) is defined once here: the same type, metavar and help. `--params`
and `--config` (estimate's model size) become a number of parameters in `model_params`, and
a number of parameters becomes a budget in fwpipe.budget.budget_or_chinchilla: one place each.
Imports click and the ground floor; a stage only inside a function (`model_params`).
"""

from __future__ import annotations

import functools
import json

import click

from fwpipe import budget
from fwpipe.atomic import write_json
from fwpipe.clitypes import PARAMS, TOKENS, SuggestingCommand  # noqa: F401 - the commands take them from here
from fwpipe.errors import ConfigError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
DEFAULT_DATASET = "data/fineweb"


# TOKENS and PARAMS (7.6e9, 7.6B, 100M, 2.5k; any case) and the did-you-mean live in fwpipe.clitypes


# ------------------------------------------------------------------------- shared options
# One definition per flag that more than one command takes: the same type, metavar and help.


def dataset_argument(f):
    return click.argument("dataset", default=DEFAULT_DATASET, metavar="[DATASET]")(f)


def budget_option(effect: str):
    return click.option(
        "--budget-tokens",
        type=TOKENS,
        default=None,
        help=f"The training budget in tokens (e.g. 7.6e9 or 7.6B): {effect}",
    )


def params_option(f):
    return click.option(
        "--params",
        type=PARAMS,
        default=None,
        help="Model parameters (e.g. 40M or 40e6): adds tokens per parameter and the compute-optimal size (Chinchilla); without "
        f"--budget-tokens the budget is Chinchilla's {budget.CHINCHILLA_TOKENS_PER_PARAM:g} tokens per parameter.",
    )(f)


def config_option(help: str):
    return click.option("--config", "config", default=None, metavar="NAME|TOML", help=help)


def json_option(what: str):
    return click.option(
        "--json",
        "json_path",
        type=click.Path(dir_okay=False, allow_dash=True),
        metavar="PATH|-",
        default=None,
        help=f"Also write {what} as JSON to PATH ('-': the JSON alone on stdout).",
    )


def device_option(f):
    return click.option(
        "--device",
        type=click.Choice(["auto", "cuda", "mps", "cpu"]),
        default="auto",
        show_default=True,
        help="Where to run; auto takes cuda, then mps, then cpu.",
    )(f)


def workers_option(what: str):
    return click.option(
        "--workers", type=click.IntRange(min=1), default=None, metavar="N", help=f"{what} [default: all cores]."
    )


# --ray is a flag: RAY_ADDRESS's cluster, else one started on this machine, else a new local one
# (ray.init()'s default). An address is given as --ray=ADDRESS (clitypes.VALUED_FLAGS turns it into
# --ray-address ADDRESS) or --ray-address ADDRESS, so `--ray DATASET` never reads DATASET as one.
# The command receives one `ray_address`: None (no Ray), "" (--ray alone) or the address.
def ray_option(f):
    @functools.wraps(f)
    def with_ray(*args, ray: bool, ray_address: str | None, **kw):
        if ray_address is not None and not ray_address.strip():
            raise click.BadParameter(
                "give the cluster's HOST:PORT, or --ray alone for RAY_ADDRESS's or a local cluster",
                param_hint="'--ray-address' / '--ray='",
            )
        return f(*args, ray_address=ray_address if ray_address is not None else ("" if ray else None), **kw)

    with_ray = click.option(
        "--ray-address",
        "ray_address",
        default=None,
        metavar="HOST:PORT",
        help="The Ray cluster to run on (the same as --ray=HOST:PORT).",
    )(with_ray)
    return click.option(
        "--ray",
        "ray",
        is_flag=True,
        help="Run the units as tasks on a Ray cluster (pip install 'fwpipe[ray]'): RAY_ADDRESS's, else one started "
        "on this machine, else a new local one; --ray=HOST:PORT (or --ray-address) names another.",
    )(with_ray)


def memory_gb_option(f):
    return click.option(
        "--memory-gb",
        type=float,
        default=None,
        metavar="GB",
        help="Memory for near-duplicate detection beyond ~50 bytes/document [default: 1].",
    )(f)


def tmp_dir_option(default: str):
    return click.option(
        "--tmp-dir",
        type=click.Path(file_okay=False),
        default=None,
        metavar="DIR",
        help=f"Scratch directory for near-duplicate detection [default: {default}].",
    )


# ------------------------------------------------------------------------- resolving flags


def model_params(params: int | None, config: str | None) -> int | None:
    """The model size from --params, or from --config (a train preset or TOML): its
    non-embedding parameters, as `fwpipe train` counts them (fwpipe.train.plan.param_counts)."""
    if params is not None and config is not None:
        raise ConfigError("both --params and --config give the model size", "pass one of them")
    if config is None:
        return params
    from fwpipe.train.config import load_config
    from fwpipe.train.plan import param_counts

    return param_counts(load_config(config).model)[1]


# ------------------------------------------------------------------------- output


def _dumps(obj) -> str:
    return json.dumps(obj, indent=2, default=str)  # as atomic.write_json writes it


def summary(json_path: str | None, data, text: str | None) -> None:
    """The text summary on stdout, and with --json the same numbers as JSON; `--json -` puts the
    JSON alone on stdout."""
    if json_path == "-":
        click.echo(_dumps(data))
        return
    if text is not None:
        click.echo(text)
    if json_path:
        write_json(json_path, data)
        click.echo(f"wrote {json_path}")


def note(json_path: str | None):
    """Where notes go: stdout, or stderr when stdout holds JSON."""
    return functools.partial(click.echo, err=json_path == "-")

"""Training config: dataclasses with defaults, TOML presets that override them, --set on top.

A preset is a TOML file with top-level training keys and a [model] table:

    name = "tiny-cpu"
    batch_size = 8
    [model]
    n_layer = 4

Unknown keys are an error that lists the valid ones. `--set key=value` takes a training key
(`lr=3e-4`) or a model key, bare or dotted (`n_layer=6`, `model.n_layer=6`).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from fwpipe.errors import ConfigError, InputNotFoundError

PACKAGE_CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@dataclass
class ModelConfig:
    """nanoGPT's GPTConfig, same names and defaults (GPT-2 small)."""

    block_size: int = 1024
    vocab_size: int = 50304  # GPT-2's 50257 padded up to a multiple of 64 for efficiency
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = False  # bias in Linears and LayerNorms, like GPT-2; False is a bit better and faster
    # the modern recipe's parts, each a switch so it can be ablated (defaults: nanoGPT's GPT)
    pos_emb: str = "learned"  # learned (wpe table) | rotary (RoPE on q and k, no parameters)
    norm: str = "layernorm"  # layernorm (weight, optional bias) | rmsnorm (no weight, no bias: no parameters)
    qk_norm: bool = False  # RMSNorm (no weight) on each head's q and k before attention
    mlp: str = "gelu"  # gelu | relu2 (ReLU squared)
    tie_embeddings: bool = True  # lm_head shares wte's matrix; False: a separate V x C head
    zero_init_proj: bool = False  # attention and MLP output projections (c_proj) start at zero
    logit_softcap: float = 0.0  # > 0: logits = cap * tanh(logits / cap); 0 = off


@dataclass
class TrainConfig:
    name: str = "custom"
    recipe: str = "nanogpt"  # nanogpt | modern: the defaults under the preset (RECIPES below)
    model: ModelConfig = field(default_factory=ModelConfig)
    # batch: tokens per iteration = batch_size * grad_accum * block_size
    batch_size: int = 12  # micro-batch, sequences per forward pass
    grad_accum: int = 40
    # optimizer: AdamW, cosine schedule with linear warmup and a floor
    lr: float = 6e-4
    min_lr: float = 6e-5
    warmup_iters: int = 2000
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # 0 disables clipping
    # optimizer "adamw": one AdamW for everything at lr (nanoGPT). "muon": torch.optim.Muon at
    # muon_lr for the blocks' 2-D matrices, AdamW for the rest: embeddings at embed_lr, an
    # untied head at head_lr, 1-D parameters at lr (fwpipe.train.recipe.param_groups)
    optimizer: str = "adamw"
    muon_lr: float = 0.02
    muon_momentum: float = 0.95
    embed_lr: float = 0.0  # 0: the same as lr
    head_lr: float = 0.0  # 0: the same as lr
    # schedule "cosine": warmup, cosine to min_lr (nanoGPT). "wsd": warmup, constant, then linear
    # to zero over the last cooldown_frac of the iterations (warmup-stable-decay)
    schedule: str = "cosine"
    cooldown_frac: float = 0.4
    # system
    dtype: str = "auto"  # auto | bf16 | fp16 | fp32
    compile: bool = False
    seed: int = 1337
    # CPU threads for torch's intra-op work (a CPU matmul splits its sums by thread, so this is
    # part of what makes two runs equal to the last bit). 0: torch's choice (OMP_NUM_THREADS,
    # else the physical cores)
    threads: int = 0
    # logging, evaluation, plateau diagnosis
    log_interval: int = 10
    eval_interval: int = 500
    eval_iters: int = 50  # fixed batches per eval, per split
    tensorboard: bool = False  # also write metrics as TensorBoard events into the run directory
    wandb: bool = False  # also log to Weights & Biases, offline (a run under <out>/wandb, sync it yourself)
    plateau_threshold: float = 0.02  # val-loss drop per doubling of tokens (nats) below which we diagnose

    @property
    def tokens_per_iter(self) -> int:
        return self.batch_size * self.grad_accum * self.model.block_size


_DTYPES = ("auto", "bf16", "fp16", "fp32")
_CHOICES = {
    "pos_emb": ("learned", "rotary"),
    "norm": ("layernorm", "rmsnorm"),
    "mlp": ("gelu", "relu2"),
    "optimizer": ("adamw", "muon"),
    "schedule": ("cosine", "wsd"),
}

# A recipe is data: the values it puts under a preset's own keys (a preset or --set still wins).
# "modern" follows the speedrun line of work (modded-nanogpt, Keller Jordan et al. 2024):
# RoPE, RMSNorm, QK-norm, ReLU^2, untied head, zero-init projections, logit soft-cap 30,
# Muon for the hidden matrices, warmup-stable-decay.
RECIPES: dict[str, dict[str, Any]] = {
    "nanogpt": {},
    "modern": {
        "model": {
            "pos_emb": "rotary",
            "norm": "rmsnorm",
            "qk_norm": True,
            "mlp": "relu2",
            "tie_embeddings": False,
            "zero_init_proj": True,
            "logit_softcap": 30.0,
            "dropout": 0.0,
        },
        "optimizer": "muon",
        "schedule": "wsd",
        "cooldown_frac": 0.4,
        "muon_lr": 0.02,
        "muon_momentum": 0.95,
        "weight_decay": 0.0,
        "beta1": 0.8,
        "beta2": 0.95,
    },
}


def _names(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _number(text: str, kind: type, key: str, current: Any) -> int | float:
    """A --set number: digits stay an exact int (seed=2**62+1 keeps its last bits), else a float."""
    text = text.replace("_", "")
    if kind is int:
        try:
            return int(text)
        except ValueError:
            pass
    try:
        return float(text)
    except ValueError as e:
        raise ConfigError(f"{key}={text!r} is not a number", f"write e.g. {key}={current}") from e


def _coerce(value: Any, current: Any, key: str) -> Any:
    """Convert a TOML or --set value to the type of the field's default."""
    kind = type(current)
    if isinstance(value, str) and kind is not str:
        text = value.strip()
        if kind is bool:
            if text.lower() in ("true", "1", "yes", "on"):
                return True
            if text.lower() in ("false", "0", "no", "off"):
                return False
            raise ConfigError(f"{key}={value!r} is not a boolean", "use true or false")
        value = _number(text, kind, key, current) if kind in (int, float) else text
    if kind is bool and not isinstance(value, bool):
        raise ConfigError(f"{key}={value!r} is not a boolean", "use true or false")
    if kind is int:
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or (isinstance(value, float) and not math.isfinite(value))
            or value != int(value)
        ):
            raise ConfigError(f"{key}={value!r} is not a whole number", f"write e.g. {key}={current}")
        return int(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}={value!r} is not a number", f"write e.g. {key}={current}")
        return float(value)
    if kind is str and not isinstance(value, str):
        raise ConfigError(f"{key}={value!r} is not a string", f'write e.g. {key}="{current}"')
    return value


def _apply(obj: Any, values: dict, where: str) -> None:
    valid = _names(type(obj))
    for key, value in values.items():
        if key not in valid:
            _unknown(key, valid, where)
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(
                    f"{where}: {key} must be a table [{key}]", f"valid keys in it: {', '.join(_names(type(current)))}"
                )
            _apply(current, value, f"{where} [{key}]")
        else:
            setattr(obj, key, _coerce(value, current, key))


def _unknown(key: str, valid: list[str], where: str) -> None:
    close = difflib.get_close_matches(key, valid, n=1)
    guess = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(f"{where}: unknown key {key!r}{guess}", f"valid keys are: {', '.join(valid)}")


MAX_INT = 2**63  # torch and numpy take seeds and sizes as signed 64-bit integers


def validate(cfg: TrainConfig) -> TrainConfig:
    """Every value in its range, so that a bad one stops at the plan (also with --dry-run), not
    as a traceback or a NaN loss in the middle of training."""
    m = cfg.model
    fix = "fix the config or the --set value"
    for obj in (cfg, m):
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            if isinstance(v, float) and not math.isfinite(v):
                raise ConfigError(f"{f.name}={v} is not a finite number", fix)
            if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= MAX_INT:
                raise ConfigError(f"{f.name}={v} is too large (the limit is 2**63)", fix)
    positive = {
        "batch_size": cfg.batch_size,
        "grad_accum": cfg.grad_accum,
        "log_interval": cfg.log_interval,
        "eval_interval": cfg.eval_interval,
        "eval_iters": cfg.eval_iters,
        "block_size": m.block_size,
        "vocab_size": m.vocab_size,
        "n_layer": m.n_layer,
        "n_head": m.n_head,
        "n_embd": m.n_embd,
    }
    for key, v in positive.items():
        if v <= 0:
            raise ConfigError(f"{key}={v} must be positive", fix)
    if m.n_embd % m.n_head:
        raise ConfigError(
            f"n_embd={m.n_embd} is not divisible by n_head={m.n_head}", "pick n_embd a multiple of n_head"
        )
    if m.vocab_size < 50257:
        raise ConfigError(f"vocab_size={m.vocab_size} is smaller than GPT-2's 50257 tokens", "use 50257 or 50304")
    if not 0 <= m.dropout < 1:
        raise ConfigError(f"dropout={m.dropout} is not in [0, 1)", "use e.g. 0.0 or 0.1")
    if not (cfg.lr > 0 and 0 <= cfg.min_lr <= cfg.lr):
        raise ConfigError(f"lr={cfg.lr}, min_lr={cfg.min_lr}: need 0 <= min_lr <= lr, lr > 0", "fix lr / min_lr")
    for key in ("beta1", "beta2"):  # AdamW's moment decay rates; 1 would never forget, > 1 diverges
        if not 0 <= getattr(cfg, key) < 1:
            raise ConfigError(f"{key}={getattr(cfg, key)} is not in [0, 1)", "use e.g. beta1=0.9, beta2=0.95")
    for key in ("warmup_iters", "grad_clip", "weight_decay", "seed"):
        if getattr(cfg, key) < 0:
            raise ConfigError(f"{key}={getattr(cfg, key)} is negative", fix)
    if cfg.recipe not in RECIPES:
        raise ConfigError(f"recipe={cfg.recipe!r} is not one of {', '.join(RECIPES)}", "use nanogpt or modern")
    for key, allowed in _CHOICES.items():
        v = getattr(m if hasattr(m, key) else cfg, key)
        if v not in allowed:
            raise ConfigError(f"{key}={v!r} is not one of {', '.join(allowed)}", f"use {allowed[0]} or {allowed[1]}")
    for key in ("muon_lr", "embed_lr", "head_lr", "threads", "logit_softcap"):
        if getattr(m if hasattr(m, key) else cfg, key) < 0:
            raise ConfigError(f"{key}={getattr(m if hasattr(m, key) else cfg, key)} is negative", fix)
    if not 0 <= cfg.cooldown_frac <= 1:
        raise ConfigError(f"cooldown_frac={cfg.cooldown_frac} is not in [0, 1]", "use e.g. 0.4")
    if not 0 <= cfg.muon_momentum < 1:
        raise ConfigError(f"muon_momentum={cfg.muon_momentum} is not in [0, 1)", "use e.g. 0.95")
    if m.pos_emb == "rotary" and (m.n_embd // m.n_head) % 2:
        raise ConfigError(f"rotary needs an even head size, not {m.n_embd // m.n_head}", "pick n_embd / n_head even")
    if cfg.dtype not in _DTYPES:
        raise ConfigError(f"dtype={cfg.dtype!r} is not one of {', '.join(_DTYPES)}", "use auto")
    return cfg


def find_config(name_or_path: str | Path) -> Path:
    """A TOML path as given, or a preset by bare name (`tiny-cpu`) from the packaged configs."""
    path = Path(name_or_path)
    if path.is_file():  # a directory named like a preset (runs/tiny-cpu, a cwd's tiny-cpu/) is not a config
        return path
    packaged = PACKAGE_CONFIGS / f"{path.stem if path.suffix == '.toml' else path.name}.toml"
    if path.parent == Path(".") and packaged.exists():
        return packaged
    names = ", ".join(sorted(p.stem for p in PACKAGE_CONFIGS.glob("*.toml")))
    raise InputNotFoundError(f"{name_or_path}: no such config file or preset", f"pass a .toml path or one of: {names}")


def load_config(name_or_path: str | Path | None = None, overrides: list[str] | dict | None = None) -> TrainConfig:
    """Defaults, then the TOML file (if any), then `key=value` overrides; validated."""
    cfg = TrainConfig()
    data, path = {}, None
    if name_or_path is not None:
        path = find_config(name_or_path)
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML ({e})", "check the file's syntax") from e
    parsed = _parse_overrides(overrides)
    # the recipe goes under everything else: --set recipe=modern, else the preset's, else nanogpt
    recipe = parsed.get("recipe", data.get("recipe", "nanogpt"))
    if recipe not in RECIPES:
        raise ConfigError(f"recipe={recipe!r} is not one of {', '.join(RECIPES)}", "use nanogpt or modern")
    _apply(cfg, RECIPES[recipe], f"recipe {recipe}")
    cfg.recipe = recipe
    if path is not None:
        cfg.name = path.stem
        _apply(cfg, data, str(path))
    for key, value in parsed.items():
        target, field_name = _resolve_key(cfg, key)
        _apply(target, {field_name: value}, "--set")
    return validate(cfg)


def _parse_overrides(overrides: list[str] | dict | None) -> dict:
    if not overrides:
        return {}
    if isinstance(overrides, dict):
        return dict(overrides)
    out = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r} is not key=value", "write e.g. --set lr=3e-4")
        out[key.strip()] = value
    return out


def _resolve_key(cfg: TrainConfig, key: str) -> tuple[Any, str]:
    if key.startswith("model."):
        return cfg.model, key.split(".", 1)[1]
    if key in _names(ModelConfig):
        return cfg.model, key
    if key not in _names(TrainConfig) or key == "model":
        _unknown(key, [k for k in _names(TrainConfig) if k != "model"] + _names(ModelConfig), "--set")
    return cfg, key


def to_dict(cfg: TrainConfig) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(data: dict) -> TrainConfig:
    cfg = TrainConfig()
    _apply(cfg, data, "checkpoint config")
    return validate(cfg)


def to_toml(cfg: TrainConfig) -> str:
    """The resolved config as TOML (saved in the run directory, loadable with --config)."""

    def fmt(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return f'"{v}"'
        return repr(v)

    d = to_dict(cfg)
    model = d.pop("model")
    lines = [f"{k} = {fmt(v)}" for k, v in d.items()] + ["", "[model]"] + [f"{k} = {fmt(v)}" for k, v in model.items()]
    return "\n".join(lines) + "\n"

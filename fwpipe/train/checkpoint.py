"""Checkpoints: tensors and plain values only, written atomically, loaded as data (never code).

A checkpoint is a dict of tensors, dicts, lists, tuples, str, int, float, bool and None, saved
with torch.save and loaded with `weights_only=True`: torch's restricted unpickler refuses any
other object, so a .pt file from elsewhere can at worst fail to load, never run code.
"""

from __future__ import annotations

import errno
import hashlib
import math
import pickle
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fwpipe.atomic import atomic_file
from fwpipe.dataset import Dataset
from fwpipe.errors import ConfigError, DatasetMismatchError, InputFormatError, InputNotFoundError
from fwpipe.train.rundir import BEST, LAST

__all__ = [
    "BEST",
    "LAST",
    "TrainState",
    "check_dataset",
    "config_of",
    "dataset_fingerprint",
    "load",
    "plain",
    "restore",
    "save",
]

ZIP_MAGIC = b"PK\x03\x04"
# what `fwpipe sample` needs, and what `train --resume` needs besides
SAMPLE_KEYS = ("model", "config")
RESUME_KEYS = SAMPLE_KEYS + (
    "optimizer",
    "scaler",
    "loader",
    "rng",
    "iter",
    "budget_tokens",
    "dataset_sha256",
    "best_val_loss",
    "evals",
)


TYPES = {
    "model": dict,
    "config": dict,
    "optimizer": dict,
    "scaler": dict,
    "loader": dict,
    "rng": dict,
    "iter": int,
    "budget_tokens": int,
    "dataset_sha256": str,
    "best_val_loss": (int, float),
    "evals": list,
}


def dataset_fingerprint(ds: Dataset) -> str:
    """The manifest's sha256 for a fwpipe dataset; for nanoGPT / llm.c files (no manifest), a
    hash of every token file's name, size and first and last 1 MiB."""
    if ds.manifest_sha256:
        return ds.manifest_sha256
    h = hashlib.sha256()
    for name in sorted(ds.splits):
        for path in ds.splits[name].paths:
            size = path.stat().st_size
            h.update(f"{name}/{path.name}/{size}".encode())
            with open(path, "rb") as f:
                h.update(f.read(1 << 20))
                f.seek(max(0, size - (1 << 20)))
                h.update(f.read(1 << 20))
    return h.hexdigest()


def plain(obj: Any) -> Any:
    """`obj` with numpy values turned into Python numbers and tensors; anything that
    `weights_only=True` would refuse is a bug here, so it raises TypeError."""
    if isinstance(obj, torch.Tensor) or obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(plain(v) for v in obj)
    raise TypeError(f"a checkpoint holds only tensors and plain values, not {type(obj).__name__}")


def save(path: Path, state: dict[str, Any]) -> None:
    state = plain(state)
    with atomic_file(path, hint="free disk space or pass another --out") as f:
        try:
            torch.save(state, f)
        except RuntimeError as e:  # torch's zip writer reports a failed write (a full disk) as RuntimeError
            cause = e.__cause__ or e.__context__
            if isinstance(cause, OSError):
                raise cause from e
            raise OSError(errno.EIO, f"torch.save failed ({(str(e).strip().splitlines() or ['?'])[0][:120]})") from e


def load(
    path: Path, map_location: str = "cpu", *, need: tuple[str, ...] = RESUME_KEYS, missing_hint: str | None = None
) -> dict[str, Any]:
    """A checkpoint's dict, read as data. Raises a one-line FwpipeError for a missing, truncated,
    foreign or code-carrying file."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(
            f"{path}: no checkpoint there",
            missing_hint or "start the run without --resume, or pass the --out of an earlier run",
        )
    hint = "pass a last.pt or best.pt written by fwpipe train"
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise InputFormatError(f"{path}: cannot read it ({e.strerror or e})", hint) from e
    if head != ZIP_MAGIC:  # torch.save has written zip archives since torch 1.6; anything else is not ours
        what = "empty" if not head else "not a zip archive as torch.save writes"
        raise InputFormatError(f"{path}: not a readable checkpoint ({what})", hint)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols on the way to refusing
            ck = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's restricted unpickler met an object other than tensors and plain values
        why = [line.strip() for line in str(e).splitlines() if "GLOBAL" in line or "Unsupported" in line]
        raise InputFormatError(
            f"{path}: refused to load: it holds Python objects, not only tensors and plain values "
            f"(a checkpoint is data, never code){': ' + why[0][:160] if why else ''}",
            hint,
        ) from e
    except Exception as e:  # noqa: BLE001 - torch raises RuntimeError, EOFError, ValueError, ... for a damaged file
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise InputFormatError(f"{path}: not a readable checkpoint (damaged or truncated: {first})", hint) from e
    if not isinstance(ck, dict) or any(k not in ck for k in need):
        have = ", ".join(sorted(map(str, ck))[:12]) if isinstance(ck, dict) else f"a {type(ck).__name__}"
        raise InputFormatError(
            f"{path}: not a fwpipe checkpoint (it needs the keys {', '.join(need)}; it holds {have or 'nothing'})", hint
        )
    for key, kinds in TYPES.items():
        if key in need and (not isinstance(ck[key], kinds) or isinstance(ck[key], bool)):
            raise InputFormatError(f"{path}: not a fwpipe checkpoint ({key} is a {type(ck[key]).__name__})", hint)
    return ck


def config_of(ck: dict[str, Any], path: Path):
    """The TrainConfig a checkpoint was trained with (validated like a TOML preset)."""
    from fwpipe.train.config import from_dict

    try:
        cfg = from_dict(ck["config"])  # load() checked that it is a dict
    except ConfigError as e:
        raise InputFormatError(
            f"{path}: the config inside is not valid ({e.message})", "pass a last.pt or best.pt written by fwpipe train"
        ) from e
    _check_shapes(ck, cfg, path)
    return cfg


def _check_shapes(ck: dict[str, Any], cfg, path: Path) -> None:
    """Every tensor the config's model has must be in the file with that shape, before any model
    is built: a 2 KB file whose config says n_embd=32768 would otherwise allocate GBs first.
    The model is built on the meta device (shapes only, no memory)."""
    from fwpipe.train.model import GPT

    with torch.device("meta"):
        want = {k: tuple(v.shape) for k, v in GPT(cfg.model).state_dict().items()}
    got = ck["model"]
    for name, shape in want.items():
        t = got.get(name)
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != shape:
            have = (
                "missing"
                if t is None
                else f"{tuple(t.shape)}"
                if isinstance(t, torch.Tensor)
                else f"a {type(t).__name__}"
            )
            raise InputFormatError(
                f"{path}: its model state does not fit its config ({name}: the config says {shape}, the file holds {have})",
                "pass a last.pt or best.pt written by fwpipe train (the config and the weights disagree)",
            )


def restore(what: str, path: Path, load_state) -> None:
    """Call `load_state()` (a load_state_dict); a state that does not fit becomes one error line."""
    try:
        load_state()
    except (KeyError, ValueError, TypeError, RuntimeError, IndexError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise InputFormatError(
            f"{path}: its {what} state does not fit this model ({first})",
            "pass a last.pt or best.pt written by fwpipe train",
        ) from e


def check_dataset(ckpt: dict[str, Any], fingerprint: str, data_path: Path) -> None:
    if ckpt.get("dataset_sha256") != fingerprint:
        raise DatasetMismatchError(
            f"the checkpoint was trained on another dataset (sha256 {str(ckpt.get('dataset_sha256'))[:12]}..., "
            f"{data_path} is {fingerprint[:12]}...)",
            f"resume with --data {ckpt.get('dataset_path', 'the original dataset')}, or start a new run with another --out",
        )


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        # this process's GPU only: get_rng_state_all() would open a context on every GPU of the
        # machine from rank 0, and its list would not fit a resume under another world size
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if isinstance(cuda, (list, tuple)):  # a checkpoint written before: one state per GPU
        cuda = cuda[0] if cuda else None
    if cuda is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(cuda)


@dataclass
class TrainState:
    """Everything a run needs to go on exactly where it stopped, captured and restored here, in
    one place: the model, every optimizer (AdamW, Muon), the grad scaler, the data position, the
    RNG states, the iteration (which is the schedule's position) and the eval history.

    capture() takes the loader and RNG state at the start of the iteration being saved when
    given (an interrupt inside an iteration saves the state from before it)."""

    model: torch.nn.Module
    optimizers: dict[str, torch.optim.Optimizer]
    scaler: Any  # torch.amp.GradScaler
    loader: Any  # fwpipe.train.data.TrainLoader
    iter: int = 0
    best_val: float = math.inf
    evals: list = field(default_factory=list)

    def capture(self, loader_state: dict | None = None, rng: dict | None = None) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": {k: o.state_dict() for k, o in self.optimizers.items()},
            "scaler": self.scaler.state_dict(),
            "loader": loader_state or self.loader.state_dict(),
            "rng": rng or rng_state(),
            "iter": self.iter,
            "best_val_loss": self.best_val,
            "evals": self.evals,
        }

    def restore(self, ck: dict[str, Any], path: Path) -> None:
        opt = ck["optimizer"]
        if "param_groups" in opt:  # a checkpoint from before the recipes: AdamW's state dict itself
            opt = {"adamw": opt}
        if set(opt) != set(self.optimizers):
            raise InputFormatError(
                f"{path}: it holds the optimizers {', '.join(sorted(opt))}, this run has "
                f"{', '.join(sorted(self.optimizers))}",
                "pass a last.pt or best.pt written by fwpipe train",
            )
        restore("model", path, lambda: self.model.load_state_dict(ck["model"]))
        for name, o in self.optimizers.items():
            restore(f"{name} optimizer", path, lambda o=o, name=name: o.load_state_dict(opt[name]))
        restore("grad scaler", path, lambda: self.scaler.load_state_dict(ck["scaler"]))
        restore("data loader", path, lambda: self.loader.load_state_dict(ck["loader"]))
        restore("random number generator", path, lambda: set_rng_state(ck["rng"]))
        self.iter, self.best_val, self.evals = ck["iter"], ck["best_val_loss"], ck["evals"]

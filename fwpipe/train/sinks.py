"""Optional mirrors of the metrics: TensorBoard event files and an offline Weights & Biases run.

metrics.jsonl stays the source of truth (resume trims and rewrites it); these only copy each
train and eval record as scalars, under the run directory: <out>/tensorboard/ and <out>/wandb/.
Both are optional dependencies, imported only when asked for.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fwpipe.errors import ConfigError

# the record fields copied as scalars, by record kind (the tag is kind/field)
FIELDS = {
    "train": ("loss", "lr", "grad_norm", "tokens_per_s", "mfu"),
    "eval": ("val_loss", "train_loss", "hellaswag_acc_norm"),
}


def scalars(r: dict[str, Any]) -> dict[str, float]:
    return {
        f"{r['kind']}/{k}": float(r[k]) for k in FIELDS.get(r.get("kind"), ()) if isinstance(r.get(k), (int, float))
    }


class TensorBoard:
    def __init__(self, out: Path, plan: dict[str, Any]):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise ConfigError(f"--tensorboard needs the tensorboard package ({e})", "pip install tensorboard") from e
        self.writer = SummaryWriter(log_dir=str(out / "tensorboard"))
        c = plan["config"]
        self.writer.add_text(
            "run", f"recipe {c['recipe']}, {plan['params_total']:,} params, {plan['iterations']:,} iterations"
        )

    def write(self, r: dict[str, Any]) -> None:
        for tag, v in scalars(r).items():
            self.writer.add_scalar(tag, v, global_step=r["tokens"])  # x axis: tokens, as in loss.png

    def close(self) -> None:
        self.writer.close()


class Wandb:
    def __init__(self, out: Path, plan: dict[str, Any]):
        try:
            import wandb
        except ImportError as e:
            raise ConfigError(f"--wandb needs the wandb package ({e})", "pip install wandb") from e
        (out / "wandb").mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("WANDB_SILENT", "true")
        c = plan["config"]
        self.run = wandb.init(
            project="fwpipe",
            name=c["name"],
            dir=str(out),
            mode="offline",
            config=c,
            settings=wandb.Settings(console="off", x_disable_stats=True),
        )

    def write(self, r: dict[str, Any]) -> None:
        values = scalars(r)
        if values:
            self.run.log({**values, "tokens": r["tokens"]}, step=r["iter"])

    def close(self) -> None:
        self.run.finish()


def open_sinks(out: Path, cfg: Any, plan: dict[str, Any]) -> list:
    sinks: list = []
    if cfg.tensorboard:
        sinks.append(TensorBoard(Path(out), plan))
    if cfg.wandb:
        sinks.append(Wandb(Path(out), plan))
    return sinks

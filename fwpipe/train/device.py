"""Which device to train on, what it is called, how much memory it has, which precision it gets."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from fwpipe.errors import ConfigError
from fwpipe.train import require_torch

Precision = Literal["bf16", "fp16", "fp32"]


@dataclass
class DeviceInfo:
    type: str  # cuda | mps | cpu
    name: str  # "NVIDIA GeForce RTX 4070", or "cpu (2 threads)"
    memory_bytes: int | None
    precision: Precision
    index: int = 0  # the GPU of this process (torchrun's LOCAL_RANK)

    @property
    def torch_device(self) -> str:
        return f"cuda:{self.index}" if self.type == "cuda" else self.type


def _cpu_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _cpu_grad_scaler(torch) -> bool:
    """fp16 needs a GradScaler; torch has one for CPU since 2.3 (it runs the same unscale/skip logic as CUDA's)."""
    try:
        torch.amp.GradScaler("cpu")
    except (AttributeError, TypeError, ValueError, RuntimeError):
        return False
    return True


def resolve(choice: str = "auto", dtype: str = "auto", index: int = 0) -> DeviceInfo:
    """The device to use (GPU `index` on CUDA); a requested device that is not there is a ConfigError."""
    torch = require_torch()
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if choice == "auto":
        choice = "cuda" if cuda else "mps" if mps else "cpu"
    if choice == "cuda" and not cuda:
        raise ConfigError(
            "--device cuda: no CUDA GPU is visible to PyTorch"
            + ("" if torch.version.cuda else " (this PyTorch is a CPU-only build)"),
            "use --device auto or cpu, or install a CUDA build of torch",
        )
    if choice == "mps" and not mps:
        raise ConfigError("--device mps: Apple's Metal backend is not available", "use --device auto or cpu")
    if choice not in ("cuda", "mps", "cpu"):
        raise ConfigError(f"--device {choice}: unknown device", "use auto, cuda, mps or cpu")
    if choice == "cuda":
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"process {index} needs GPU {index}, but {torch.cuda.device_count()} are visible",
                "pass torchrun --nproc_per_node at most the number of GPUs",
            )
        props = torch.cuda.get_device_properties(index)
        name, memory = props.name, int(props.total_memory)
        auto: Precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    elif choice == "mps":
        name, memory, auto = "Apple MPS", _cpu_memory(), "fp32"  # unified memory; fp32 is the safe choice there
    else:
        name, memory, auto = f"cpu ({torch.get_num_threads()} threads)", _cpu_memory(), "fp32"
    precision: Precision = auto if dtype == "auto" else dtype  # type: ignore[assignment]
    if choice == "cpu" and precision == "fp16" and not _cpu_grad_scaler(torch):
        raise ConfigError(
            "dtype fp16 on a CPU needs torch.amp.GradScaler('cpu') (torch >= 2.3)", "use dtype=fp32 or bf16 on CPU"
        )
    if choice == "cuda" and precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"{name} has no bf16 support", "use dtype=fp16 (with a GradScaler) or auto")
    return DeviceInfo(choice, name, memory, precision, index if choice == "cuda" else 0)

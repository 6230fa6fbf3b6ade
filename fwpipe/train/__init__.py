"""The train stage: a GPT trained to a token budget, with exact epochs, true MFU and a diagnosis.

torch is optional for fwpipe as a whole: config, plan and mfu import without it (the diagnosis lives in fwpipe.diagnosis); the
modules that need it (model, data, loop, checkpoint, sample, probe) are imported only by `fwpipe train`.
"""

from __future__ import annotations

from fwpipe.errors import DependencyError


def require_torch():
    """Import torch, or raise a one-line DependencyError that says how to install it."""
    try:
        import torch
    except ImportError as e:
        raise DependencyError("fwpipe train needs PyTorch, which is not installed",
                              "pip install torch (or pip install 'fwpipe[train]'); on a GPU pick the CUDA build from pytorch.org") from e
    return torch

"""The train stage: a GPT trained to a token budget, with exact epochs, true MFU and a diagnosis.

    config.py plan.py  the config (presets in fwpipe/configs/) and the plan printed first
    loop.py            plan_run() and train(): the run; events.py: the lines the CLI prints
    model.py data.py checkpoint.py rundir.py dist.py device.py mfu.py probe.py
                       nanoGPT's GPT, the epoch-exact loader, checkpoints, the run directory,
                       torchrun DDP, device and precision, MFU, `diagnose --probe`'s branches
    sample.py hellaswag.py html.py plot.py
                       `fwpipe sample`, `fwpipe eval` (and --hellaswag), `fwpipe report`, loss.png

torch is optional for fwpipe as a whole: config, plan, mfu and events import without
it; the modules that need it (model, data, loop, checkpoint, sample) are imported only by the
commands that train or load a model. May import fwpipe.diagnosis (the causes of a stall) and the ground floor
(dataset, budget, tokenizer, htmlpage, ...); never another stage (the dataset directory is its only input) and never the CLI.
"""

from __future__ import annotations

from fwpipe.errors import DependencyError


def require_torch():
    """Import torch, or raise a one-line DependencyError that says how to install it."""
    try:
        import torch
    except ImportError as e:
        raise DependencyError(
            "fwpipe train needs PyTorch, which is not installed",
            "pip install torch (or pip install 'fwpipe[train]'); on a GPU pick the CUDA build from pytorch.org",
        ) from e
    return torch

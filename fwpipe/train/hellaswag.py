"""HellaSwag acc_norm the way llm.c and build-nanogpt score it, on a file the user downloaded.

The file is the published hellaswag_val.jsonl (10,042 lines): one JSON object per line with
"ctx" (the context), "endings" (4 candidate continuations) and "label" (the right one's index).
Nothing is downloaded here. Each ending is tokenized as " " + ending after the context; the model
scores it by its cross-entropy on the ending's tokens only, averaged per token (the "norm" in
acc_norm), and the ending with the lowest loss is its answer. GPT-2 124M scores about 29.5%,
random guessing 25%. A context too long for the model's block_size loses its first tokens.
Under DDP each rank scores every size-th example and the counts are summed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from fwpipe.errors import InputFormatError, InputNotFoundError
from fwpipe.fmt import pct
from fwpipe.train import dist

log = logging.getLogger(__name__)

HINT = 'pass the published hellaswag_val.jsonl (lines of {"ctx": ..., "endings": [4 strings], "label": 0-3})'


MAX_BYTES = 256 << 20  # the largest file read: HellaSwag's val split is ~11 MB, train ~47 MB


@dataclass(frozen=True)
class Example:
    ctx: str
    endings: tuple[str, str, str, str]
    label: int


def load(path: str | Path) -> list[Example]:
    """The examples of a HellaSwag jsonl file; a line that is not one is a one-line InputFormatError."""
    path = Path(path)
    try:
        if path.exists() and not path.is_file():  # /dev/zero, a FIFO: reading would never end (or never start)
            raise InputFormatError(f"{path}: not a regular file", HINT)
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)  # bounded: hellaswag_val.jsonl is ~11 MB
        if len(raw) > MAX_BYTES:
            raise InputFormatError(f"{path}: larger than {MAX_BYTES >> 20} MB, not a HellaSwag file", HINT)
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise InputNotFoundError(
            f"{path}: no such HellaSwag file",
            "download hellaswag_val.jsonl (github.com/rowanz/hellaswag, data/) and pass its path",
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputFormatError(f"{path}: cannot read it as UTF-8 text ({e})", HINT) from e
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            d = json.loads(line)
        except ValueError as e:
            raise InputFormatError(f"{where}: not a JSON object ({e})", HINT) from e
        if not isinstance(d, dict):
            raise InputFormatError(f"{where}: not a JSON object", HINT)
        ctx, endings, label = d.get("ctx"), d.get("endings"), d.get("label")
        if not isinstance(ctx, str) or not ctx:
            raise InputFormatError(f'{where}: "ctx" is missing or not a string', HINT)
        if not isinstance(endings, list) or len(endings) != 4 or not all(isinstance(e, str) and e for e in endings):
            raise InputFormatError(f'{where}: "endings" is not a list of 4 non-empty strings', HINT)
        if isinstance(label, str) and label.isdigit():
            label = int(label)  # some copies store it as "2"
        if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label < 4:
            raise InputFormatError(f'{where}: "label" is not 0, 1, 2 or 3', HINT)
        out.append(Example(ctx, tuple(endings), label))
    if not out:
        raise InputFormatError(f"{path}: holds no examples", HINT)
    return out


def render(ex: Example, block_size: int):
    """(tokens, mask) as (4, L) int64 tensors: context then ending, mask 1 on the ending's tokens, 0-padded."""
    import torch

    from fwpipe.tokenizer import encode

    ctx = encode(ex.ctx).tolist()
    rows, masks = [], []
    for ending in ex.endings:
        end = encode(" " + ending).tolist()  # GPT-2 BPE: the space belongs to the ending's first token
        end = end[: block_size - 1]
        keep = ctx[-(block_size - len(end)) :]  # at least one token: the ending's first token is predicted from it
        rows.append(keep + end)
        masks.append([0] * len(keep) + [1] * len(end))
    L = max(map(len, rows))
    tokens = torch.zeros((4, L), dtype=torch.long)
    mask = torch.zeros((4, L), dtype=torch.long)
    for i, (r, m) in enumerate(zip(rows, masks)):
        tokens[i, : len(r)] = torch.tensor(r)
        mask[i, : len(m)] = torch.tensor(m)
    return tokens, mask


def ending_losses(model, ex: Example, device: str, ctx=None):
    """The mean cross-entropy of each of the 4 endings' tokens (a float32 tensor of 4)."""
    import contextlib

    import torch
    import torch.nn.functional as F

    tokens, mask = render(ex, model.config.block_size)
    tokens, mask = tokens.to(device), mask.to(device)
    # the targets mark the ending's tokens (-1 elsewhere) so that the model returns every position's logits
    targets = torch.where(mask[:, 1:] == 1, tokens[:, 1:], -1)
    with torch.no_grad(), ctx or contextlib.nullcontext():
        logits, _ = model(tokens[:, :-1], targets)
    per_token = F.cross_entropy(logits.float().transpose(1, 2), tokens[:, 1:], reduction="none")  # (4, L-1)
    m = mask[:, 1:].float()
    return (per_token * m).sum(1) / m.sum(1)


def counts(model, examples: list[Example], device: str, ctx=None, world: dist.World = dist.World()) -> tuple[int, int]:
    """(correct, total) over this rank's share of the examples (every world.size-th one)."""
    was_training = model.training
    model.eval()
    correct = total = 0
    for ex in examples[world.rank :: world.size]:
        correct += int(int(ending_losses(model, ex, device, ctx).argmin()) == ex.label)
        total += 1
    model.train(was_training)
    return correct, total


def evaluate(model, examples: list[Example], device: str, ctx=None, world: dist.World = dist.World()) -> dict:
    """acc_norm over all examples (summed over the ranks under DDP)."""
    correct, total = dist.all_sum(world, list(counts(model, examples, device, ctx, world)), device)
    correct, total = int(correct), int(total)
    return {"hellaswag_acc_norm": correct / total, "hellaswag_correct": correct, "hellaswag_total": total}


def score_checkpoint(checkpoint: str | Path, path: str | Path, device: str = "auto") -> dict:
    """`fwpipe eval`: a checkpoint's (a .pt file, or a run directory's best.pt) acc_norm on the
    HellaSwag file at `path`, with both paths in the result. The file is read before the model
    is loaded, so a bad file fails fast."""
    from fwpipe.train.device import resolve
    from fwpipe.train.sample import load_model

    examples = load(path)
    dev = resolve(device, "fp32")
    model, _ = load_model(checkpoint, dev.torch_device)
    return {"checkpoint": str(checkpoint), "hellaswag": str(path), **evaluate(model, examples, dev.torch_device)}


def format_score(r: dict) -> str:
    """The one line `fwpipe eval` prints."""
    return f"hellaswag acc_norm {pct(r['hellaswag_acc_norm'])} ({r['hellaswag_correct']:,}/{r['hellaswag_total']:,}) on {r['hellaswag']}"

"""Text from a checkpoint: load the model, continue a prompt, decode with GPT-2 BPE."""

from __future__ import annotations

from pathlib import Path

import torch

from fwpipe.errors import InputFormatError
from fwpipe.tokenizer import EOT, VOCAB_SIZE, encode, get_encoding
from fwpipe.train import checkpoint
from fwpipe.train.device import resolve
from fwpipe.train.model import GPT


def load_model(path: str | Path, device: str = "cpu") -> tuple[GPT, dict]:
    """The GPT of a checkpoint file, or of a run directory's best.pt (else last.pt), in eval mode."""
    path = Path(path)
    if path.is_dir():
        path = path / checkpoint.BEST if (path / checkpoint.BEST).exists() else path / checkpoint.LAST
    ck = checkpoint.load(
        path,
        map_location=device,
        need=checkpoint.SAMPLE_KEYS,
        missing_hint="pass a .pt file, or a run directory of fwpipe train (it holds best.pt or last.pt)",
    )
    cfg = checkpoint.config_of(ck, path)
    model = GPT(cfg.model)
    checkpoint.restore("model", path, lambda: model.load_state_dict(ck["model"]))
    if not all(torch.isfinite(p).all() for p in model.parameters()):
        raise InputFormatError(
            f"{path}: the weights hold NaN or inf (the run diverged before this checkpoint)",
            "sample an earlier checkpoint, or train again with a lower lr",
        )
    return model.to(device).eval(), ck


def sample(
    path: str | Path,
    prompt: str = "",
    *,
    max_new_tokens: int = 200,
    num_samples: int = 1,
    temperature: float = 0.8,
    top_k: int | None = 200,
    seed: int = 1337,
    device: str = "auto",
) -> list[str]:
    """num_samples continuations of the prompt (an empty prompt starts from the EOT token)."""
    dev = resolve(device, "fp32")
    model, _ = load_model(path, dev.torch_device)
    ids = [EOT] + encode(prompt).tolist()
    x = torch.tensor([ids] * num_samples, dtype=torch.long, device=dev.torch_device)  # (num_samples, t)
    gen = torch.Generator(device=dev.torch_device).manual_seed(seed)
    # the padded vocabulary (50304) has ids the tokenizer cannot decode: never sample them
    out = model.generate(x, max_new_tokens, temperature=temperature, top_k=top_k, generator=gen, n_valid=VOCAB_SIZE)
    enc = get_encoding()
    texts = []
    for row in out.tolist():
        new = row[len(ids) :]
        if EOT in new:
            new = new[: new.index(EOT)]  # a document ends at the next EOT
        texts.append(prompt + enc.decode(new))
    return texts

import math

import pytest
import torch

from fwpipe.train.config import ModelConfig, load_config
from fwpipe.train.model import GPT
from fwpipe.train.plan import param_counts


def nanogpt_count(n_layer, n_embd, vocab_size, block_size, bias):
    """nanoGPT's parameter count written out by hand, per module, for the same config."""
    C = n_embd
    attn = 3 * C * C + C * C + (3 * C + C if bias else 0)
    mlp = 4 * C * C + 4 * C * C + (4 * C + C if bias else 0)
    lns = 2 * (C + (C if bias else 0))
    total = vocab_size * C + block_size * C + n_layer * (attn + mlp + lns) + C + (C if bias else 0)
    return total, total - block_size * C  # nanoGPT's get_num_params() leaves out wpe only


def test_seed_config_is_40_56m_like_nanogpt():
    m = load_config("rtx4070-40m").model
    assert param_counts(m) == nanogpt_count(12, 384, 50304, 1024, False)
    assert param_counts(m)[1] == 40_560_000  # 12 * (12 * 384^2 + 2 * 384) + 50304 * 384 + 384


@pytest.mark.parametrize(
    "cfg",
    [
        ModelConfig(n_layer=2, n_head=2, n_embd=64, block_size=64, bias=False),
        ModelConfig(n_layer=3, n_head=4, n_embd=96, block_size=32, vocab_size=50257, bias=True, dropout=0.1),
    ],
)
def test_model_matches_the_arithmetic(cfg):
    model = GPT(cfg)
    assert (model.get_num_params(non_embedding=False), model.get_num_params()) == param_counts(cfg)
    assert param_counts(cfg) == nanogpt_count(cfg.n_layer, cfg.n_embd, cfg.vocab_size, cfg.block_size, cfg.bias)
    assert model.lm_head.weight is model.transformer.wte.weight  # tied


def test_gpt2_small_matches_nanogpt_report():
    # nanoGPT prints "number of parameters: 123.65M" for GPT-2 small (vocab 50257, bias=True)
    total, non_emb = param_counts(ModelConfig(vocab_size=50257, bias=True))
    assert round(non_emb / 1e6, 2) == 123.65
    assert total == 124_439_808  # the GPT-2 small checkpoint's size


def test_forward_shapes_and_initial_loss():
    torch.manual_seed(0)
    cfg = ModelConfig(n_layer=2, n_head=2, n_embd=64, block_size=16)
    model = GPT(cfg)
    x, y = torch.randint(0, 50257, (2, 3, 16))
    logits, loss = model(x, y)
    assert logits.shape == (3, 16, cfg.vocab_size)
    assert abs(loss.item() - math.log(cfg.vocab_size)) < 0.1  # GPT-2 init predicts ~uniformly
    logits, loss = model(x)
    assert logits.shape == (3, 1, cfg.vocab_size) and loss is None
    # scaled init of the residual projections
    std = model.transformer.h[0].mlp.c_proj.weight.std().item()
    assert abs(std - 0.02 / math.sqrt(2 * cfg.n_layer)) < 0.002
    out = model.generate(x[:1, :4], 5, top_k=10, n_valid=50257)
    assert out.shape == (1, 9) and int(out.max()) < 50257
    with pytest.raises(ValueError):
        model(torch.zeros((1, 17), dtype=torch.long))

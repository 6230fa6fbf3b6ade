import math

import pytest

from fwpipe.errors import BudgetError
from fwpipe.train.config import load_config
from fwpipe.train.mfu import flops_per_token
from fwpipe.train.plan import format_plan, make_plan

SEED_BUDGET = 7_600_000_000


def test_seed_plan_by_hand():
    cfg = load_config("rtx4070-40m")
    unique = 2_000_000_000
    p = make_plan(cfg, SEED_BUDGET, unique)
    assert p["params_non_embedding"] == 40_560_000
    assert p["params_total"] == 40_560_000 + 1024 * 384
    assert p["tokens_per_iter"] == 16 * 32 * 1024 == 524_288
    assert p["iterations"] == math.ceil(7.6e9 / 524_288) == 14_496
    assert p["epochs"] == pytest.approx(3.8)
    assert p["effective_tokens"] == pytest.approx(
        7.12e9, rel=1e-3
    )  # the README's table: 2.0B unique -> 7.12B effective
    assert p["tokens_per_param"] == pytest.approx(187.4, rel=1e-3)  # ~187 vs Chinchilla's 20
    # C = 6 N D = 1.85e18 FLOPs -> ~124M params on ~2.5B tokens at Chinchilla's 20 tokens/param
    assert p["compute_flops"] == pytest.approx(1.8495e18, rel=1e-4)
    assert p["optimal_params"] == pytest.approx(124.1e6, rel=0.01)
    assert p["optimal_tokens"] == pytest.approx(2.48e9, rel=0.01)
    lt = p["loss_trend"]  # 40.56M params is under the fit's 70M: shown, marked extrapolated
    assert lt["range"] == "extrapolated" and "70M" in lt["why"]
    assert lt["loss"] == pytest.approx(3.43, abs=0.005)  # the README's table, 2.0B unique tokens
    assert "Besiroglu" in lt["note"] and "not a prediction" in lt["note"]
    rows = {r["row"]: r for r in p["what_if"]}
    assert rows["as is"]["epochs"] == pytest.approx(3.8) and rows["4x unique data"]["epochs"] == pytest.approx(0.95)
    assert rows["compute-optimal model for the same compute"]["params"] == pytest.approx(p["optimal_params"])
    assert (
        p["flops_per_token"] == 299_983_104
    )  # 6 x 40.56M + 12 x 12 layers x 12 heads x 32 x 1024 (nanoGPT's estimate_mfu)
    assert p["warnings"] == []
    text = "\n".join(format_plan(p))
    assert "14,496 iterations" in text and "40.56M" in text


def test_more_than_4_epochs_warns_with_numbers():
    p = make_plan(load_config("rtx4070-40m"), SEED_BUDGET, 760_000_000)
    assert p["epochs"] == pytest.approx(10.0) and p["verdict"] == "diminishing"
    assert len(p["warnings"]) == 1 and "10 epochs" in p["warnings"][0] and "1.9B" in p["warnings"][0]


def test_more_than_16_epochs_refuses_unless_allowed():
    cfg = load_config("rtx4070-40m")
    with pytest.raises(BudgetError) as e:
        make_plan(cfg, SEED_BUDGET, 300_000_000)
    assert "25.3 epochs" in e.value.message and "--allow-repeats" in e.value.hint
    assert (
        e.value.plan["epochs"] == pytest.approx(25.33, abs=0.01)
        and e.value.plan["refusal"]["message"] == e.value.message
    )
    p = make_plan(cfg, SEED_BUDGET, 300_000_000, allow_repeats=True)
    assert p["verdict"] == "wasted" and p["warnings"]


def test_budget_smaller_than_one_iteration():
    with pytest.raises(BudgetError) as e:
        make_plan(load_config("rtx4070-40m"), 500_000, 10**9)
    assert "524,288" in e.value.message


def test_memory_estimate_against_device():
    cfg = load_config("rtx4070-40m")
    p = make_plan(
        cfg, SEED_BUDGET, 2 * 10**9, device={"name": "RTX 4070", "memory_bytes": 12 * 2**30, "precision": "bf16"}
    )
    mem = p["memory"]
    assert mem["weights"] + mem["grads"] + mem["optimizer"] == 16 * p["params_total"]
    assert 4 * 2**30 < mem["total"] < 12 * 2**30  # the seed's run fits a 12 GB card
    small = make_plan(cfg, SEED_BUDGET, 2 * 10**9, device={"name": "x", "memory_bytes": 4 * 2**30, "precision": "bf16"})
    assert any("batch_size" in w for w in small["warnings"])


def test_flops_per_token_of_gpt2_small_is_nanogpts_published_count():
    """nanoGPT's transformer_sizing.ipynb, GPT-2 124M (block 1024, vocab 50257, no bias): 124,337,664
    parameters ("expected: 124337664", the count PyTorch reports), and "palm_flops: 879894724608"
    per 1024-token sequence, forward and backward, with every parameter in N. nanoGPT's own MFU
    (model.py estimate_mfu) takes N = get_num_params(), the position embeddings left out: that
    is 875,062,886,400, the count fwpipe's MFU uses."""
    from fwpipe.train.config import ModelConfig
    from fwpipe.train.plan import param_counts

    m = ModelConfig(block_size=1024, vocab_size=50257, n_layer=12, n_head=12, n_embd=768, bias=False)
    total, non_emb = param_counts(m)
    assert total == 124_337_664
    assert flops_per_token(m, non_emb) * 1024 == 875_062_886_400
    assert flops_per_token(m, total) * 1024 == 879_894_724_608  # the notebook's printed palm_flops

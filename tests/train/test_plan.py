import math

import pytest

from fwpipe import budget
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
    assert p["effective_tokens"] == pytest.approx(budget.effective_tokens(SEED_BUDGET, unique))
    assert p["tokens_per_param"] == pytest.approx(7.6e9 / 40.56e6)  # ~187 vs Chinchilla's 20
    # C = 6 * N * B = 1.85e18 FLOPs -> N = sqrt(C / 120) ~ 124M params on ~2.5B tokens
    assert p["compute_flops"] == pytest.approx(6 * 40.56e6 * 7.6e9)
    assert p["optimal_params"] == pytest.approx(124.1e6, rel=0.01)
    assert p["optimal_tokens"] == pytest.approx(2.48e9, rel=0.01)
    ch = p["chinchilla_loss"]
    assert ch["this_run"] == pytest.approx(1.69 + 406.4 / 40.56e6**0.34 + 410.7 / p["effective_tokens"] ** 0.28)
    assert "another" in ch["note"] or "not a prediction" in ch["note"]
    assert p["flops_per_token"] == 6 * 40_560_000 + 12 * 12 * 12 * 32 * 1024
    assert p["warnings"] == []
    text = "\n".join(format_plan(p))
    assert "14,496 iterations" in text and "40.56M" in text


def test_more_than_4_epochs_warns_with_numbers():
    p = make_plan(load_config("rtx4070-40m"), SEED_BUDGET, 760_000_000)
    assert p["epochs"] == pytest.approx(10.0) and p["verdict"] == "diminishing"
    assert len(p["warnings"]) == 1 and "10.0 epochs" in p["warnings"][0] and "1.9B" in p["warnings"][0]


def test_more_than_16_epochs_refuses_unless_allowed():
    cfg = load_config("rtx4070-40m")
    with pytest.raises(BudgetError) as e:
        make_plan(cfg, SEED_BUDGET, 300_000_000)
    assert "25.3 epochs" in e.value.message and "--allow-repeats" in e.value.hint
    p = make_plan(cfg, SEED_BUDGET, 300_000_000, allow_repeats=True)
    assert p["verdict"] == "wasted" and p["warnings"]


def test_budget_smaller_than_one_iteration():
    with pytest.raises(BudgetError) as e:
        make_plan(load_config("rtx4070-40m"), 500_000, 10**9)
    assert "524,288" in e.value.message


def test_memory_estimate_against_device():
    cfg = load_config("rtx4070-40m")
    p = make_plan(cfg, SEED_BUDGET, 2 * 10**9, device={"name": "RTX 4070", "memory_bytes": 12 * 2**30, "precision": "bf16"})
    mem = p["memory"]
    assert mem["weights"] + mem["grads"] + mem["optimizer"] == 16 * p["params_total"]
    assert 4 * 2**30 < mem["total"] < 12 * 2**30  # the seed's run fits a 12 GB card
    small = make_plan(cfg, SEED_BUDGET, 2 * 10**9, device={"name": "x", "memory_bytes": 4 * 2**30, "precision": "bf16"})
    assert any("batch_size" in w for w in small["warnings"])


def test_flops_per_token_is_nanogpts():
    m = load_config("gpt2-124m").model
    n = 85_000_000
    assert flops_per_token(m, n) == 6 * n + 12 * m.n_layer * m.n_head * (m.n_embd // m.n_head) * m.block_size

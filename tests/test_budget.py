"""fwpipe.budget against published figures, not against its own formulas.

Sources:
  Hoffmann et al. 2022, "Training Compute-Optimal Large Language Models" (Chinchilla), Table 3:
    estimated compute-optimal FLOPs and tokens per model size (approach 1).
  Muennighoff et al. 2023, "Scaling Data-Constrained Language Models": the fitted R*_D = 15.4,
    the abstract's "up to 4 epochs of repeated data yields negligible changes to loss compared to
    having unique data", and effective data that saturates at U_D + U_D R*_D as repeats grow.
  README.md, "What the numbers say for the seed's run": fwpipe's own published table.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fwpipe import budget as B
from fwpipe.diagnosis.trend import fit_loss

# Hoffmann et al. 2022, Table 3, the rows in fwpipe's range: (parameters, FLOPs, tokens)
CHINCHILLA_TABLE_3 = [(400e6, 1.92e19, 8.0e9), (1e9, 1.21e20, 20.2e9), (10e9, 1.23e22, 205.1e9)]


@pytest.mark.parametrize("params,flops,tokens", CHINCHILLA_TABLE_3)
def test_compute_optimal_split_matches_chinchilla_table_3(params, flops, tokens):
    n, d = B.compute_optimal(flops)
    # the 20-tokens rule is a rounding of the table: it agrees within 3% (the 10B row: 200B vs 205.1B)
    assert n == pytest.approx(params, rel=0.03) and d == pytest.approx(tokens, rel=0.03)
    assert B.budget_for_params(params) == pytest.approx(tokens, rel=0.03)


def test_muennighoff_repeats_up_to_4_epochs_are_nearly_fresh_and_value_saturates():
    assert B.R_STAR == 15.4
    u = 1e9
    at4 = B.effective_tokens(4 * u, u)
    assert 0.9 < at4 / (4 * u) < 1  # "negligible changes to loss" up to 4 epochs: over 90% of the tokens count
    assert B.verdict(4) == "nearly-free" and B.verdict(4.01) == "diminishing"
    # as repeats grow, effective data approaches U (1 + R*) = 16.4 U and never passes it
    assert B.effective_tokens(1000 * u, u) == pytest.approx(16.4 * u, rel=1e-6)
    assert B.effective_tokens(16 * u, u) / (16 * u) < 0.7  # at 16 epochs a third of the budget already adds nothing
    assert B.verdict(16) == "diminishing" and B.verdict(16.01) == "wasted"
    assert B.effective_tokens(0.5 * u, u) == 0.5 * u  # under one epoch nothing repeats


def test_the_readme_seed_table_is_what_budget_computes():
    """The README's table for the seed's run (7.6B tokens, 40.56M parameters) is printed by this module."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    rows = re.findall(
        r"^\| (\d+\.\d)B \| ([\d.]+) \| ([\d.]+)B \((?:(\d+)% of 7\.6B|(\d+)%)\) \| ([a-z ]+) \| ([\d.]+) \|$",
        readme,
        re.M,
    )
    assert len(rows) == 4, rows
    for u, e, eff, pct1, pct2, verdict, loss in rows:
        p = B.plan(7.6e9, float(u) * 1e9, 40.56e6)
        assert f"{p['epochs']:.1f}" == e and f"{p['effective_tokens'] / 1e9:.2f}" == eff
        assert f"{p['effective_fraction']:.0%}" == f"{pct1 or pct2}%"
        assert p["verdict"] == verdict.replace(" ", "-")
        assert f"{fit_loss(40.56e6, p['effective_tokens']):.2f}" == loss


def test_unique_tokens_needed_is_the_ceiling_of_budget_over_epochs():
    assert B.unique_tokens_needed(7_600_000_000, 4) == 1_900_000_000
    assert B.unique_tokens_needed(10, 3) == 4  # whole tokens, rounded up: 3 epochs of 3 tokens would fall short
    assert B.files_needed(380e6, 1, 7.6e9, 4) == 5 and B.files_needed(380e6, 1, 7.6e9, 1) == 20

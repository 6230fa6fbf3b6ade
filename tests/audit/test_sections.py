"""Lengths, totals and budget sections on inputs whose answers are known by hand."""

from __future__ import annotations

import numpy as np
import pytest

from fwpipe.audit.budget_section import budget_section
from fwpipe.audit.lengths import length_stats
from fwpipe.errors import BudgetError


def test_length_stats_known_values():
    equal = length_stats(np.full(100, 500), block_size=1024)
    assert equal["gini"] == 0 and equal["p50"] == 500 and equal["skewness"] == 0
    assert equal["top1pct_token_share"] == pytest.approx(0.01) and equal["over_block_token_share"] == 0
    # 99 docs of 10 tokens and one of 9010: the longest 1% holds 9010 / 10000 of the tokens
    skewed = length_stats(np.array([10] * 99 + [9010]), block_size=1024)
    assert skewed["top1pct_token_share"] == pytest.approx(0.901)
    assert skewed["short_doc_share"] == pytest.approx(0.99)
    assert skewed["over_block_token_share"] == pytest.approx(0.901)
    # Gini of n-1 zeros-like values and one giant tends to 1 - 1/n; here exactly computed
    x = np.sort(np.array([10] * 99 + [9010], dtype=float))
    i = np.arange(1, 101)
    assert skewed["gini"] == pytest.approx(((2 * i - 101) * x).sum() / (100 * x.sum()))
    assert skewed["max"] == 9010 and skewed["min"] == 10
    assert sum(skewed["histogram"]["counts"]) == 100


def test_totals_and_lengths_of_planted(planted_reports, planted):
    s = planted_reports["fwpipe"]["splits"]
    assert s["train"]["docs"] == len(planted.train) and s["val"]["docs"] == len(planted.val)
    assert s["train"]["tokens"] == sum(len(d) for d in planted.train)
    assert s["train"]["stream_tokens"] == s["train"]["tokens"] + len(planted.train)
    assert s["val"]["distinct_token_ids"] == len(np.unique(np.concatenate(planted.val)))
    L = planted_reports["fwpipe"]["lengths"]["train"]
    assert L["p50"] == np.percentile([len(d) for d in planted.train], 50)
    assert L["max"] == max(len(d) for d in planted.train)


def test_budget_section_seed_run():
    """The seed's run: one parquet shard (~380M train tokens here), 7.6e9 tokens of budget."""
    b = budget_section(7.6e9, 380_000_000, params=40e6, sources=1)
    assert b["epochs"] == pytest.approx(20.0)
    # Muennighoff et al. 2023 by hand: 19 repeats, U (1 + 15.4 (1 - e^(-19/15.4))) = 380M x 11.92 = 4.53B
    assert b["effective_tokens"] == pytest.approx(4.528e9, rel=1e-3)
    assert b["verdict"] == "wasted"
    assert b["files_for_4_epochs"] == 5 and b["files_for_1_epoch"] == 20
    assert b["unique_tokens_for_4_epochs"] == 1_900_000_000 and b["repeats_free_epochs"] == 4
    assert b["tokens_per_param"] == pytest.approx(190)
    # C = 6 x 40M x 7.6B = 1.824e18 FLOPs; at 20 tokens/param N = sqrt(C / 120) = 123.3M (the README's "~124M")
    assert b["optimal_params"] == pytest.approx(123.3e6, rel=1e-3)
    assert b["chinchilla_verdict"].startswith("past compute-optimal")
    assert budget_section(1e9, 380_000_000)["verdict"] == "nearly-free"
    assert budget_section(3e8, 380_000_000)["verdict"] == "fresh"
    assert budget_section(5e9, 380_000_000)["verdict"] == "diminishing"
    assert budget_section(7.6e9, 380_000_000)["data_multiple_for_4_epochs"] == pytest.approx(5.0)


def test_budget_errors():
    with pytest.raises(BudgetError):
        budget_section(0, 100)
    with pytest.raises(BudgetError):
        budget_section(-5, 100)
    with pytest.raises(BudgetError):
        budget_section(1e9, 0)

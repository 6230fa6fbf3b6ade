"""One quantity, one spelling: the audit's text, the plan and train's messages write the same
number the same way (fwpipe.fmt), while the JSON keeps it at full precision."""

from __future__ import annotations

import json

from fwpipe.fmt import params, pct, ratio, tokens

from .test_cli import TINY, cli  # the train CLI tests' one tiny-model flag list and runner


def test_audit_plan_and_refusal_spell_the_budget_numbers_alike(tiny_data, tmp_path):
    budget = "2e7"  # ~100 epochs of tiny_data's ~0.2M train tokens: refused, so train also has its message
    r = cli(
        "train",
        tiny_data,
        "--budget-tokens",
        budget,
        "--dry-run",
        "--json",
        tmp_path / "plan.json",
        "--out",
        tmp_path / "run",
        *TINY,
    )
    assert r.exit_code == 1, r.output
    plan_text, refusal = r.stdout, r.stderr
    plan = json.loads((tmp_path / "plan.json").read_text())
    n = plan["params_non_embedding"]
    a = cli("audit", tiny_data, "--budget-tokens", budget, "--params", n, "--json", tmp_path / "audit.json")
    assert a.exit_code == 0, a.output
    audit = json.loads((tmp_path / "audit.json").read_text())["budget"]
    assert (
        audit["unique_tokens"] == plan["unique_tokens"] and audit["epochs"] == plan["epochs"]
    )  # the same quantities...
    assert isinstance(plan["effective_fraction"], float) and plan["epochs"] != round(
        plan["epochs"], 1
    )  # JSON: full precision

    epochs, eff, frac, tpp = (
        ratio(plan["epochs"]),
        tokens(plan["effective_tokens"]),
        pct(plan["effective_fraction"]),
        ratio(plan["tokens_per_param"]),
    )
    # ...written once each way, in all three places
    assert (
        f"  epochs      {epochs} (" in plan_text
        and f"  {epochs} epochs; " in a.stdout
        and f"is {epochs} epochs of" in refusal
    )
    assert f"effective   {eff} tokens after repetition ({frac} of budget" in plan_text
    assert (
        f"effective data {eff} tokens ({frac} of the budget)" in a.stdout
        and f"(effective data {eff} tokens, {frac} of the budget)" in refusal
    )
    assert f"tokens/param {tpp} (" in plan_text and f"{params(n)} params, {tpp} tokens/param" in a.stdout
    assert (
        f"{tokens(plan['unique_tokens'])} unique train tokens" in plan_text
        and f"over {tokens(plan['unique_tokens'])} unique train tokens" in a.stdout
    )
    assert (
        tpp != "0.0" and "tokens/param 0.0" not in plan_text + a.stdout
    )  # the tiny model: 0.2M tokens on ~30K params is not zero


def test_train_log_lines_carry_i_of_n_elapsed_and_eta(tiny_data, tmp_path):
    import re

    r = cli(
        "train",
        tiny_data,
        "--budget-tokens",
        4 * 128,
        "--out",
        tmp_path / "run",
        *TINY,
        "--set",
        "log_interval=1",
        "--set",
        "eval_interval=2",
        "--set",
        "eval_iters=1",
    )
    assert r.exit_code == 0, r.output
    lines = [ln for ln in r.output.splitlines() if ln.startswith("iter ")]
    pat = re.compile(
        r"^iter (\d)/4 \| loss \d+\.\d{3} \| .* tok/s \| epoch [0-9.]+ \| (\d+):(\d\d) elapsed, ETA (\d+):(\d\d)$"
    )
    got = [pat.match(ln) for ln in lines]
    assert all(got) and [int(m.group(1)) for m in got] == [1, 2, 3, 4], lines
    assert got[-1].group(4, 5) == ("0", "00")  # nothing left at the last iteration
    assert re.search(r"^done: 4/4 iterations in \d+:\d\d, ", r.output, re.MULTILINE), r.output

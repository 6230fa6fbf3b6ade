"""The budget section: epochs over the train split, effective data, verdict, and what to change.

All arithmetic is fwpipe.budget's (shared with `fwpipe train`); this module only gathers the
inputs from the audit (train stream tokens, input files from the dataset's manifest) and adds the
concrete advice: how many input files like these bring the run to <= 4 epochs and to 1.
"""

from __future__ import annotations

from fwpipe import budget


def budget_section(
    budget_tokens: float, train_stream_tokens: int, *, params: float | None = None, sources: int | None = None
) -> dict:
    """The report's budget keys (the `_4_epochs` names are the schema's; the number behind them
    is budget.REPEATS_FREE_EPOCHS, also in the report as repeats_free_epochs)."""
    budget_tokens = budget.check_budget(budget_tokens)
    free = budget.REPEATS_FREE_EPOCHS
    out = budget.plan(budget_tokens, train_stream_tokens, params)  # raises BudgetError if no train tokens
    out["repeats_free_epochs"] = free
    out["unique_tokens_for_4_epochs"] = budget.unique_tokens_needed(budget_tokens, free)
    out["unique_tokens_for_1_epoch"] = budget.unique_tokens_needed(budget_tokens, 1)
    out["source_files"] = sources
    if sources:
        out["tokens_per_source_file"] = train_stream_tokens / sources
        out["files_for_4_epochs"] = budget.files_needed(train_stream_tokens, sources, budget_tokens, free)
        out["files_for_1_epoch"] = budget.files_needed(train_stream_tokens, sources, budget_tokens, 1)
    else:  # llm.c / nanoGPT data: no manifest, so count in multiples of this dataset
        out["tokens_per_source_file"] = None
        out["files_for_4_epochs"] = out["files_for_1_epoch"] = None
    out["data_multiple_for_4_epochs"] = max(1.0, budget_tokens / (free * train_stream_tokens))
    out["data_multiple_for_1_epoch"] = max(1.0, budget_tokens / train_stream_tokens)
    if params:
        out["chinchilla_verdict"] = budget.chinchilla_verdict(out["tokens_per_param"])
    return out

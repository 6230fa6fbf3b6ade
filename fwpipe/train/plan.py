"""The plan printed before step 0: model size, iterations, epochs, effective data, memory.

Pure arithmetic (no torch), so `fwpipe train --dry-run` answers on any machine. The budget
numbers (epochs, Muennighoff effective data, Chinchilla sizing) come from fwpipe.budget, the one
implementation that `audit` also prints; the loss trend and the what-if table from
fwpipe.diagnosis.trend, the one owner of the scaling fit.
"""

from __future__ import annotations

import math
from typing import Any

from fwpipe import budget
from fwpipe.diagnosis.trend import FIT_NOTE, format_what_if, trend, what_if
from fwpipe.errors import BudgetError
from fwpipe.fmt import loss, params, pct, ratio, size, tokens
from fwpipe.train.config import ModelConfig, TrainConfig, to_dict
from fwpipe.train.mfu import flops_per_token


def param_counts(m: ModelConfig) -> tuple[int, int]:
    """(total, without position embeddings) parameters of fwpipe's GPT, by arithmetic.

    Per block: ln_1, ln_2 (C each), c_attn (3C^2), attn c_proj (C^2), c_fc (4C^2), mlp c_proj
    (4C^2) = 12C^2 + 2C, plus 11C of biases when bias=True. Tied wte/lm_head (V*C) is counted
    once; wpe is T*C; ln_f is C (+C bias).

    The modern parts: rotary has no wpe (0 instead of T*C); RMSNorm has no weight (0 instead of C
    per norm); an untied head adds its own V*C; QK-norm, ReLU^2, soft-cap and zero init add none.
    """
    C, V, T, L = m.n_embd, m.vocab_size, m.block_size, m.n_layer
    norm = 0 if m.norm == "rmsnorm" else C + (C if m.bias else 0)
    per_block = 12 * C * C + 2 * norm + (9 * C if m.bias else 0)  # biases: c_attn 3C, c_proj C, c_fc 4C, c_proj C
    wpe = T * C if m.pos_emb == "learned" else 0
    head = 0 if m.tie_embeddings else V * C
    total = V * C + head + wpe + L * per_block + norm
    return total, total - wpe


def matmul_params(m: ModelConfig) -> int:
    """Parameters that take part in a matmul per token (6N in the FLOPs): without position
    embeddings, and without an untied input embedding (a lookup; the head is the matmul)."""
    total, non_emb = param_counts(m)
    return non_emb - (0 if m.tie_embeddings else m.vocab_size * m.n_embd)


def optimizer_state_floats(cfg: TrainConfig) -> int:
    """Floats of optimizer state: AdamW keeps two moments per parameter, Muon one momentum
    buffer per matrix it owns (the blocks' 2-D weights, 12*C^2 per block)."""
    total, _ = param_counts(cfg.model)
    if cfg.optimizer != "muon":
        return 2 * total
    muon = cfg.model.n_layer * 12 * cfg.model.n_embd**2
    return muon + 2 * (total - muon)


def memory_estimate(cfg: TrainConfig, precision: str) -> dict[str, int]:
    """Rough training memory in bytes: fp32 weights, grads and optimizer state (16 bytes/param
    with AdamW; Muon keeps 4 instead of 8 bytes for its matrices), plus Muon's Newton-Schulz
    temporaries for the largest matrix (about 4 copies of a 4C x C matrix),
    activations after Korthikanti et al. 2022 (34*B*T*C bytes per layer at 16 bits, without the
    attention-matrix term that SDPA's fused kernels avoid) and the logits with their fp32
    softmax and gradient (B*T*V*8 bytes). torch.compile usually needs less."""
    m = cfg.model
    total, _ = param_counts(m)
    scale = 2 if precision == "fp32" else 1
    B, T, C, V = cfg.batch_size, m.block_size, m.n_embd, m.vocab_size
    out = {
        "weights": 4 * total,
        "grads": 4 * total,
        "optimizer": 4 * optimizer_state_floats(cfg) + (4 * 4 * 4 * C * C if cfg.optimizer == "muon" else 0),
        # RoPE and QK-norm keep q and k once more per layer (2*B*T*C at 16 bits); ReLU^2 keeps
        # relu(h) besides h (B*T*4C): 2*B*T*C + 8*B*T*C more bytes at 16 bits
        "activations": (34 + (4 if m.pos_emb == "rotary" or m.qk_norm else 0) + (8 if m.mlp == "relu2" else 0))
        * B
        * T
        * C
        * m.n_layer
        * scale,
        "logits": B * T * V * (8 + (4 if precision == "fp32" else 0)),
    }
    out["total"] = sum(out.values())
    return out


def make_plan(
    cfg: TrainConfig,
    budget_tokens: int,
    unique_tokens: int,
    *,
    dataset: dict[str, Any] | None = None,
    device: dict[str, Any] | None = None,
    allow_repeats: bool = False,
) -> dict[str, Any]:
    """Everything the user should know before step 0. Raises BudgetError for a budget smaller
    than one iteration, and for more than 16 epochs unless allow_repeats."""
    budget_tokens = budget.check_budget(budget_tokens)
    tpi = cfg.tokens_per_iter
    if budget_tokens < tpi:
        raise BudgetError(
            f"budget of {tokens(budget_tokens)} tokens is less than one iteration ({tpi:,} tokens = "
            f"{cfg.batch_size} x {cfg.grad_accum} x {cfg.model.block_size})",
            f"pass --budget-tokens {tpi} or more, or lower batch_size / grad_accum with --set",
        )
    if unique_tokens <= cfg.model.block_size:
        raise BudgetError(
            f"the train split holds {tokens(unique_tokens)} tokens, not one window of block_size+1 = {cfg.model.block_size + 1}",
            "prepare more text or lower block_size with --set",
        )
    total, non_emb = param_counts(cfg.model)
    iters = math.ceil(budget_tokens / tpi)
    b = budget.plan(budget_tokens, unique_tokens, non_emb)
    eff = b["effective_tokens"]
    plan: dict[str, Any] = {
        "config": to_dict(cfg),
        "params_total": total,
        "params_non_embedding": non_emb,
        "tokens_per_iter": tpi,
        "iterations": iters,
        "tokens_trained": iters * tpi,
        "flops_per_token": flops_per_token(cfg.model, matmul_params(cfg.model)),
        "recipe": cfg.recipe,
        **{k: v for k, v in b.items() if k != "params"},
        # the scaling fit's trend, only inside its range (fwpipe.diagnosis.trend), and the what-if table
        "loss_trend": {**trend(non_emb, eff), "note": FIT_NOTE},
        "what_if": what_if(non_emb, budget_tokens, unique_tokens),
        "dataset": dataset or {},
        "device": device or {},
        "warnings": [],
    }
    precision = (device or {}).get("precision", "bf16")
    mem = memory_estimate(cfg, precision)
    plan["memory"] = {**mem, "device_bytes": (device or {}).get("memory_bytes"), "precision": precision}
    e = plan["epochs"]
    free, most = budget.REPEATS_FREE_EPOCHS, budget.REPEATS_MAX_EPOCHS
    needed = budget.unique_tokens_needed(budget_tokens, free)
    if e > free:
        plan["warnings"].append(
            f"{ratio(e)} epochs: the run repeats its {tokens(unique_tokens)} unique tokens; effective data is "
            f"{tokens(eff)} of {tokens(budget_tokens)} tokens ({pct(b['effective_fraction'])}). Prepare "
            f"{tokens(needed)}+ unique tokens (more parquet shards) for at most {free:g} epochs."
        )
    dev_mem = plan["memory"]["device_bytes"]
    if dev_mem and mem["total"] > 0.9 * dev_mem:
        plan["warnings"].append(
            f"estimated memory {size(mem['total'], binary=True)} is over 90% of the device's {size(dev_mem, binary=True)}; "
            "lower batch_size and raise grad_accum by the same factor (same tokens per iteration)"
        )
    if e > most and not allow_repeats:
        refusal = BudgetError(
            f"{tokens(budget_tokens)} tokens is {ratio(e)} epochs of {tokens(unique_tokens)} unique train tokens; past {most:g} epochs "
            f"repeats add almost nothing (effective data {tokens(eff)} tokens, {pct(b['effective_fraction'])} of the budget)",
            f"prepare at least {tokens(needed)} unique tokens, lower --budget-tokens, or pass --allow-repeats",
        )
        # the plan goes with the refusal: `train --dry-run` prints it first, then the one Error line
        plan["refusal"] = {"message": refusal.message, "hint": refusal.hint}
        refusal.plan = plan
        raise refusal
    return plan


def diagnosis_inputs(plan: dict[str, Any]) -> dict[str, Any]:
    """The plan's numbers as fwpipe.diagnosis.Inputs fields: the same for train's evals, `fwpipe
    report` and `fwpipe diagnose RUN`."""
    c = plan.get("config") or {}
    m = c.get("model") or {}
    out = {
        "n_params": plan.get("params_non_embedding"),
        "unique_tokens": plan.get("unique_tokens"),
        "budget_tokens": plan.get("budget_tokens"),
        "tokens_per_iter": plan.get("tokens_per_iter"),
        "eval_iters": c.get("eval_iters"),
        "lr": c.get("lr"),
        "threshold": c.get("plateau_threshold", 0.02),
    }
    if c.get("eval_iters") and c.get("batch_size") and m.get("block_size"):
        out["eval_tokens"] = c["eval_iters"] * c["batch_size"] * m["block_size"]
    return out


def format_plan(plan: dict[str, Any]) -> list[str]:
    """The plan as terminal lines."""
    c = plan["config"]
    m = c["model"]
    lt = plan["loss_trend"]
    mem = plan["memory"]
    ds = plan["dataset"]
    dev = plan["device"]
    ws = plan.get("world_size", 1)
    lines = [
        f"plan: {c['name']} on {dev.get('name', '?')} ({mem['precision']}), recipe {c.get('recipe', 'nanogpt')}"
        + (f" ({c['optimizer']}, {c['schedule']} schedule)" if c.get("recipe", "nanogpt") != "nanogpt" else ""),
        f"  model       {m['n_layer']} layers x {m['n_head']} heads x {m['n_embd']} wide, block {m['block_size']}: "
        f"{params(plan['params_total'])} params, {params(plan['params_non_embedding'])} without position embeddings",
        f"  batch       {c['batch_size']} x {c['grad_accum']} accum x {m['block_size']} = {plan['tokens_per_iter']:,} tokens/iter",
        f"  processes   {ws} (torchrun DDP: {c['grad_accum'] // ws} micro-steps each, the same global batch)"
        if ws > 1
        else "  processes   1 (for more GPUs: torchrun --standalone --nproc_per_node N -m fwpipe train ...)",
        f"  budget      {tokens(plan['budget_tokens'])} tokens -> {plan['iterations']:,} iterations ({tokens(plan['tokens_trained'])} tokens)",
        f"  data        {ds.get('path', '?')} ({ds.get('format', '?')}): {tokens(plan['unique_tokens'])} unique train tokens, "
        f"{tokens(ds.get('val_tokens', 0))} val",
        f"  epochs      {ratio(plan['epochs'])} ({plan['verdict']}: {plan['verdict_text']})",
        f"  effective   {tokens(plan['effective_tokens'])} tokens after repetition ({pct(plan['effective_fraction'])} of budget; Muennighoff et al. 2023)",
        f"  tokens/param {ratio(plan['tokens_per_param'])} (Chinchilla ~{plan['chinchilla_tokens_per_param']:g})",
        f"  compute     C = 6*N*D = {plan['compute_flops']:.3g} FLOPs; compute-optimal ~{params(plan['optimal_params'])} params "
        f"on {tokens(plan['optimal_tokens'])} tokens",
        "  loss trend  "
        + (
            f"~{loss(lt['loss'])} ({lt['why']}; see the what-if table)"
            if lt["loss"] is not None
            else f"none: {lt['why']}"
        ),
        f"  memory      ~{size(mem['total'], binary=True)} estimated (weights+grads+{'Muon/AdamW' if c.get('optimizer') == 'muon' else 'AdamW'} "
        f"{size(mem['weights'] + mem['grads'] + mem['optimizer'], binary=True)}, activations {size(mem['activations'], binary=True)}, "
        f"logits {size(mem['logits'], binary=True)})"
        + (f" of {size(mem['device_bytes'], binary=True)} on the device" if mem.get("device_bytes") else ""),
    ]
    if dev.get("peak_tflops"):
        lines.append(
            f"  peak        {dev['peak_tflops']:g} TFLOPS dense bf16 ({dev.get('peak_source', 'table')})"
            + (f" x {ws} GPUs" if ws > 1 else "")
            + "; "
            f"{tokens(plan['flops_per_token'])} FLOPs/token"
        )
    if plan.get("hellaswag"):
        lines.append(
            f"  hellaswag   {plan['hellaswag']['examples']:,} examples from {plan['hellaswag']['path']}, acc_norm at every eval"
        )
    z = plan.get("sizing")
    if z:
        prepared = f"the dataset was prepared for {tokens(z['prepared_budget_tokens'])} tokens at <= {z['prepared_max_epochs']:g} epochs"
        if plan.get("budget_source") == "manifest":
            lines.append(f"  sizing      budget taken from the manifest: {prepared}")
        elif z["prepared_budget_tokens"] != plan["budget_tokens"] and z.get("prepared_epochs") is not None:
            lines.append(
                f"  sizing      {prepared} ({ratio(z['prepared_epochs'])} epochs); this budget runs {ratio(plan['epochs'])} epochs "
                f"({ratio(plan['epochs'] / z['prepared_epochs'])}x)"
            )
    if plan.get("what_if"):
        lines += format_what_if(plan["what_if"])
    lines += [f"  WARNING: {w}" for w in plan["warnings"]]
    return lines

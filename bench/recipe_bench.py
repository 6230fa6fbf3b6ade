"""Sample efficiency: the nanogpt and modern recipes side by side on the same tiny shape.

    python bench/recipe_bench.py                       # 3 seeds, 4 x 128 wide, context 128, vocab 4096
    python bench/recipe_bench.py --seeds 1 --modern-set muon_lr=0.04   # a quick probe

Both recipes train the same shape (the recipe's own parts: nanogpt = learned positions,
LayerNorm, GELU, tied head, AdamW, cosine; modern = RoPE, RMSNorm, QK-norm, ReLU^2, untied head,
zero-init projections, soft-cap 30, Muon + AdamW, warmup-stable-decay) on the same train
windows in the same order (fwpipe's TrainLoader, less than one epoch: no token is seen twice),
for the same token budget, and are scored on the same fixed val batches every --eval-every
iterations. Printed: each recipe's val-loss curve, the tokens the modern recipe needed to reach
the nanogpt recipe's final val loss (linear interpolation between evals), their ratio (goal
<= 0.6), and the tokens/s of both measured in the same run (Muon's Newton-Schulz is not free).

The data: documents of the bundled FineWeb sample tokenized here with GPT-2's BPE (train: the
first 400 documents, ~0.7M tokens; val: 40 of the last 100). On a 2-core CPU a 50,304-row head
is most of the work (6*V*C FLOPs per token), so by default the vocabulary is cut to the 4,095
most frequent train tokens plus one "other" id (--vocab 0 keeps GPT-2's): the losses are then
not GPT-2-token losses, but both recipes see exactly the same ids. The loop is fwpipe's own pieces (GPT, recipe.build_optimizers,
recipe.set_lrs, TrainLoader, fixed_batches) without checkpoints, so that the bench measures the
recipes and not the disk. CPU timings on a shared machine are noisy: the ratio of tokens is the
figure; tokens/s are for the relative cost.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fwpipe.dataset import open_dataset, shard_name  # noqa: E402
from fwpipe.shards import write_shard  # noqa: E402
from fwpipe.tokenizer import EOT, encode  # noqa: E402
from fwpipe.train import require_torch  # noqa: E402
from fwpipe.train.config import TrainConfig, load_config  # noqa: E402

# the shared shape; each recipe's own lrs (chosen by the sweep described in the README)
SHAPE = {
    "n_layer": 4,
    "n_head": 4,
    "n_embd": 128,
    "block_size": 128,
    "batch_size": 8,
    "grad_accum": 1,
    "dropout": 0.0,
    "dtype": "fp32",
    "compile": False,
    "threads": 1,
}
NANOGPT = {"recipe": "nanogpt", "lr": 1e-3, "min_lr": 1e-4, "warmup_iters": 20, "weight_decay": 0.1, "beta2": 0.99}
MODERN = {
    "recipe": "modern",
    "lr": 3e-3,
    "embed_lr": 3e-2,
    "head_lr": 3e-3,
    "muon_lr": 0.02,
    "warmup_iters": 20,
    "cooldown_frac": 0.4,
}


def sample_dataset(root: Path, vocab: int) -> Path:
    """Bundled FineWeb documents as llm.c shards (EOT before each document); with vocab > 0 the
    ids are renumbered by train frequency, everything past vocab-1 sharing the last id."""
    import polars as pl

    from fwpipe.sample import SAMPLE_DIR

    texts = pl.read_parquet(SAMPLE_DIR / "fineweb-sample10bt-1400.parquet", columns=["text"])["text"].to_list()
    root.mkdir(parents=True, exist_ok=True)
    splits = {
        split: np.concatenate([np.concatenate([[EOT], encode(t)]) for t in part]).astype(np.int64)
        for split, part in (("train", texts[:400]), ("val", texts[1360:]))
    }
    if vocab:
        freq = np.bincount(splits["train"], minlength=EOT + 1)
        order = np.argsort(-freq, kind="stable")  # most frequent first; ties by id: deterministic
        new_id = np.full(len(freq), vocab - 1, dtype=np.int64)
        new_id[order[: vocab - 1]] = np.arange(vocab - 1)
        splits = {k: new_id[v] for k, v in splits.items()}
    for split, toks in splits.items():
        write_shard(root / shard_name(split, 0), toks.astype(np.uint16))
    return root


def parse_set(items: list[str]) -> dict:
    out = {}
    for item in items:
        k, _, v = item.partition("=")
        out[k.strip()] = v
    return out


def train_curve(data: Path, cfg: TrainConfig, budget: int, eval_every: int, eval_batches: int, vocab: int, log) -> dict:
    """Train cfg for `budget` tokens on data's train split; val loss every eval_every iterations."""
    torch = require_torch()
    from fwpipe.train.data import TrainLoader, batch_to_device, fixed_batches
    from fwpipe.train.loop import set_threads
    from fwpipe.train.model import GPT
    from fwpipe.train.recipe import build_optimizers, set_lrs

    ds = open_dataset(data)
    set_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    if vocab:
        cfg.model.vocab_size = vocab  # below GPT-2's 50257, which load_config refuses: set after it
    model = GPT(cfg.model)
    opts = build_optimizers(model, cfg, "cpu")
    loader = TrainLoader(ds.split("train"), cfg.model.block_size, cfg.batch_size, cfg.seed)
    # the val batches do not depend on the seed: every run is scored on the same tokens
    val = fixed_batches(ds.split("val"), cfg.model.block_size, cfg.batch_size, eval_batches, 1234)
    tpi = cfg.tokens_per_iter
    iters = budget // tpi
    if iters * cfg.batch_size > loader.windows_per_epoch:
        raise SystemExit(
            f"budget {budget:,} is more than one epoch ({loader.tokens_per_epoch:,} tokens): tokens would repeat"
        )

    @torch.no_grad()
    def val_loss() -> float:
        model.eval()
        losses = [model(*batch_to_device(xy, "cpu"))[1].item() for xy in val]
        model.train()
        return sum(losses) / len(losses)

    curve, train_s = [(0, val_loss())], 0.0
    for it in range(iters):
        t0 = time.perf_counter()
        set_lrs(opts, it, cfg, iters)
        x, y = loader.next_batch()
        _, loss = model(x, y)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        for o in opts.values():
            o.step()
        for o in opts.values():
            o.zero_grad(set_to_none=True)
        train_s += time.perf_counter() - t0
        if not math.isfinite(loss.item()):
            raise SystemExit(f"{cfg.recipe} seed {cfg.seed}: loss {loss.item()} at iteration {it + 1}")
        if (it + 1) % eval_every == 0 or it + 1 == iters:
            curve.append(((it + 1) * tpi, val_loss()))
            log(f"  {cfg.recipe} seed {cfg.seed}: {(it + 1) * tpi:,} tokens, val {curve[-1][1]:.4f}")
    return {"curve": curve, "tokens_per_s": iters * tpi / train_s, "params": sum(p.numel() for p in model.parameters())}


def tokens_to_reach(curve: list[tuple[int, float]], target: float) -> float | None:
    """The first token count at which the curve reaches target (linear between evals), else None."""
    for (t0, l0), (t1, l1) in zip(curve, curve[1:]):
        if l1 <= target:
            return t1 if l0 == l1 else t0 + (t1 - t0) * (l0 - target) / (l0 - l1)
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None, help="a fwpipe / llm.c dataset [default: the bundled sample]")
    ap.add_argument("--budget", type=float, default=1e5, help="training tokens per run (< one epoch)")
    ap.add_argument("--vocab", type=int, default=4096, help="ids kept (most frequent; 0: all of GPT-2's)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--eval-every", type=int, default=10, help="iterations between val evals")
    ap.add_argument("--eval-batches", type=int, default=8, help="fixed val batches per eval")
    ap.add_argument("--set", dest="shape_set", action="append", default=[], help="shape key=value for both recipes")
    ap.add_argument("--nanogpt-set", action="append", default=[], help="key=value for the nanogpt recipe only")
    ap.add_argument("--modern-set", action="append", default=[], help="key=value for the modern recipe only")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or sample_dataset(Path(tmp) / "data", args.vocab)
        budget = int(args.budget)
        shape = {**SHAPE, **parse_set(args.shape_set)}
        recipes = {
            "nanogpt": {**NANOGPT, **parse_set(args.nanogpt_set)},
            "modern": {**MODERN, **parse_set(args.modern_set)},
        }
        results: dict[str, list[dict]] = {name: [] for name in recipes}
        for seed in range(args.seeds):
            for name, over in recipes.items():
                cfg = load_config(None, {**shape, **over, "seed": 1337 + seed})
                results[name].append(
                    train_curve(
                        data,
                        cfg,
                        budget,
                        args.eval_every,
                        args.eval_batches,
                        args.vocab if not args.data else 0,
                        lambda s: print(s, file=sys.stderr, flush=True),
                    )
                )
    print(
        f"shape: {shape['n_layer']} layers x {shape['n_embd']} wide, context {shape['block_size']}, vocab {args.vocab or 50304}, "
        f"{int(shape['batch_size']) * int(shape['block_size']):,} tokens/iter, budget {budget:,} tokens (< 1 epoch, no repeats)"
    )
    for name, over in recipes.items():
        print(
            f"{name}: {results[name][0]['params']:,} params; {', '.join(f'{k}={v}' for k, v in over.items() if k != 'recipe')}"
        )
    rows = []
    for seed in range(args.seeds):
        ng, mo = results["nanogpt"][seed], results["modern"][seed]
        target = ng["curve"][-1][1]
        need = tokens_to_reach(mo["curve"], target)
        rows.append(
            {
                "seed": 1337 + seed,
                "nanogpt_final": target,
                "modern_final": mo["curve"][-1][1],
                "modern_tokens_to_nanogpt_final": need,
                "ratio": need / budget if need is not None else None,
                "nanogpt_tokens_per_s": ng["tokens_per_s"],
                "modern_tokens_per_s": mo["tokens_per_s"],
            }
        )
        print(f"\nseed {1337 + seed} val loss by tokens")
        print(f"  {'tokens':>9} {'nanogpt':>8} {'modern':>8}")
        for (t, a), (_, b) in zip(ng["curve"], mo["curve"]):
            print(f"  {t:>9,} {a:>8.4f} {b:>8.4f}")
    print(
        f"\n{'seed':>5} {'nanogpt final':>13} {'modern final':>12} {'modern tokens to nanogpt final':>31} {'ratio':>6} "
        f"{'nanogpt tok/s':>13} {'modern tok/s':>12}"
    )
    for r in rows:
        need = f"{r['modern_tokens_to_nanogpt_final']:,.0f}" if r["ratio"] is not None else "not reached"
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "-"
        print(
            f"{r['seed']:>5} {r['nanogpt_final']:>13.4f} {r['modern_final']:>12.4f} {need:>31} {ratio:>6} "
            f"{r['nanogpt_tokens_per_s']:>13,.0f} {r['modern_tokens_per_s']:>12,.0f}"
        )
    ratios = [r["ratio"] for r in rows if r["ratio"] is not None]
    if ratios:
        print(
            f"ratio mean {sum(ratios) / len(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f}) over {len(ratios)} seeds; goal <= 0.6"
        )
    speed = sum(r["modern_tokens_per_s"] for r in rows) / sum(r["nanogpt_tokens_per_s"] for r in rows)
    print(f"modern tokens/s over nanogpt tokens/s: {speed:.2f} (same run, CPU, machine shared with other work)")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "shape": shape,
                    "recipes": recipes,
                    "budget": budget,
                    "rows": rows,
                    "curves": {k: [r["curve"] for r in v] for k, v in results.items()},
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()

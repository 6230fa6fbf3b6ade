"""Training throughput: tokens/s, MFU against the device's own peak, peak memory.

    python bench/train_bench.py                        # CPU: tiny-cpu; GPU: rtx4070-40m and gpt2-124m
    python bench/train_bench.py --config gpt2-124m --iters 40 --data data/fineweb
    python bench/train_bench.py --nanogpt ~/src/nanoGPT  # same configs through nanoGPT's train.py, side by side

Runs fwpipe's real training loop (fwpipe.train.loop) for a few dozen iterations of each config
on the same data and reports the median tokens/s of the iterations after the first few (which
include torch.compile and warm-up). With no --data, the bundled FineWeb sample is tokenized into
a temporary dataset: plenty for a throughput measurement (it repeats, which is fine here).

nanoGPT side by side (never committed, never fetched by this script): clone
https://github.com/karpathy/nanoGPT anywhere and pass its path with --nanogpt. The bench writes
the same tokens as nanoGPT's raw train.bin/val.bin into a temporary directory, runs nanoGPT's
train.py there with the same model, batch, accumulation, dropout, compile and precision
(--max_iters=N --log_interval=1 --eval_iters=1), parses its "time ...ms" lines into tokens/s
and rescales its MFU (nanoGPT divides by an A100's 312 TFLOPS) to the device's own peak.
Goal: fwpipe at least as fast as nanoGPT's train.py on the same GPU and config.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fwpipe.dataset import open_dataset, shard_name  # noqa: E402
from fwpipe.shards import TokenFileWriter, write_shard  # noqa: E402
from fwpipe.tokenizer import EOT, encode  # noqa: E402
from fwpipe.train import require_torch  # noqa: E402
from fwpipe.train.loop import plan_run, train  # noqa: E402
from fwpipe.train.mfu import mfu  # noqa: E402


def sample_dataset(root: Path) -> Path:
    """The bundled FineWeb sample as llm.c shards (EOT before each document)."""
    import polars as pl

    from fwpipe.sample import SAMPLE_DIR

    texts = pl.read_parquet(SAMPLE_DIR / "fineweb-sample10bt-1400.parquet", columns=["text"])["text"].to_list()
    root.mkdir(parents=True, exist_ok=True)
    for split, part in (("train", texts[:1300]), ("val", texts[1300:])):
        toks = np.concatenate([np.concatenate([[EOT], encode(t)]) for t in part]).astype(np.uint16)
        write_shard(root / shard_name(split, 0), toks)
    return root


def bench_fwpipe(data: Path, config: str, iters: int, device: str, peak: float | None, out: Path) -> dict:
    torch = require_torch()
    overrides = ["eval_iters=1", f"eval_interval={10 * iters}", "log_interval=1"]
    run = plan_run(
        data,
        7_600_000_000 if config != "tiny-cpu" else 10**8,
        config,
        out=out,
        device=device,
        overrides=overrides,
        allow_repeats=True,
        peak=peak,
    )
    if run.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    steps = []
    train(run, lambda e: steps.append(e) if e["kind"] == "train" else None, stop_after=iters)
    warm = steps[min(len(steps) - 1, max(3, len(steps) // 4)) :]  # leave out compile and warm-up
    tok_s = statistics.median(s["tokens_per_s"] for s in warm)
    return {
        "impl": "fwpipe",
        "config": config,
        "device": run.device.name,
        "device_type": run.device.type,
        "precision": run.device.precision,
        "tokens_per_iter": run.plan["tokens_per_iter"],
        "iters": len(steps),
        "tokens_per_s": tok_s,
        "mfu": mfu(tok_s, run.plan["flops_per_token"], run.plan["device"]["peak_tflops"]),
        "peak_tflops": run.plan["device"]["peak_tflops"],
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if run.device.type == "cuda" else None,
        "flops_per_token": run.plan["flops_per_token"],
        "cfg": run.cfg,
    }


def bench_nanogpt(nanogpt: Path, data: Path, ours: dict, iters: int, work: Path) -> dict:
    """nanoGPT's own train.py on the same tokens and config; its output parsed."""
    cfg = ours["cfg"]
    m = cfg.model
    ds = open_dataset(data)
    (work / "data" / "fwbench").mkdir(parents=True, exist_ok=True)
    for split in ("train", "val"):
        w = TokenFileWriter(work / "data" / "fwbench" / f"{split}.bin", with_header=False)  # nanoGPT's raw uint16
        for shard in ds.split(split).shards:
            w.write(np.asarray(shard))
        w.commit()
    (work / "configurator.py").write_bytes(
        (nanogpt / "configurator.py").read_bytes()
    )  # nanoGPT exec()s it from the cwd
    dtype = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}[ours["precision"]]
    args = [
        "--dataset=fwbench",
        f"--out_dir={work / 'out'}",
        f"--n_layer={m.n_layer}",
        f"--n_head={m.n_head}",
        f"--n_embd={m.n_embd}",
        f"--block_size={m.block_size}",
        f"--dropout={m.dropout}",
        f"--bias={m.bias}",
        f"--batch_size={cfg.batch_size}",
        f"--gradient_accumulation_steps={cfg.grad_accum}",
        f"--learning_rate={cfg.lr}",
        f"--min_lr={cfg.min_lr}",
        f"--warmup_iters={cfg.warmup_iters}",
        f"--beta2={cfg.beta2}",
        f"--max_iters={iters}",
        f"--lr_decay_iters={10 * iters}",
        "--eval_interval=100000",
        "--eval_iters=1",
        "--log_interval=1",
        f"--weight_decay={cfg.weight_decay}",
        f"--beta1={cfg.beta1}",
        f"--grad_clip={cfg.grad_clip}",
        f"--device={'cuda' if ours['device_type'] == 'cuda' else 'cpu'}",
        "--always_save_checkpoint=False",
        f"--compile={cfg.compile}",
        f"--dtype={dtype}",
        "--wandb_log=False",
    ]
    proc = subprocess.run([sys.executable, str(nanogpt / "train.py"), *args], cwd=work, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"nanoGPT's train.py failed:\n{proc.stderr[-2000:]}")
    lines = re.findall(r"iter (\d+): loss [\d.]+, time ([\d.]+)ms, mfu (-?[\d.]+)%", proc.stdout)
    times = [float(t) / 1000 for it, t, _ in lines if int(it) >= max(3, len(lines) // 4)]
    tok_s = ours["tokens_per_iter"] / statistics.median(times)
    return {
        "impl": "nanoGPT",
        "config": ours["config"],
        "tokens_per_s": tok_s,
        "mfu": mfu(tok_s, ours["flops_per_token"], ours["peak_tflops"]),
        "peak_memory_gib": None,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", action="append", help="config(s) to run (default: by device)")
    p.add_argument("--iters", type=int, default=None, help="iterations per config (default 30 on GPU, 20 on CPU)")
    p.add_argument("--data", type=Path, default=None, help="dataset (default: the bundled FineWeb sample)")
    p.add_argument("--device", default="auto")
    p.add_argument("--peak-tflops", type=float, default=None)
    p.add_argument("--nanogpt", type=Path, default=None, help="a nanoGPT checkout to run side by side")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args()
    torch = require_torch()
    gpu = torch.cuda.is_available() and a.device in ("auto", "cuda")
    configs = a.config or (["rtx4070-40m", "gpt2-124m"] if gpu else ["tiny-cpu"])
    iters = a.iters or (30 if gpu else 20)
    if not gpu:
        print(f"no GPU visible to PyTorch: CPU figures ({torch.get_num_threads()} threads); MFU needs a GPU's peak")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = a.data or sample_dataset(tmp / "data")
        for config in configs:
            ours = bench_fwpipe(data, config, iters, a.device, a.peak_tflops, tmp / f"run-{config}")
            rows.append(ours)
            if a.nanogpt:
                rows.append(bench_nanogpt(a.nanogpt.expanduser(), data, ours, iters, tmp / f"nanogpt-{config}"))
    print(f"{'impl':8} {'config':12} {'tokens/s':>12} {'MFU':>7} {'peak mem':>9}  device")
    for r in rows:
        mfu_s = f"{r['mfu']:.1%}" if r.get("mfu") is not None else "-"
        mem = f"{r['peak_memory_gib']:.2f}G" if r.get("peak_memory_gib") is not None else "-"
        print(f"{r['impl']:8} {r['config']:12} {r['tokens_per_s']:>12,.0f} {mfu_s:>7} {mem:>9}  {r.get('device', '')}")
    if a.json:
        a.json.write_text(json.dumps([{k: v for k, v in r.items() if k != "cfg"} for r in rows], indent=2))


if __name__ == "__main__":
    main()

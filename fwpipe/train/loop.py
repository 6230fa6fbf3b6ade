"""The training run: plan, model, loader, loop, evals, checkpoints, metrics.

`plan_run` does everything up to step 0 (what `--dry-run` shows); `train` runs the loop. Library
code never prints: progress goes to the `on_event` callback (the CLI prints it) and to logging.
Events are dicts with a "kind": plan, message, train, eval, diagnosis, done.

Under torchrun (fwpipe.train.dist) every rank runs this loop on its share of each global batch;
only rank 0 locks the run directory, writes and emits events.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fwpipe import __version__
from fwpipe.dataset import Dataset, open_dataset
from fwpipe.errors import BudgetError, ConfigError, DivergedError, InputFormatError, ShardFormatError
from fwpipe.fmt import duration, params, ratio, tokens
from fwpipe.train import dist, rundir
from fwpipe.train.config import TrainConfig, load_config, to_dict, to_toml
from fwpipe.train.mfu import mfu, peak_tflops
from fwpipe.train.plan import diagnosis_inputs, make_plan

log = logging.getLogger(__name__)

# loss.png is redrawn at an eval at most this often (drawing costs ~0.5-1 s of CPU, as much as
# a tiny run's whole eval), and always at the last eval and when the loop stops
PLOT_EVERY_S = 30.0

Event = dict[str, Any]


@dataclass
class Run:
    cfg: TrainConfig
    dataset: Dataset
    out: Path
    plan: dict[str, Any]
    device: Any  # DeviceInfo
    budget_tokens: int
    checkpoint: dict[str, Any] | None  # loaded for --resume
    checkpoint_stat: tuple[int, int, int] | None = None  # (inode, size, mtime) of the last.pt it came from
    world: dist.World = dist.World()
    hellaswag: list | None = None  # HellaSwag examples scored at every eval (--hellaswag)


def _default_out(cfg: TrainConfig) -> Path:
    return Path("runs") / cfg.name


def plan_run(
    data: str | Path,
    budget_tokens: int | None,
    config: str | Path | TrainConfig | None = None,
    *,
    out: str | Path | None = None,
    device: str = "auto",
    resume: bool = False,
    overrides: list[str] | None = None,
    allow_repeats: bool = False,
    peak: float | None = None,
    hellaswag: str | Path | None = None,
) -> Run:
    """Resolve config, dataset, device and checkpoint, and make the plan. Raises FwpipeError on bad input."""
    from fwpipe.train import checkpoint
    from fwpipe.train.device import resolve

    ckpt, ckpt_stat = None, None
    world = dist.world()
    # rank 0 may already hold the lock when another rank gets here: only rank 0 checks it
    check_unlocked = rundir.check_unlocked if world.main else (lambda out: None)
    if resume:
        given = config
        if isinstance(config, TrainConfig):
            cfg = config
        elif out is None:
            cfg = load_config(config or "rtx4070-40m")
        out = Path(out) if out is not None else _default_out(cfg)
        rundir.inspect(out)
        check_unlocked(out)
        last = Path(out) / rundir.LAST
        ckpt = checkpoint.load(last)
        ckpt_stat = _stat(last)
        if overrides:
            raise ConfigError(
                "--set cannot change a run that is being resumed", "drop --set, or start a new run with another --out"
            )
        cfg = checkpoint.config_of(ckpt, last)
        if given is not None:
            _same_config(given if isinstance(given, TrainConfig) else load_config(given), cfg, given, out)
        if budget_tokens is not None and int(budget_tokens) != ckpt["budget_tokens"]:
            raise BudgetError(
                f"--budget-tokens {budget_tokens:,} differs from the run's {ckpt['budget_tokens']:,}",
                "drop --budget-tokens when resuming (the LR schedule depends on it)",
            )
        budget_tokens = ckpt["budget_tokens"]
    else:
        cfg = config if isinstance(config, TrainConfig) else load_config(config or "rtx4070-40m", overrides)
        out = Path(out) if out is not None else _default_out(cfg)
        if rundir.inspect(out) and (out / rundir.LAST).exists():
            raise ConfigError(f"{out} already holds a run (last.pt)", "pass --resume to continue it, or another --out")
        check_unlocked(out)
    dist.accum_per_rank(cfg.grad_accum, world)
    ds = open_dataset(data)
    # a dataset prepared for a budget (prepare --budget-tokens) carries it in its manifest
    sizing = ds.sizing
    budget_source = "--budget-tokens" if budget_tokens is not None else "checkpoint" if ckpt else None
    if budget_tokens is None and sizing:
        budget_tokens, budget_source = sizing.budget_tokens, "manifest"
    if budget_tokens is None:
        raise BudgetError(
            "no token budget given", "pass e.g. --budget-tokens 7.6e9 (or prepare the dataset with --budget-tokens)"
        )
    train = ds.split("train")
    if train.stream_tokens == 0:
        raise ShardFormatError(f"{ds.root}: the dataset has no train tokens", "prepare a dataset with a train split")
    dev = resolve(device, cfg.dtype, index=world.local_rank)
    peak_source = "--peak-tflops" if peak else "table"
    if not peak and dev.type == "cuda":
        peak = peak_tflops(dev.name)
    device_info = {
        "type": dev.type,
        "name": dev.name,
        "memory_bytes": dev.memory_bytes,
        "precision": dev.precision,
        "peak_tflops": peak,
        "peak_source": peak_source if peak else None,
    }
    dataset_info = {
        "path": str(ds.root),
        "format": ds.format,
        "train_tokens": train.stream_tokens,
        "val_tokens": ds.split("val").stream_tokens,
        "manifest_sha256": ds.manifest_sha256,
    }
    plan = make_plan(
        cfg,
        int(budget_tokens),
        train.stream_tokens,
        dataset=dataset_info,
        device=device_info,
        allow_repeats=allow_repeats or (ckpt is not None),
    )
    plan["budget_source"] = budget_source
    plan["world_size"] = world.size
    examples = None
    if hellaswag is not None:
        from fwpipe.train import hellaswag as hs

        examples = hs.load(hellaswag)
        plan["hellaswag"] = {"path": str(hellaswag), "examples": len(examples)}
    if sizing:
        plan["sizing"] = {
            "prepared_budget_tokens": sizing.budget_tokens,
            "prepared_max_epochs": sizing.max_epochs,
            "prepared_epochs": sizing.epochs,
            "reached": sizing.reached,
        }
    if ckpt is not None:
        fp = checkpoint.dataset_fingerprint(ds)
        checkpoint.check_dataset(ckpt, fp, ds.root)
    return Run(cfg, ds, Path(out), plan, dev, int(budget_tokens), ckpt, ckpt_stat, world, examples)


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _same_config(given: TrainConfig, run_cfg: TrainConfig, name: Any, out: Path) -> None:
    """--config with --resume must name the run's own config: the checkpoint's config wins, and
    silently training with another one than the user asked for would be worse than refusing."""
    a, b = to_dict(given), to_dict(run_cfg)
    a.update({f"model.{k}": v for k, v in a.pop("model").items()})
    b.update({f"model.{k}": v for k, v in b.pop("model").items()})
    a.pop("name"), b.pop("name")
    if a["threads"] == 0:  # torch's choice, which the run pinned to a count when it started
        a.pop("threads"), b.pop("threads")
    diff = [f"{k} {a[k]!r} vs the run's {b[k]!r}" for k in a if a[k] != b[k]]
    if diff:
        raise ConfigError(
            f"--config {name} differs from the config of the run being resumed ({'; '.join(diff[:3])})",
            f"resume with --out {out} and no --config (the run keeps its own), or start a new run with another --out",
        )


def train(run: Run, on_event: Callable[[Event], None] | None = None, stop_after: int | None = None) -> dict[str, Any]:
    """Train to the budget (or until `stop_after` iterations are done, leaving a resumable last.pt).

    The run directory is locked for the whole run; a second train into it is refused. Under
    torchrun only rank 0 claims it; the process group is joined here and left at the end."""
    from fwpipe.train import checkpoint

    w = run.world
    dist.init(w, run.device.type)
    if not w.main:
        try:
            return _train(run, None, lambda e: None, stop_after)
        finally:
            dist.close(w)
    rd = rundir.RunDir.claim(run.out)
    try:
        last = run.out / rundir.LAST
        if run.checkpoint is None and last.exists():
            raise ConfigError(
                f"{run.out} already holds a run (last.pt)", "pass --resume to continue it, or another --out"
            )
        if run.checkpoint is not None and _stat(last) != run.checkpoint_stat:
            run.checkpoint = checkpoint.load(last)  # another train moved the run on before we got the lock
            checkpoint.check_dataset(run.checkpoint, checkpoint.dataset_fingerprint(run.dataset), run.dataset.root)
        return _train(run, rd, on_event or (lambda e: None), stop_after)
    finally:
        rd.close()
        dist.close(w)


def _train(run: Run, rd: rundir.RunDir | None, emit: Callable[[Event], None], stop_after: int | None) -> dict[str, Any]:
    loop = Loop(run, rd, emit)
    try:
        return loop.run(stop_after)
    finally:
        loop.close()


class Loop:
    """One training run's loop: `step` trains one iteration, `evaluate` scores and saves,
    `save` writes the TrainState, `on_interrupt` saves what a Ctrl-C inside an iteration left.

    The recipe only shows up as data: the model's parts (ModelConfig), the optimizers and their
    groups (recipe.build_optimizers), the schedule (recipe.set_lrs). Every rank runs it; only the
    one holding the run directory (rd, rank 0) writes."""

    def __init__(self, run: Run, rd: rundir.RunDir | None, emit: Callable[[Event], None]):
        import torch

        from fwpipe.train import checkpoint
        from fwpipe.train.data import TrainLoader, fixed_batches
        from fwpipe.train.model import GPT
        from fwpipe.train.recipe import build_optimizers

        self.run_, self.rd, self.emit = run, rd, emit
        cfg, plan, dev, w = run.cfg, run.plan, run.device, run.world
        # given back in close(): a library call leaves torch's global thread count as it found it
        self.threads_before = torch.get_num_threads()
        self.threads = set_threads(cfg.threads)
        if cfg.threads == 0 and dev.type == "cpu":
            # the count decides the losses' last bits (a CPU reduction splits its sum by thread), and
            # torch's choice depends on the shell (OMP_NUM_THREADS, CPU affinity): the run keeps the
            # count it started with, in config.toml and in every checkpoint, so a resume reuses it
            cfg = run.cfg = replace(cfg, threads=self.threads)
        self.cfg, self.plan, self.dev, self.w = cfg, plan, dev, w
        self.main = rd is not None  # rank 0 (or the only process): the one that writes
        if self.main:
            rd.write_json(rundir.PLAN_JSON, plan)
            rd.write_bytes(rundir.CONFIG_TOML, to_toml(cfg).encode())
        self.accum = dist.accum_per_rank(cfg.grad_accum, w)
        self.fingerprint = checkpoint.dataset_fingerprint(run.dataset)
        self.max_iters = plan["iterations"]
        self.tpi = cfg.tokens_per_iter
        self.device = device = dev.torch_device
        self.last_path = run.out / rundir.LAST

        torch.manual_seed(cfg.seed)
        torch.backends.cuda.matmul.allow_tf32 = True  # only for fp32 matmuls outside autocast
        torch.backends.cudnn.allow_tf32 = True
        model = GPT(cfg.model).to(device)
        optimizers = build_optimizers(model, cfg, dev.type)
        scaler = torch.amp.GradScaler(dev.type if dev.type == "cuda" else "cpu", enabled=dev.precision == "fp16")
        amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(dev.precision)
        self.ctx = torch.autocast(device_type=dev.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
        loader = TrainLoader(
            run.dataset.split("train"),
            cfg.model.block_size,
            cfg.batch_size,
            cfg.seed,
            device,
            rank=w.rank,
            world_size=w.size,
            micro_per_rank=self.accum,
        )
        self.val_batches = fixed_batches(
            run.dataset.split("val"), cfg.model.block_size, cfg.batch_size, cfg.eval_iters, cfg.seed
        )
        self.train_batches = fixed_batches(
            run.dataset.split("train"), cfg.model.block_size, cfg.batch_size, cfg.eval_iters, cfg.seed + 1
        )
        if not self.val_batches:
            emit(
                {
                    "kind": "message",
                    "level": "warning",
                    "text": "the dataset has no val split: no val loss, no plateau diagnosis",
                }
            )
        self.model, self.optimizers, self.scaler, self.loader = model, optimizers, scaler, loader
        self.state = checkpoint.TrainState(model, optimizers, scaler, loader)

        self.records: list[Event] = []
        self.plotted_at, self.plot_stale, self.plot_diag = -math.inf, False, None  # loss.png: see draw()
        if run.checkpoint is not None:
            self.state.restore(run.checkpoint, self.last_path)
            it = self.state.iter
            # lines logged after the checkpoint (a crash or kill) are dropped: they will be logged again
            text = (rd.read_text(rundir.METRICS) if self.main else None) or ""
            try:
                self.records = [r for r in map(json.loads, text.splitlines()) if r["iter"] <= it]
            except (ValueError, TypeError, KeyError) as e:
                raise InputFormatError(
                    f"{run.out / rundir.METRICS}: a line is not a metrics record ({e})",
                    "restore the file, or delete it to restart the log at the checkpoint",
                ) from e
            emit(
                {
                    "kind": "message",
                    "level": "info",
                    "text": f"resumed {self.last_path} at iteration {it:,} (epoch {ratio(loader.epoch)}, recipe {cfg.recipe})",
                }
            )
        self.ckpt_iter = self.state.iter if run.checkpoint is not None else 0
        self.metrics = None
        if self.main:
            rd.write_bytes(rundir.METRICS, "".join(json.dumps(r) + "\n" for r in self.records).encode())
            self.metrics = rd.open_append(rundir.METRICS)
        self.sinks = open_sinks(run.out, cfg, plan) if self.main else []

        self.fwd = model
        if cfg.compile:
            self.fwd = _compile(torch, model, self.ctx, self.val_batches or self.train_batches, device, emit)
        self.step_fwd = self.fwd  # the module the training steps call: under DDP it syncs the gradients
        if w.enabled:
            from torch.nn.parallel import DistributedDataParallel

            self.step_fwd = DistributedDataParallel(self.fwd, device_ids=[w.local_rank] if dev.type == "cuda" else None)
        # set on the device when any step's loss is not finite; read where the loop syncs anyway
        # (log lines, evals, checkpoints), so watching for NaN costs no extra device sync per step
        self.first_bad = torch.full((), -1, dtype=torch.long, device=device)
        self.step_loss: float | None = None
        self.snapshot: tuple[dict, dict] | None = None

    # -- records -------------------------------------------------------------------------------

    def record(self, r: Event) -> None:
        self.records.append(r)
        if self.main:
            with self.rd.writing(rundir.METRICS):
                self.metrics.write((json.dumps(r) + "\n").encode())
            for sink in self.sinks:
                sink.write(r)
        self.emit(r)

    def close(self) -> None:
        set_threads(self.threads_before)
        if self.metrics is not None:
            self.metrics.close()
        for sink in self.sinks:
            sink.close()

    # -- checks --------------------------------------------------------------------------------

    def weights_finite(self) -> bool:
        import torch

        with torch.no_grad():  # one pass over the parameters, only when a checkpoint is about to be written
            return bool(torch.stack([torch.isfinite(p).all() for p in self.model.parameters()]).all())

    def diverged(self, iter_done: int, what: str) -> DivergedError:
        kept = (
            f"{self.last_path} keeps iteration {self.ckpt_iter}, the last finite state"
            if self.ckpt_iter
            else "no checkpoint was written"
        )
        return DivergedError(
            f"training diverged at iteration {iter_done:,}: {what}; stopped, {kept}",
            "start a new run (another --out) with a lower lr (--set lr=...), a longer warmup or grad_clip=1",
        )

    def any_bad(self) -> int:
        """The first iteration whose loss was not finite on any rank, else -1 (all ranks call it together)."""
        import torch

        never = torch.iinfo(torch.long).max
        b = int(dist.all_min(self.w, torch.where(self.first_bad < 0, never, self.first_bad), self.device))
        return -1 if b == never else b

    # -- save, evaluate, step ------------------------------------------------------------------

    def save(self, best: bool, snapshot: tuple[dict, dict] | None = None) -> None:
        """Write last.pt (and best.pt) from the TrainState; `snapshot` = (loader, rng) state from
        the start of an interrupted iteration."""
        from fwpipe.train import checkpoint

        iter_done = self.state.iter
        if not self.weights_finite():
            raise self.diverged(iter_done, "the weights hold NaN or inf")
        if not self.main:
            self.ckpt_iter = iter_done
            return
        run = self.run_
        state = {
            **self.state.capture(*(snapshot or ())),
            "config": to_dict(self.cfg),
            "budget_tokens": run.budget_tokens,
            "dataset_sha256": self.fingerprint,
            "dataset_path": str(run.dataset.root),
            "fwpipe_version": __version__,
        }
        with self.rd.writing(rundir.LAST) as path:
            checkpoint.save(path, state)
        self.ckpt_iter = iter_done
        if best:
            with self.rd.writing(rundir.BEST) as path:
                checkpoint.save(path, state)

    def estimate(self, batches: list) -> float | None:
        """The mean loss over the fixed batches; under DDP each rank takes every size-th one."""
        import torch

        from fwpipe.train.data import batch_to_device

        if not batches:
            return None
        w = self.w
        self.fwd.eval()
        total = 0.0
        mine = batches[w.rank :: w.size]
        with torch.no_grad():
            for xy in mine:
                x, y = batch_to_device(xy, self.device)
                with self.ctx:
                    _, loss = self.fwd(x, y)
                total += loss.item()
        self.fwd.train()
        total, n = dist.all_sum(w, [total, len(mine)], self.device)
        return total / n

    def evaluate(self) -> None:
        from fwpipe.diagnosis import at_eval

        plan, st, iter_done = self.plan, self.state, self.state.iter
        val_loss, train_loss = self.estimate(self.val_batches), self.estimate(self.train_batches)
        for name, v in (("val", val_loss), ("train", train_loss)):
            if v is not None and not math.isfinite(v):
                raise self.diverged(iter_done, f"the {name} loss is {v}")
        e = {
            "kind": "eval",
            "iter": iter_done,
            "tokens": iter_done * self.tpi,
            "epoch": self.loader.epoch,
            "val_loss": val_loss,
            "train_loss": train_loss,
        }
        if self.run_.hellaswag:
            from fwpipe.train import hellaswag as hs

            # the uncompiled model: HellaSwag's rows vary in length, each would be a recompile
            e.update(hs.evaluate(self.model, self.run_.hellaswag, self.device, self.ctx, self.w))
        st.evals.append({k: e[k] for k in ("iter", "tokens", "epoch", "val_loss", "train_loss")})
        d = at_eval(st.evals, **diagnosis_inputs(plan)) if val_loss is not None else {}
        e["improvement_per_doubling"] = d.get("improvement_per_doubling")
        e["plateau"] = d.get("plateau", False)
        self.record(e)
        if d.get("diagnosis"):
            self.emit({"kind": "diagnosis", "iter": iter_done, **d["diagnosis"]})
        is_best = val_loss is not None and val_loss < st.best_val
        if is_best:
            st.best_val = val_loss
        if iter_done > 0:
            self.save(is_best or val_loss is None)
        self.plot_diag, self.plot_stale = d.get("diagnosis"), True
        if time.perf_counter() - self.plotted_at >= PLOT_EVERY_S or iter_done >= self.max_iters:
            self.draw()

    def draw(self) -> None:
        """Redraw loss.png from the records so far (rank 0 only)."""
        from fwpipe.train.plot import plot_losses

        if not self.main or not self.plot_stale:
            return
        cfg, plan, d = self.cfg, self.plan, self.plot_diag
        with self.rd.writing(rundir.LOSS_PNG) as path:
            plot_losses(
                self.records,
                self.loader.tokens_per_epoch,
                path,
                title=f"{cfg.name} ({cfg.recipe}): {params(plan['params_non_embedding'])} params",
                dropout=cfg.model.dropout,
                diagnosis=d,
                budget_tokens=plan["tokens_trained"],
                verdict=d["text"][1] if d else None,
            )  # fwpipe.diagnosis's verdict line
        self.plotted_at, self.plot_stale = time.perf_counter(), False

    def step(self) -> tuple[Any, Any, float]:
        """One iteration: every micro-batch forward and backward, clip, every optimizer steps.
        Returns (the loss summed over micro-steps, as a device tensor; the logged lr)."""
        import torch

        from fwpipe.train import checkpoint
        from fwpipe.train.recipe import set_lrs

        cfg, w, accum, st = self.cfg, self.w, self.accum, self.state
        self.snapshot = (
            self.loader.state_dict(),
            checkpoint.rng_state(),
        )  # the state a Ctrl-C inside this iteration saves
        lr = set_lrs(self.optimizers, st.iter, cfg, self.max_iters)
        loss_sum = torch.zeros((), device=self.device)
        x, y = self.loader.next_batch()
        for micro in range(accum):
            # DDP averages the ranks' gradients, so each rank divides by its own micro-steps only;
            # they sync once, on the last micro-step
            sync = contextlib.nullcontext() if micro + 1 == accum or not w.enabled else self.step_fwd.no_sync()
            with sync:
                with self.ctx:
                    _, loss = self.step_fwd(x, y)
                    loss = loss / accum  # the gradients add up to the mean over the whole batch
                if micro + 1 < accum:
                    x, y = self.loader.next_batch()  # fetch while the device works on this micro-step
                self.scaler.scale(loss).backward()
            loss_sum += loss.detach()
        for opt in self.optimizers.values():
            self.scaler.unscale_(opt)
        grad_norm = torch.nn.utils.clip_grad_norm_(
            self.model.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else math.inf
        )
        self.snapshot = None  # from here on the weights change: a Ctrl-C now saves nothing
        for opt in self.optimizers.values():
            self.scaler.step(opt)
        self.scaler.update()
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        self.first_bad = torch.where((self.first_bad < 0) & ~torch.isfinite(loss_sum), st.iter + 1, self.first_bad)
        st.iter += 1
        return loss_sum, grad_norm, lr

    def on_interrupt(self) -> None:
        """A Ctrl-C: save the state from the start of the unfinished iteration, if it is sound."""
        if self.snapshot is not None and self.state.iter > 0 and int(self.first_bad) < 0 and self.weights_finite():
            self.save(False, self.snapshot)
            log.warning("interrupted: saved %s at iteration %d", self.last_path, self.state.iter)

    # -- the loop ------------------------------------------------------------------------------

    def run(self, stop_after: int | None) -> dict[str, Any]:
        cfg, st, max_iters, tpi, w = self.cfg, self.state, self.max_iters, self.tpi, self.w
        self.emit(
            {
                "kind": "message",
                "level": "info",
                "text": f"{self.loader.windows_per_epoch:,} windows of {cfg.model.block_size + 1} tokens per epoch = "
                f"{tokens(self.loader.tokens_per_epoch)} tokens; {max_iters:,} iterations to go from {st.iter:,} "
                f"(recipe {cfg.recipe}: {' + '.join(self.optimizers)}, {cfg.schedule} schedule; "
                f"{self.threads} CPU threads)",
            }
        )
        if st.iter == 0:
            self.evaluate()
        stop = max_iters if stop_after is None else min(max_iters, stop_after)
        t_last, it_last = time.perf_counter(), st.iter
        flops_tok, peak = self.plan["flops_per_token"], dev_peak(self.plan)
        peak = peak * w.size if peak else peak  # MFU of the whole run: every rank's device counts
        eta_said = False
        try:
            while st.iter < stop:
                loss_sum, grad_norm, lr = self.step()
                it = st.iter
                if it % cfg.log_interval == 0 or it == stop:
                    # syncs with the device, so the timing below is honest; under DDP, the mean over ranks
                    self.step_loss = step_loss = dist.all_sum(w, [loss_sum.item()], self.device)[0] / w.size
                    bad = self.any_bad()
                    if bad >= 0:
                        raise self.diverged(bad, f"the training loss is {step_loss if bad == it else 'not finite'}")
                    now = time.perf_counter()
                    tok_s = (it - it_last) * tpi / (now - t_last)
                    t_last, it_last = now, it
                    r = {
                        "kind": "train",
                        "iter": it,
                        "tokens": it * tpi,
                        "epoch": self.loader.epoch,
                        "loss": step_loss,
                        "lr": lr,
                        "grad_norm": grad_norm.item(),
                        "tokens_per_s": tok_s,
                        "mfu": mfu(tok_s, flops_tok, peak),
                        "eta_s": (max_iters - it) * tpi / tok_s,
                    }
                    self.record(r)
                    if not eta_said and it >= 2 * cfg.log_interval:
                        eta_said = True
                        self.emit(
                            {
                                "kind": "message",
                                "level": "info",
                                "text": f"ETA {duration(r['eta_s'])} for {max_iters - it:,} more iterations at {tokens(tok_s)} tokens/s",
                            }
                        )
                if it % cfg.eval_interval == 0 or it == max_iters or it == stop:
                    bad = self.any_bad()
                    if bad >= 0:
                        raise self.diverged(bad, "the training loss is not finite")
                if it % cfg.eval_interval == 0 or it == max_iters:
                    self.evaluate()
                    t_last, it_last = time.perf_counter(), it  # tokens/s counts training steps only
                elif it == stop:
                    self.save(False)
        except KeyboardInterrupt:
            self.on_interrupt()
            raise
        self.draw()  # the evals since the last redraw, when it was less than PLOT_EVERY_S ago
        best, evals = st.best_val, st.evals
        summary = {
            "kind": "done",
            "out": str(self.run_.out),
            "recipe": cfg.recipe,
            "iterations": st.iter,
            "max_iterations": max_iters,
            "complete": st.iter >= max_iters,
            "tokens": st.iter * tpi,
            "epoch": self.loader.epoch,
            "best_val_loss": best if math.isfinite(best) else None,
            "last_val_loss": evals[-1]["val_loss"] if evals else None,
        }
        self.emit(summary)
        return summary


def set_threads(threads: int) -> int:
    """torch's intra-op CPU threads: `threads` when > 0, else torch's own choice (OMP_NUM_THREADS,
    else the physical cores). A CPU matmul splits its sums by thread, so the count is part of
    what makes two runs' losses equal to the last bit; the loop logs it. Returns the count."""
    import torch

    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def open_sinks(out: Path, cfg: TrainConfig, plan: dict[str, Any]) -> list:
    """The optional metric mirrors (--tensorboard, --wandb); metrics.jsonl stays the record."""
    from fwpipe.train import sinks

    return sinks.open_sinks(out, cfg, plan)


def dev_peak(plan: dict[str, Any]) -> float | None:
    return plan.get("device", {}).get("peak_tflops")


def _compile(torch, model, ctx, batches: list, device: str, emit: Callable[[Event], None]):
    """torch.compile the model and run one forward/backward now, so that a failure shows up
    before training; on any failure warn and continue uncompiled."""
    from fwpipe.train.checkpoint import rng_state, set_rng_state
    from fwpipe.train.data import batch_to_device

    rng = rng_state()
    try:
        compiled = torch.compile(model)
        if batches:
            x, y = batch_to_device(batches[0], device)
            with ctx:
                _, loss = compiled(x, y)
            loss.backward()
        return compiled
    except Exception as e:  # noqa: BLE001 - any compiler failure is survivable
        msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        log.warning("torch.compile failed, training uncompiled: %s", msg)
        emit({"kind": "message", "level": "warning", "text": f"torch.compile failed ({msg}); continuing uncompiled"})
        return model
    finally:
        model.zero_grad(set_to_none=True)
        set_rng_state(rng)

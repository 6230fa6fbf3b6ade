"""Benchmark: `fwpipe prepare`'s peak disk against the dataset it leaves, and what a resume costs.

disk: runs `fwpipe prepare` in a child process at each --mb size and each --dedup mode while
this process samples the output directory's allocated bytes (every file under it, .work
included) every --every seconds. Prints the peak, the final dataset's size and their ratio
(goal: peak <= 1.3 x final), and what the peak was made of (.work against the rest).

resume: per --dedup mode, a full run, then a run into a fresh directory killed with SIGKILL
once 90% of its units are done (--dedup none: unit markers under .work/units; exact / near:
90% of the full run's wall time, their units come and go by stage), then the same command
again. Prints the rerun's CPU seconds over the full run's (goal <= 0.20). CPU seconds, not wall
seconds: steadier on a shared machine (prepare reaps its worker pool, so wait4 counts their CPU
too). The rerun's bytes are checked against the full run's, file by file.

The corpus is real FineWeb text (../shared/data/fineweb, else the bundled sample): lines drawn
at random from its 1,400 documents into documents with the same line counts and fresh ids, so
no two documents are near duplicates (dedup has real work: 2% are planted exact copies), split
over --files parquet files with FineWeb-like row groups.

    python bench/disk_bench.py                                  # both, 25 and 100 MB of text
    python bench/disk_bench.py --only disk --mb 50,200 --dedup none,near
    python bench/disk_bench.py --only resume --mb 100
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

DISK_GOAL = 1.3
RESUME_GOAL = 0.20


def shared_fineweb() -> list[Path]:
    shared = (
        Path(os.environ.get("FWPIPE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "fineweb"
    )
    from fwpipe.sample import SAMPLE_FILES

    return [shared / f.name if (shared / f.name).exists() else f for f in SAMPLE_FILES]


def build_corpus(root: Path, mb: float, files: int, seed: int = 0) -> list[Path]:
    """~mb MB of FineWeb-line documents in `files` parquet files (2% exact copies)."""
    docs = [t for f in shared_fineweb() for t in pq.read_table(f, columns=["text"])["text"].to_pylist() if t]
    lines = [ln for t in docs for ln in t.split("\n") if ln.strip()]
    shape = [max(1, len([ln for ln in t.split("\n") if ln.strip()])) for t in docs]
    rng = random.Random(seed)
    texts, chars = [], 0
    while chars < mb * 1e6:
        if texts and rng.random() < 0.02:
            t = texts[rng.randrange(len(texts))]  # an exact copy for dedup to find
        else:
            t = "\n".join(rng.choice(lines) for _ in range(rng.choice(shape)))
        texts.append(t)
        chars += len(t)
    root.mkdir(parents=True, exist_ok=True)
    per = -(-len(texts) // files)
    paths = []
    for f in range(files):
        part = texts[f * per : (f + 1) * per]
        ids = [f"<urn:uuid:bench-{f}-{k:09d}>" for k in range(len(part))]
        urls = [f"https://example.com/{f}/{k}" for k in range(len(part))]
        p = root / f"part-{f:03d}.parquet"
        pq.write_table(pa.table({"text": part, "id": ids, "url": urls}), p, row_group_size=1000)
        paths.append(p)
    return paths


def disk_bytes(root: Path, parts: dict | None = None) -> tuple[int, int]:
    """(allocated bytes of every file under root, of those under root/.work); files may vanish.
    parts: filled with the bytes under each entry of .work (units, stage1-000000, ...)."""
    total = work = 0
    stack = [(root, None)]
    while stack:
        d, in_work = stack.pop()
        try:
            it = list(os.scandir(d))
        except OSError:
            continue
        for e in it:
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            top = in_work or (e.name if Path(d).name == ".work" else None)
            if e.is_dir(follow_symlinks=False):
                stack.append((Path(e.path), top or ("" if e.name == ".work" else None)))
            else:
                total += st.st_blocks * 512
                if in_work is not None or Path(d).name == ".work":
                    work += st.st_blocks * 512
                    key = top if top else "files"
                    if parts is not None:
                        parts[key.split("-")[0].rstrip("0123456789_") or key] = (
                            parts.get(key.split("-")[0].rstrip("0123456789_") or key, 0) + st.st_blocks * 512
                        )
    return total, work


def command(inputs: list[Path], out: Path, dedup: str, workers: int, extra: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "fwpipe",
        "prepare",
        *map(str, inputs),
        "-o",
        str(out),
        "--dedup",
        dedup,
        "--workers",
        str(workers),
        *extra,
    ]


def run(cmd: list[str], *, sample: Path | None = None, every: float = 0.05, kill=None) -> dict:
    """Run cmd; CPU seconds (its reaped children included), wall seconds, and with `sample` the
    peak disk of that directory. kill(elapsed) -> True sends SIGKILL."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = {"total": 0, "work": 0, "parts": {}}
    stop = threading.Event()
    killed = threading.Event()

    def watch():
        while not stop.is_set():
            if sample is not None:
                parts: dict = {}
                total, work = disk_bytes(sample, parts)
                if total > peak["total"]:
                    peak.update(total=total, work=work, parts=parts)
            if kill is not None and not killed.is_set() and kill(time.perf_counter() - t0):
                os.kill(p.pid, signal.SIGKILL)
                killed.set()
            stop.wait(every)

    th = threading.Thread(target=watch, daemon=True)
    th.start()
    stderr = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    stop.set()
    th.join()
    p.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    if code and not killed.is_set():
        sys.exit(f"{' '.join(cmd)} failed:\n{stderr.decode(errors='replace')[-3000:]}")
    return {
        "cpu": ru.ru_utime + ru.ru_stime,
        "wall": time.perf_counter() - t0,
        "peak": peak["total"],
        "peak_work": peak["work"],
        "peak_parts": peak["parts"],
        "killed": killed.is_set(),
    }


def digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".work" not in p.parts
    }


def gb(n: float) -> str:
    return f"{n / 1e9:.3f} GB"


def disk(tmp: Path, sizes: list[float], modes: list[str], files: int, workers: int, every: float, extra) -> None:
    print(f"\n== peak disk of the output directory (.work included) against the dataset left; goal <= {DISK_GOAL}x")
    for mb in sizes:
        inputs = build_corpus(tmp / f"in-{mb:g}", mb, files)
        in_bytes = sum(p.stat().st_size for p in inputs)
        for mode in modes:
            out = tmp / f"out-{mb:g}-{mode}"
            r = run(command(inputs, out, mode, workers, extra), sample=out, every=every)
            final, _ = disk_bytes(out)
            bins = sum(p.stat().st_blocks * 512 for p in out.glob("*.bin"))
            print(
                f"{mb:6g} MB text ({gb(in_bytes)} parquet in {files} files)  --dedup {mode:<5}  "
                f"peak {gb(r['peak'])} (.work {gb(r['peak_work'])})  final {gb(final)} (shards {gb(bins)})  "
                f"peak/final {r['peak'] / final:.2f}  {r['wall']:.0f} s",
                flush=True,
            )
            made = ", ".join(f"{k} {v / 1e6:.0f} MB" for k, v in sorted(r["peak_parts"].items(), key=lambda kv: -kv[1]))
            print(f"        at the peak .work held: {made}", flush=True)
            shutil.rmtree(out)
        shutil.rmtree(tmp / f"in-{mb:g}")


def units_done(out: Path) -> int:
    return sum(1 for _ in (out / ".work" / "units").glob("u*/unit.json"))


def n_units(inputs: list[Path]) -> int:
    from fwpipe.pipeline.inputs import inspect
    from fwpipe.pipeline.units import plan_units

    return len(plan_units([inspect(p, "text", hash_content=False) for p in inputs]))


def resume(tmp: Path, mb: float, modes: list[str], files: int, workers: int, extra) -> None:
    print(
        f"\n== a run killed at ~90%, then the same command: CPU of the rerun / CPU of a full run; goal <= {RESUME_GOAL}"
    )
    inputs = build_corpus(tmp / "in-resume", mb, files)
    total_units = n_units(inputs)
    for mode in modes:
        full_out, out = tmp / f"full-{mode}", tmp / f"killed-{mode}"
        full = run(command(inputs, full_out, mode, workers, extra))
        if mode == "none":
            want = int(0.9 * total_units)
            kill = lambda _el, out=out, want=want: units_done(out) >= want  # noqa: E731
            where = f"{want}/{total_units} units"
        else:
            kill = lambda el, wall=full["wall"]: el >= 0.9 * wall  # noqa: E731
            where = f"{0.9 * full['wall']:.1f} s of {full['wall']:.1f} s"
        killed = run(command(inputs, out, mode, workers, extra), kill=kill, every=0.02)
        if not killed["killed"]:
            print(f"--dedup {mode}: the run finished before the kill; nothing measured")
            continue
        at = units_done(out) if mode == "none" else None
        rerun = run(command(inputs, out, mode, workers, extra))
        same = digest(out) == digest(full_out)
        print(
            f"--dedup {mode:<5} full {full['cpu']:6.1f} CPU-s ({full['wall']:.1f} s)  killed at {where}"
            + (f" ({at} done)" if at is not None else "")
            + f"  rerun {rerun['cpu']:6.1f} CPU-s ({rerun['wall']:.1f} s)  "
            f"rerun/full {rerun['cpu'] / full['cpu']:.3f}  bytes identical: {same}",
            flush=True,
        )
        shutil.rmtree(full_out), shutil.rmtree(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=["disk", "resume"])
    ap.add_argument("--mb", default="25,100", help="MB of text at each size (comma-separated); resume uses the last")
    ap.add_argument("--dedup", default="none,exact,near")
    ap.add_argument("--files", type=int, default=4, help="input parquet files")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--every", type=float, default=0.05, help="seconds between disk samples")
    ap.add_argument("--shard-tokens", default=None, help="passed to prepare (default: prepare's, 100M)")
    ap.add_argument("--tmp", default=None, help="where to write inputs and outputs (default: system temp)")
    a = ap.parse_args()
    sizes = [float(x) for x in a.mb.split(",") if x]
    modes = [m for m in a.dedup.split(",") if m]
    extra = ["--shard-tokens", a.shard_tokens] if a.shard_tokens else []
    tmp = Path(tempfile.mkdtemp(prefix="fwpipe-disk-", dir=a.tmp))
    try:
        if a.only in (None, "disk"):
            disk(tmp, sizes, modes, a.files, a.workers, a.every, extra)
        if a.only in (None, "resume"):
            resume(tmp, sizes[-1], modes, a.files, a.workers, extra)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

"""prepare's process pool (this checkout) against the threads of a reference checkout, same inputs.

    git archive c4fc7d2 | tar -x -C /tmp/fwref        # threads: prepare before work units
    python bench/units_vs_threads.py /tmp/fwref [--copies 8] [--workers 2] [--repeat 2]

Two corpora: the bundled 1,400-document sample as --copies files (long documents, ~2.3M
tokens a copy, like a directory of FineWeb files) and the same texts cut into ~45-token pieces
in one file (FineWeb-like short rows).
Prints the best of --repeat interleaved end-to-end runs of `prepare --dedup none` (start-up
included), and tokens per CPU-second (all processes), which a busy machine disturbs less.
Then, in this process (no start-up), the same units on a thread pool against the process pool.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from fwpipe.executors import ExecutorBase

SAMPLE = Path(__file__).resolve().parents[1] / "fwpipe" / "sample" / "fineweb-sample10bt-1400.parquet"


def corpora(tmp: Path, copies: int) -> dict[str, Path]:
    t = pq.read_table(SAMPLE, columns=["text"])
    texts = t["text"].to_pylist()
    (tmp / "long").mkdir()
    for i in range(copies):  # distinct texts, distinct keys
        pq.write_table(pa.table({"text": [f"{i}:{x}" for x in texts]}), tmp / "long" / f"{i:03d}.parquet")
    short = []
    for i in range(copies):
        for x in texts:
            words = x.split()
            short.extend(f"{i} " + " ".join(words[j : j + 32]) for j in range(0, len(words), 32))
    pq.write_table(pa.table({"text": short}), tmp / "short.parquet", row_group_size=10_000)
    return {"long": tmp / "long", "short": tmp / "short.parquet"}


def run(pythonpath: str | None, src: Path, out: Path, workers: int) -> tuple[float, float, dict]:
    """Wall seconds, CPU seconds (the command and every process it waited for) and the summary."""
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    js = out.with_suffix(".json")
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "fwpipe.cli",
            "prepare",
            str(src),
            "-o",
            str(out),
            "--dedup",
            "none",
            "--workers",
            str(workers),
            "--json",
            str(js),
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime, json.loads(js.read_text())


class ThreadExecutor(ExecutorBase):
    """The executor interface on threads: units share one interpreter (tiktoken drops the GIL)."""

    def __init__(self, workers: int):
        from concurrent.futures import ThreadPoolExecutor

        self.workers, self.pool = workers, ThreadPoolExecutor(workers)

    def map(self, fn, units, *, window=None):
        futures = [self.pool.submit(fn, *a) for a in units]
        for f in futures:
            yield f.result()

    def close(self) -> None:
        self.pool.shutdown()


def in_process(src: Path, tmp: Path, workers: int, repeat: int) -> str:
    from fwpipe.executors import LocalExecutor
    from fwpipe.pipeline.prepare import PrepareOptions, prepare

    best: dict = {}
    for r in range(repeat):
        for label, make in (("units on threads", ThreadExecutor), ("units on processes", LocalExecutor)):
            ex = make(workers)
            t0 = time.perf_counter()
            s = prepare(
                [src],
                tmp / f"inproc-{src.stem}-{label[9:]}-{r}",
                options=PrepareOptions(dedup="none"),
                executor=ex,
                progress=False,
            )
            best[label] = min(best.get(label, 1e9), time.perf_counter() - t0)
            ex.close()
    return "  ".join(f"{k}: {s['tokens'] / v / 1e6:.2f}M tok/s" for k, v in best.items())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("ref")
    ap.add_argument("--copies", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        for name, src in corpora(tmp, a.copies).items():
            rows = sum(
                pq.read_metadata(f).num_rows for f in ([src] if src.is_file() else sorted(src.glob("*.parquet")))
            )
            best: dict = {}
            for r in range(a.repeat):  # interleaved, so that a busy moment of the machine hits both
                for label, pp in (("threads (ref)", a.ref), ("processes", None)):
                    wall, cpu, s = run(pp, src, tmp / f"{name}-{label[:4]}-{r}", a.workers)
                    if label not in best or wall < best[label][0]:
                        best[label] = (wall, cpu, s)
            for label, (wall, cpu, s) in best.items():
                print(
                    f"{name:5s} {rows:>8,} rows {s['tokens']:>12,} tokens  {label:14s} {wall:6.2f} s wall  "
                    f"{s['tokens'] / wall / 1e6:5.2f}M tok/s end to end  {s['tokens'] / cpu / 1e6:5.2f}M tok per CPU-s",
                    flush=True,
                )
            print(f"{name:5s} in process: {in_process(src, tmp, a.workers, a.repeat)}", flush=True)


if __name__ == "__main__":
    main()

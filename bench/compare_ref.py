"""Byte-identity check: every output file of `fwpipe prepare` against another checkout's.

    git archive c4fc7d2 | tar -x -C /tmp/fwref        # the reference (e.g. main before units)
    python bench/compare_ref.py /tmp/fwref [--quick]

Runs each case once with the reference (PYTHONPATH=REF) and with this checkout (inline, two
processes, and small units), and compares the sha256 of every file in the output directories.
Prints one line per case and exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "fwpipe" / "sample"

CASES = {
    "sample": ["--sample"],
    "sample-small-shards": ["--sample", "--shard-tokens", "20000", "--dedup", "none"],
    "sample-budget": ["--sample", "--budget-tokens", "1.2e6", "--shard-tokens", "100000", "--dedup", "none"],
    "sample-budget-epochs": ["--sample", "--budget-tokens", "2e6", "--max-epochs", "4", "--dedup", "none"],
    "sample-budget-near": ["--sample", "--budget-tokens", "1.2e6", "--shard-tokens", "100000"],
    "sample-nanogpt": ["--sample", "--format", "nanogpt", "--shard-tokens", "50000", "--dedup", "none"],
    "sample-none": ["--sample", "--dedup", "none"],
    "sample-exact": ["--sample", "--dedup", "exact", "--shard-tokens", "30000"],
    "sample-near": ["--sample", "--dedup", "near", "--shard-tokens", "30000"],
    "tiny-forced-val": ["{tiny}", "--dedup", "none"],
    "small-rg-none": ["{smallrg}", "--dedup", "none", "--shard-tokens", "40000"],
    "small-rg-near": ["{smallrg}", "{dups}", "--dedup", "near", "--shard-tokens", "40000", "--val-fraction", "0.1"],
    "dups-exact": ["{dups}", "--dedup", "exact", "--val-fraction", "0.2", "--shard-tokens", "50000"],
    "nulls": ["{nulls}", "--dedup", "none", "--shard-tokens", "3000"],
}


def digest(d: Path) -> dict[str, str]:
    return {
        str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*")) if p.is_file()
    }


def run(pythonpath: str | None, args: list[str], out: Path, extra: list[str], unit_rows: int | None = None) -> None:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    code = "import sys; from fwpipe.cli import main; "
    if unit_rows:  # prepare's own default, for this process only
        code += f"from fwpipe.pipeline import prepare as p; p.prepare.__kwdefaults__['unit_rows'] = {unit_rows}; "
    code += "sys.exit(main())"
    r = subprocess.run(
        [sys.executable, "-c", code, "prepare", *args, "-o", str(out), *extra], env=env, capture_output=True, text=True
    )
    if r.returncode:
        raise SystemExit(f"{out}: {r.stdout}{r.stderr}")


def inputs(tmp: Path) -> dict[str, str]:
    import pyarrow as pa

    big = pq.read_table(SAMPLE / "fineweb-sample10bt-1400.parquet")
    first = pq.read_table(SAMPLE / "fineweb-first150.parquet")
    pq.write_table(big.slice(0, 40), tmp / "tiny.parquet")
    pq.write_table(big, tmp / "smallrg.parquet", row_group_size=50)  # 28 row groups
    dups = pa.concat_tables([first.select(["text"]), first.select(["text"]).slice(0, 60)])
    pq.write_table(dups, tmp / "dups.parquet", row_group_size=40)
    texts = big["text"].to_pylist()[:300]
    nulls = [None if i % 7 == 0 else "" if i % 11 == 0 else t for i, t in enumerate(texts)]
    pq.write_table(pa.table({"text": nulls}), tmp / "nulls.parquet", row_group_size=30)
    return {k: str(tmp / f"{k}.parquet") for k in ("tiny", "smallrg", "dups", "nulls")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("ref", help="a checkout of the reference commit")
    ap.add_argument("--quick", action="store_true", help="only inline and two processes")
    a = ap.parse_args()
    bad = 0
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        files = inputs(tmp)
        variants = {"inline": ["--workers", "1"], "2 processes": ["--workers", "2"]}
        for name, args in CASES.items():
            # --sample as paths: the reference's --sample would name its own copy in the manifest
            sample = [str(SAMPLE / "fineweb-first150.parquet"), str(SAMPLE / "fineweb-sample10bt-1400.parquet")]
            args = [
                y for x in args for y in (sample if x == "--sample" else [files[x[1:-1]]] if x.startswith("{") else [x])
            ]
            run(a.ref, args, tmp / f"{name}-ref", [])
            ref = digest(tmp / f"{name}-ref")
            results = []
            for vname, extra in variants.items():
                out = tmp / f"{name}-{vname.replace(' ', '')}"
                run(None, args, out, extra)
                same = digest(out) == ref
                bad += not same
                results.append(f"{vname}: {'identical' if same else 'DIFFERENT'}")
            if not a.quick:  # units of 1 row group (50 rows or fewer) over two processes
                out = tmp / f"{name}-smallunits"
                run(None, args, out, ["--workers", "2"], unit_rows=1)
                same = digest(out) == ref
                bad += not same
                results.append(f"unit_rows=1: {'identical' if same else 'DIFFERENT'}")
            print(f"{name:22s} {len(ref):3d} files  " + "  ".join(results), flush=True)
    print("all identical" if not bad else f"{bad} differences")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()

"""End to end: `prepare` output (fwpipe and nanoGPT layouts) trains, and a kill -9 resumes exactly."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from fwpipe.pipeline.prepare import PrepareOptions, prepare
from fwpipe.train.loop import plan_run, train

from .conftest import tiny_config

# threads=2 in both runs: the killed subprocess and this process would otherwise each use their
# own torch default, and a CPU matmul's last bits follow the thread count
SMALL = dict(n_embd=32, block_size=32, batch_size=4, eval_interval=3, threads=2)


@pytest.fixture(scope="module", params=["fwpipe", "nanogpt"])
def prepared(request, tmp_path_factory, first150):
    out = tmp_path_factory.mktemp(f"prepared-{request.param}") / "fineweb"
    prepare([first150], out, options=PrepareOptions(val_fraction=0.1, format=request.param), workers=1, progress=False)
    return out


def test_prepared_dataset_trains(prepared, tmp_path):
    cfg = tiny_config(**SMALL)
    run = plan_run(prepared, 6 * cfg.tokens_per_iter, cfg, out=tmp_path / "run", device="cpu")
    assert run.plan["dataset"]["format"] in ("fwpipe", "nanogpt") and run.plan["dataset"]["val_tokens"] > 0
    summary = train(run)
    assert summary["complete"] and summary["last_val_loss"] < 10.8


KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    from tests.train.conftest import tiny_config
    from fwpipe.train.loop import plan_run, train
    cfg = tiny_config(n_embd=32, block_size=32, batch_size=4, eval_interval=3, threads=2, dropout=0.1)
    run = plan_run(sys.argv[1], 8 * cfg.tokens_per_iter, cfg, out=sys.argv[2], device="cpu")
    # kill -9 ourselves right after iteration 5 is logged: 2 iterations past the last checkpoint
    train(run, lambda e: os.kill(os.getpid(), signal.SIGKILL) if e["kind"] == "train" and e["iter"] == 5 else None)
""")


@pytest.mark.slow
def test_kill_9_then_resume(tiny_data, tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, str(tiny_data), str(tmp_path / "killed")], cwd=root, capture_output=True
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    cfg = tiny_config(**SMALL, dropout=0.1)
    train(plan_run(tiny_data, 8 * cfg.tokens_per_iter, cfg, out=tmp_path / "whole", device="cpu"))
    train(plan_run(tiny_data, None, None, out=tmp_path / "killed", device="cpu", resume=True))

    def lines(d):
        return [
            (r["kind"], r["iter"], r.get("loss"), r.get("val_loss"))
            for r in map(json.loads, (d / "metrics.jsonl").read_text().splitlines())
        ]

    assert lines(tmp_path / "killed") == lines(tmp_path / "whole")

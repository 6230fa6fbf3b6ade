"""Same command, same losses: the suspects for run-to-run drift on a CPU, each checked so that
it can fail (issue 22 item 5)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def _placed(src: torch.Tensor, offset: int) -> torch.Tensor:
    """`src`'s values in a view `offset` floats (4 bytes each) into a fresh buffer, so a kernel
    sees the same numbers at another byte alignment."""
    buf = torch.empty(src.numel() + 16)
    view = buf[offset : offset + src.numel()].view(src.shape)
    view.copy_(src)
    return view


@pytest.mark.parametrize("threads", [1, 2])
def test_linear_bits_do_not_depend_on_alignment(threads):
    """MKL documents alignment-dependent GEMM results; on this torch every fresh CPU tensor is
    64-byte aligned, and a view's offset is the program's, so this would be the only way in.
    Forward and both gradients of one linear layer at 16 alignments (4..64 bytes) agree bitwise."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        g = torch.Generator().manual_seed(0)
        a, w = torch.randn(256, 128, generator=g), torch.randn(512, 128, generator=g) * 0.02
        grad = torch.randn(256, 512, generator=g)
        seen = set()
        for off in range(16):
            aa, ww = _placed(a, off).requires_grad_(), _placed(w, (7 * off) % 16).requires_grad_()
            y = torch.nn.functional.linear(aa, ww)
            y.backward(grad)
            seen.add(b"".join(t.detach().numpy().tobytes() for t in (y, aa.grad, ww.grad)))
        assert len(seen) == 1
    finally:
        torch.set_num_threads(before)


def test_fresh_tensors_are_64_byte_aligned():
    """Why allocation history cannot move a tensor's alignment: torch's CPU allocator aligns
    every buffer to 64 bytes (one AVX-512 register), whatever was allocated before."""
    junk = [torch.empty(37 * i + 1) for i in range(100)]
    assert {t.data_ptr() % 64 for t in junk} == {0}


_RUN = """
import json, sys, torch
torch.set_num_threads(2)
junk = [torch.empty(int(n)) for n in sys.argv[3].split(",")]  # another allocation history
sys.path.insert(0, sys.argv[4])
from tests.train.conftest import tiny_config
from fwpipe.train.loop import plan_run, train
cfg = tiny_config(eval_interval=1000)
run = plan_run(sys.argv[1], 6 * cfg.tokens_per_iter, cfg, out=sys.argv[2], device="cpu")
train(run)
"""


@pytest.mark.slow
def test_two_processes_log_the_same_losses(tmp_path, tiny_data):
    """Two processes, different hash seeds and heap histories, the same run: bitwise-equal losses
    and gradient norms at every iteration."""
    outs = []
    for name, seed, junk in (("a", "1", "1"), ("b", "4242", "3,1000003,77,65537")):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        subprocess.run(
            [sys.executable, "-c", _RUN, str(tiny_data), str(tmp_path / name), junk, str(ROOT)],
            check=True,
            env=env,
            cwd=tmp_path,
            timeout=300,
        )
        rows = [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        outs.append([(r["iter"], r["loss"].hex(), r["grad_norm"].hex()) for r in rows if r["kind"] == "train"])
    assert len(outs[0]) == 6 and outs[0] == outs[1]


def _model_grad_bits(threads: int) -> bytes:
    from fwpipe.train.model import GPT

    from .conftest import tiny_config

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        cfg = tiny_config().model
        model = GPT(cfg)
        x = torch.randint(0, cfg.vocab_size, (8, cfg.block_size), generator=torch.Generator().manual_seed(1))
        _, loss = model(x, x)
        loss.backward()
        return b"".join(p.grad.numpy().tobytes() for p in model.parameters())
    finally:
        torch.set_num_threads(before)


def test_thread_count_moves_the_last_bits():
    """Why a run pins its thread count: the same GPT step at 1 and at 2 threads differs in its
    gradients' last bits (reductions split by thread), while each count repeats itself."""
    one, two = _model_grad_bits(1), _model_grad_bits(2)
    assert one != two
    assert two == _model_grad_bits(2)


def test_resume_keeps_the_thread_count_the_run_started_with(tmp_path, tiny_data):
    """threads = 0 (torch's choice) is pinned at the start: config.toml and last.pt hold the count,
    and a resume from a process whose count differs (another OMP_NUM_THREADS) goes back to it."""
    from fwpipe.train import checkpoint
    from fwpipe.train.loop import plan_run, train

    from .conftest import tiny_config

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        cfg = tiny_config(eval_interval=1000)
        assert cfg.threads == 0
        out = tmp_path / "run"
        train(plan_run(tiny_data, 4 * cfg.tokens_per_iter, cfg, out=out, device="cpu"), stop_after=2)
        assert "threads = 2" in (out / "config.toml").read_text()
        assert checkpoint.load(out / "last.pt")["config"]["threads"] == 2
        torch.set_num_threads(1)  # the resuming shell's choice differs
        seen = set()  # the count while the resumed run trains, read at each of its events
        summary = train(
            plan_run(tiny_data, None, None, out=out, device="cpu", resume=True),
            lambda e: seen.add(torch.get_num_threads()),
        )
        assert summary["iterations"] == 4 and seen == {2}
        assert torch.get_num_threads() == 1  # and the caller's count is given back at the end
    finally:
        torch.set_num_threads(before)

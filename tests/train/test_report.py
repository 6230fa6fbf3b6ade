"""`fwpipe report RUN` and loss.png, from a real tiny run that crosses epochs and plateaus."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from fwpipe.cli import main
from fwpipe.fmt import tokens as fmt_tokens
from fwpipe.tokenizer import encode
from fwpipe.train.html import REPORT_HTML
from fwpipe.train.loop import plan_run, train
from fwpipe.train.plot import loss_figure
from tests.browser import assert_not_blank, dump_dom, screenshot

from .conftest import tiny_config, write_dataset


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, fineweb_texts):
    """12 iterations of 512 tokens over ~2.5K train tokens (2+ epochs), dropout 0.1, evals every 4;
    plateau_threshold 50 nats per doubling flags a plateau at the third eval with tokens > 0 (iter 12)."""
    tmp = tmp_path_factory.mktemp("report")
    texts, n = [], 0
    for t in fineweb_texts:  # real documents, about 2.5K tokens of them
        if n > 2500:
            break
        texts.append(t)
        n += len(encode(t)) + 1
    data = write_dataset(tmp / "data", texts, fineweb_texts[1300:1305])
    cfg = tiny_config(eval_interval=4, dropout=0.1, plateau_threshold=50.0)
    out = tmp / "run"
    train(plan_run(data, 12 * cfg.tokens_per_iter, cfg, out=out, device="cpu"))
    return out


def records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow  # the run takes ~10 s on a free core (training, 4 evals, 4 loss.png redraws)
def test_loss_figure_log_tokens_epochs_plateau(run_dir):
    recs = records(run_dir)
    tpe = next(round(r["tokens"] / r["epoch"]) for r in recs if r.get("kind") == "train")
    fig = loss_figure(recs, tpe, dropout=0.1)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert [a.get_xlabel() for a in ax.child_axes] == ["epochs"]  # the secondary axis on top
    labels = ax.get_legend_handles_labels()[1]
    assert (
        "train step loss as logged (dropout 0.1)" in labels and "train loss at evals (eval mode, no dropout)" in labels
    )
    boundaries = [ln for ln in ax.get_lines() if ln.get_linestyle() == ":"]
    last = max(r["tokens"] for r in recs if r.get("kind") == "train")
    assert len(boundaries) == last // tpe >= 2
    first_plateau = next(r for r in recs if r.get("kind") == "eval" and r.get("plateau"))
    assert first_plateau["iter"] == 12
    notes = [t.get_text() for t in ax.texts]
    assert any(f"plateau at {fmt_tokens(first_plateau['tokens'])} tokens" in t for t in notes)


@pytest.mark.slow
def test_report_command_and_page_in_chromium(run_dir, tmp_path):
    res = CliRunner().invoke(main, ["report", str(run_dir)])
    assert res.exit_code == 0, res.output
    page = run_dir / REPORT_HTML
    assert res.output.strip() == f"wrote {page}"
    dom = dump_dom(page, tmp_path)
    cards = dict(
        (sec, lvl)
        for lvl, sec in re.findall(r'<div class="card verdict-(\w+)".*?<span class="sec">([\w ]+)</span>', dom)
    )
    assert cards["plateau"] == "warn" and cards["val loss"] == "info"
    assert '<table class="plan">' in dom and '<table class="advice">' in dom
    assert "verdict:" in dom and "score = estimated val-loss excess" in dom  # fwpipe.diagnosis's ranked causes
    assert 'alt="loss curves"' in dom and 'alt="throughput and MFU"' in dom
    assert "<script" not in dom.lower()
    assert_not_blank(screenshot(page, tmp_path))


def test_report_refuses_a_directory_that_is_not_a_run(tmp_path):
    other = tmp_path / "home"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    res = CliRunner().invoke(main, ["report", str(other)])
    assert res.exit_code == 1
    assert (
        res.output.startswith("Error: ")
        and "not a fwpipe training run" in res.output
        and len(res.output.strip().splitlines()) == 1
    )
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]


def test_loss_figure_shows_hellaswag_on_its_own_axis():
    """Eval records with HellaSwag scores (train --hellaswag) get a right-hand accuracy axis."""
    import matplotlib.pyplot as plt

    records = [{"kind": "train", "tokens": t, "loss": 8 - t / 1e4} for t in (1000, 2000, 4000, 8000)]
    records += [
        {"kind": "eval", "tokens": t, "val_loss": 8 - t / 1e4, "train_loss": 8 - t / 1e4, "hellaswag_acc_norm": a}
        for t, a in ((2000, 0.24), (8000, 0.31))
    ]
    fig = loss_figure(records, tokens_per_epoch=5000)
    try:
        right = [a for a in fig.axes if "HellaSwag" in a.get_ylabel()]
        assert len(right) == 1
        line = next(ln for ln in right[0].get_lines() if "HellaSwag" in ln.get_label())
        assert list(line.get_xdata()) == [2000, 8000] and list(line.get_ydata()) == [0.24, 0.31]
        assert "HellaSwag acc_norm (right axis)" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    finally:
        plt.close(fig)
    no_hs = loss_figure([r for r in records if r["kind"] == "train"], tokens_per_epoch=5000)
    assert not [a for a in no_hs.axes if "HellaSwag" in a.get_ylabel()]
    plt.close(no_hs)

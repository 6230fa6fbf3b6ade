"""loss.png's geometry, rendered: iteration 0 on the log axis, epoch labels that never overlap,
the budget label inside the axes, the verdict above the chart."""

from __future__ import annotations

import math

import pytest

from fwpipe.train.plot import epoch_ticks, loss_figure, plot_losses


def _records(iters: int, tokens_per_iter: int, every: int = 25) -> list[dict]:
    recs = [{"kind": "eval", "iter": 0, "tokens": 0, "val_loss": 10.9, "train_loss": 10.88}]
    for it in range(1, iters + 1):
        loss = 3.5 + 6 * math.exp(-it / 40)
        recs.append({"kind": "train", "iter": it, "tokens": it * tokens_per_iter, "loss": loss})
        if it % every == 0:
            recs.append(
                {"kind": "eval", "iter": it, "tokens": it * tokens_per_iter, "val_loss": loss + 0.2, "train_loss": loss}
            )
    return recs


@pytest.fixture
def figure():
    import matplotlib.pyplot as plt

    figs = []

    def make(*a, **kw):
        figs.append(loss_figure(*a, **kw))
        figs[-1].canvas.draw()
        return figs[-1]

    yield make
    for f in figs:
        plt.close(f)


@pytest.mark.parametrize(
    "iters,tokens_per_epoch",
    [(400, 2_000), (400, 20_000), (400, 300_000), (20, 1_000), (20, 100), (28, 30), (235, 2_320_000)],
)  # the last: a run that ends at epoch 0.05
def test_epoch_labels_never_overlap(figure, iters, tokens_per_epoch):
    # 100 epochs, 10, a third of one; and runs spanning under 1.5 decades, where every epoch is a label candidate
    fig = figure(_records(iters, 512, every=5), tokens_per_epoch, "t", budget_tokens=iters * 512)
    top = fig.axes[0].child_axes[0]
    boxes = sorted(
        (t.get_window_extent() for t in top.xaxis.get_ticklabels(which="both") if t.get_visible() and t.get_text()),
        key=lambda b: b.x0,
    )
    assert len(boxes) >= 3
    assert all(a.x1 < b.x0 for a, b in zip(boxes, boxes[1:])), [(b.x0, b.x1) for b in boxes]


def test_iteration_zero_is_on_the_log_axis_left_of_the_first_point(figure):
    fig = figure(_records(100, 512), 5_000, "t")
    ax = fig.axes[0]
    zero = next(ln for ln in ax.get_lines() if "iteration 0" in ln.get_label())
    (x0,), (y0,) = zero.get_xdata(), zero.get_ydata()
    assert y0 == 10.9 and 0 < x0 < 512 and ax.get_xlim()[0] < x0  # drawn, and inside the axes
    assert "iter 0" in [t.get_text() for t in ax.texts]


def test_budget_label_is_inside_the_axes_and_the_verdict_on_top(figure):
    fig = figure(
        _records(200, 512), 5_000, "tiny: 30K params", budget_tokens=400 * 512, verdict="repetition: 41 epochs"
    )
    ax = fig.axes[0]
    label = next(t for t in ax.texts if t.get_text().startswith("budget "))
    assert label.get_text().strip() == "budget 205K tokens"
    inside = ax.get_window_extent()
    box = label.get_window_extent()
    assert inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 and box.y1 <= inside.y1
    assert ax.get_xlim()[1] > 400 * 512  # the budget line is in view though training stopped at half
    assert fig._suptitle is not None and fig._suptitle.get_text() == "repetition: 41 epochs"
    assert figure(_records(200, 512), 5_000, "t")._suptitle is None  # no verdict, no slot text


def test_epoch_ticks_thin_left_to_right():
    def px(t: float) -> float:  # 10 tokens a pixel, linear: 1 epoch of 1,000 tokens = 100 px
        return t / 10

    # two 3-character labels need 3 x 7.5 + 8 = 30.5 px between centres, two 1-character ones 15.5 px; 1 is 10 px after 0.9
    assert epoch_ticks(100, 5_000, 1_000, px, min_px=15) == [0.1, 0.5, 0.9, 2.0, 3.0, 4.0, 5.0]
    assert epoch_ticks(100, 5_000, 1_000, px, min_px=150) == [0.1, 2.0, 4.0]


def test_png_is_written(tmp_path):
    plot_losses(
        _records(60, 512), 5_000, tmp_path / "loss.png", title="t", budget_tokens=60 * 512, verdict="still_improving"
    )
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

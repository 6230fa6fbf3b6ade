
import pytest

from fwpipe.train.diagnose import diagnose, improvement_per_doubling

COMMON = dict(n_params=40_560_000, unique_tokens=300_000_000, budget_tokens=7_600_000_000, lr=1e-3, min_lr=1e-4, threshold=0.02)


def evals(losses, start=1e9, train_offset=-0.09, epochs_per_token=1 / 3e8):
    toks = [start * 2 ** (i / 2) for i in range(len(losses))]  # half a doubling apart
    return [{"iter": i, "tokens": t, "epoch": t * epochs_per_token, "val_loss": v, "train_loss": v + train_offset}
            for i, (t, v) in enumerate(zip(toks, losses))]


def test_improvement_per_doubling_is_the_slope():
    ev = evals([4.0, 3.9, 3.8, 3.7])  # 0.1 per half doubling = 0.2 per doubling
    assert improvement_per_doubling(ev) == pytest.approx(0.2)
    assert improvement_per_doubling(ev[:2]) is None  # too few points


def test_healthy_run_has_no_diagnosis():
    out = diagnose(evals([4.0, 3.9, 3.8, 3.7]), dropout=0.1, step_loss=3.8, **COMMON)
    assert out["plateau"] is False and "diagnosis" not in out


def test_plateau_gives_numbers_and_advice():
    out = diagnose(evals([3.53, 3.525, 3.522, 3.52]), dropout=0.1, step_loss=3.61, **COMMON)
    assert out["plateau"] is True
    d = out["diagnosis"]
    assert d["epochs"] == pytest.approx(1e9 * 2**1.5 / 3e8)
    assert d["train_val_gap"] == pytest.approx(0.09)
    assert d["dropout_inflation"] == pytest.approx(3.61 - 3.43)
    assert d["capacity_term"] == pytest.approx(406.4 / 40.56e6**0.34)
    changes = {a["change"]: a["expected_loss_change"] for a in d["advice"]}
    assert changes["more unique data"] < 0 and changes["compute-optimal model size"] < 0
    assert changes["lower LR floor"] is None  # min_lr = lr/10: no fit covers it
    text = "\n".join(d["text"])
    assert "dropout 0.1" in text and "epoch" in text and "capacity term" in text

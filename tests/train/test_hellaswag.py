"""HellaSwag acc_norm on files in the published format, scored by a real (tiny) GPT."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from fwpipe.cli import main
from fwpipe.errors import InputFormatError, InputNotFoundError
from fwpipe.fmt import pct
from fwpipe.tokenizer import encode
from fwpipe.train import hellaswag as hs
from fwpipe.train.config import ModelConfig
from fwpipe.train.dist import World
from fwpipe.train.model import GPT


def write_examples(path, texts: list[str], n: int, labels: list[int] | None = None):
    """n examples in hellaswag_val.jsonl's format from real FineWeb text: a context, its own
    continuation and three other documents' continuations (plus the fields we do not read)."""
    lines = []
    for i in range(n):
        words = texts[i].split()
        ctx, own = " ".join(words[:20]), " ".join(words[20:28])
        others = [" ".join(texts[i + 50 + k].split()[20:28]) for k in range(3)]
        lines.append(
            json.dumps(
                {
                    "ind": i,
                    "activity_label": "FineWeb",
                    "ctx_a": ctx,
                    "ctx_b": "",
                    "ctx": ctx,
                    "split": "val",
                    "split_type": "indomain",
                    "endings": [own, *others],
                    "label": labels[i] if labels else 0,
                    "source_id": f"fineweb-{i}",
                }
            )
        )
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(3)
    return GPT(ModelConfig(block_size=128, n_layer=2, n_head=2, n_embd=32)).eval()


def loop_losses(model, ex: hs.Example) -> list[float]:
    """Each ending's mean loss by a plain loop: one forward per ending token over what precedes it."""
    ctx = encode(ex.ctx).tolist()
    out = []
    for ending in ex.endings:
        end = encode(" " + ending).tolist()
        nll = []
        for j, tok in enumerate(end):
            prefix = (ctx + end[:j])[-model.config.block_size :]
            with torch.no_grad():
                logits, _ = model(torch.tensor([prefix]))  # the last position's logits
            nll.append(-F.log_softmax(logits[0, -1].double(), -1)[tok].item())
        out.append(sum(nll) / len(nll))
    return out


@pytest.mark.slow
def test_choice_is_the_lowest_loss_of_a_plain_loop_and_counts_are_right(tmp_path, model, fineweb_texts):
    examples = hs.load(write_examples(tmp_path / "h.jsonl", fineweb_texts, 4))
    assert max(hs.render(ex, 10**6)[0].shape[1] for ex in examples) < model.config.block_size  # nothing truncated
    losses = [loop_losses(model, ex) for ex in examples]
    for ex, want in zip(examples, losses):
        got = hs.ending_losses(model, ex, "cpu").tolist()
        assert got == pytest.approx(want, rel=1e-4)
    # labels set so that exactly the even examples are answered right by this model
    best = [min(range(4), key=lambda k: ls[k]) for ls in losses]
    labelled = [
        hs.Example(ex.ctx, ex.endings, b if i % 2 == 0 else (b + 1) % 4)
        for i, (ex, b) in enumerate(zip(examples, best))
    ]
    assert hs.evaluate(model, labelled, "cpu") == {
        "hellaswag_acc_norm": 0.5,
        "hellaswag_correct": 2,
        "hellaswag_total": 4,
    }


@pytest.mark.slow
def test_ranks_share_the_examples(tmp_path, model, fineweb_texts):
    examples = hs.load(write_examples(tmp_path / "h.jsonl", fineweb_texts, 5, labels=[0, 1, 2, 3, 0]))
    single = hs.counts(model, examples, "cpu")
    shares = [hs.counts(model, examples, "cpu", world=World(r, 3)) for r in range(3)]
    assert [t for _, t in shares] == [2, 2, 1]
    assert (sum(c for c, _ in shares), sum(t for _, t in shares)) == single and single[1] == 5


def test_long_context_keeps_the_ending(model):
    ex = hs.Example("word " * 300, ("a b c", "d", "e f g h i j", "k l"), 1)
    tokens, mask = hs.render(ex, model.config.block_size)
    assert tokens.shape[1] == model.config.block_size
    assert mask.sum(1).tolist() == [len(encode(" " + e)) for e in ex.endings]
    assert torch.isfinite(hs.ending_losses(model, ex, "cpu")).all()


@pytest.mark.parametrize(
    "line, what",
    [
        ('{"ctx": "a", "endings": ["x", "y", "z"], "label": 0}', '"endings" is not a list of 4'),
        ('{"ctx": "a", "endings": ["x", "y", "z", "w"], "label": 4}', '"label" is not 0, 1, 2 or 3'),
        ('{"endings": ["x", "y", "z", "w"], "label": 1}', '"ctx" is missing'),
        ("not json", "not a JSON object"),
    ],
)
def test_bad_lines_are_named(tmp_path, line, what):
    good = '{"ctx": "a", "endings": ["x", "y", "z", "w"], "label": 2}'
    path = tmp_path / "h.jsonl"
    path.write_text(good + "\n" + line + "\n")
    with pytest.raises(InputFormatError, match=f"h.jsonl:2: {what}"):
        hs.load(path)
    with pytest.raises(InputNotFoundError):
        hs.load(tmp_path / "missing.jsonl")


@pytest.mark.slow
def test_train_logs_acc_norm_and_eval_command_agrees(tmp_path, tiny_data, fineweb_texts):
    from fwpipe.train.loop import plan_run, train

    from .conftest import tiny_config

    path = write_examples(tmp_path / "h.jsonl", fineweb_texts, 5, labels=[0, 1, 2, 3, 0])
    cfg = tiny_config(batch_size=4, block_size=32, eval_interval=3)
    run = plan_run(tiny_data, 3 * cfg.tokens_per_iter, cfg, out=tmp_path / "run", device="cpu", hellaswag=path)
    assert run.plan["hellaswag"]["examples"] == 5
    train(run)
    evals = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evals = [e for e in evals if e["kind"] == "eval"]
    assert [e["hellaswag_total"] for e in evals] == [5, 5]
    last = evals[-1]
    # the command scores last.pt / best.pt, the weights of that same last eval
    r = CliRunner().invoke(main, ["eval", str(tmp_path / "run"), "--hellaswag", str(path), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert (
        r.output.strip()
        == f"hellaswag acc_norm {pct(last['hellaswag_acc_norm'])} ({last['hellaswag_correct']}/5) on {path}"
    )
    r = CliRunner().invoke(main, ["eval", str(tmp_path / "run"), "--hellaswag", str(tmp_path / "nope.jsonl")])
    assert r.exit_code == 1 and r.output.count("\n") == 1 and "Error: " in r.output

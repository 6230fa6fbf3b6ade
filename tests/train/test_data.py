from pathlib import Path

import numpy as np
import pytest

from fwpipe.dataset import Split
from fwpipe.train.data import TrainLoader, Windows, fixed_batches


def split_of(*lengths: int) -> Split:
    """Shards whose token k is 1000*shard + k, so every window tells where it came from."""
    shards = [(1000 * i + np.arange(n)).astype(np.uint16) for i, n in enumerate(lengths)]
    return Split("train", [Path(f"s{i}") for i in range(len(lengths))], shards)


def test_windows_never_cross_shards_and_cover_each_token_once():
    w = Windows(split_of(33, 17, 8), block_size=8)
    assert w.n == 4 + 2 + 0  # (33-1)//8, (17-1)//8, (8-1)//8
    rows = w.gather(np.arange(w.n))
    assert rows.shape == (6, 9)
    assert (np.diff(rows, axis=1) == 1).all()  # contiguous: never across a shard boundary
    targets = np.concatenate([r[1:] for r in rows])
    assert len(set(targets.tolist())) == len(targets) == 6 * 8  # each token predicted once


def test_exact_epochs_with_reshuffle_and_fractional_epoch():
    loader = TrainLoader(split_of(81, 41), block_size=8, batch_size=4, seed=7)
    n = loader.windows_per_epoch
    assert n == 15 and loader.tokens_per_epoch == 120
    seen = []
    epochs = []
    for _ in range(15):  # 60 windows = 4 epochs of 15
        seen.append(loader.next_ids())
        epochs.append(loader.epoch)
    seen = np.concatenate(seen).reshape(4, 15)
    for e in range(4):
        assert sorted(seen[e].tolist()) == list(range(15)), f"epoch {e} did not visit every window once"
    assert len({tuple(r) for r in seen.tolist()}) == 4  # each epoch its own order
    assert epochs[0] == pytest.approx(4 / 15) and epochs[-1] == 4.0
    assert epochs[3] == pytest.approx(16 / 15)  # a batch that spans the first epoch's end


def test_position_restores_the_same_stream():
    a = TrainLoader(split_of(200), block_size=8, batch_size=3, seed=1)
    for _ in range(11):
        a.next_ids()
    state = a.state_dict()
    expected = [a.next_ids().tolist() for _ in range(10)]
    b = TrainLoader(split_of(200), block_size=8, batch_size=3, seed=1)
    b.load_state_dict(state)
    assert [b.next_ids().tolist() for _ in range(10)] == expected
    x, y = b.next_batch()
    assert x.shape == y.shape == (3, 8) and (x[:, 1:] == y[:, :-1]).all()


def test_fixed_batches_are_fixed_and_cycle_a_small_split():
    s = split_of(50)
    first = fixed_batches(s, 8, 4, 5, seed=3)
    again = fixed_batches(s, 8, 4, 5, seed=3)
    assert len(first) == 5 and all((a == b).all() for a, b in zip(first, again))
    assert fixed_batches(split_of(5), 8, 4, 2, seed=3) == []


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_split_each_global_batch_into_the_single_process_stream(world):
    # 2 micro-batches of 3 windows per rank, 18 windows an epoch: global batches of 12 or 18 span epoch ends
    split, B, per_rank = split_of(33, 17, 25), 3, 2
    single = TrainLoader(split, 4, B, seed=5, micro_per_rank=per_rank * world)
    ranks = [TrainLoader(split, 4, B, seed=5, rank=r, world_size=world, micro_per_rank=per_rank) for r in range(world)]
    for _ in range(5):  # iterations
        want = np.concatenate([single.next_batch()[0].numpy() for _ in range(per_rank * world)])
        got = np.concatenate([ld.next_batch()[0].numpy() for ld in ranks for _ in range(per_rank)])
        assert (got == want).all()
        # between iterations every rank stands where the single process does: a checkpoint fits any world size
        assert all(ld.state_dict() == single.state_dict() for ld in ranks) and ranks[0].epoch == single.epoch
    assert single.epoch > 3  # the epoch ends were crossed

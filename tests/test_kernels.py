import numpy as np
import pytest

from fwpipe import kernels
from tests import kernel_refs as R


def test_token_histogram_matches_numpy():
    rng = np.random.default_rng(0)
    toks = rng.integers(0, 50257, 100_000).astype(np.uint16)
    assert np.array_equal(kernels.token_histogram(toks, 50257), R.token_histogram_ref(toks, 50257))


@pytest.mark.parametrize("bad", [50257, 65535])
def test_token_histogram_refuses_ids_past_the_vocabulary(bad):
    # numba does not bounds-check: before, these wrote past the counts array (heap corruption)
    toks = np.array([0, 50256, bad, 1], dtype=np.uint16)
    for fn in (kernels.token_histogram, R.token_histogram_ref):
        with pytest.raises(IndexError, match="outside"):
            fn(toks, 50257)
    assert kernels.token_histogram(toks, 65536)[bad] == 1  # a vocabulary that holds the id counts it


def test_doc_bounds_matches_numpy_on_random_streams():
    rng = np.random.default_rng(1)
    for _ in range(50):
        n = int(rng.integers(0, 200))
        toks = rng.integers(50250, 50258, n).astype(np.uint16)  # many EOTs, runs of them too
        got, want = kernels.doc_bounds(toks, 50256), R.doc_bounds_ref(toks, 50256)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    for p_eot in (0.0, 0.001, 0.5):  # 5M tokens: 4 parallel chunks of 1.25M, documents across their edges
        toks = np.where(rng.random(5_000_000) < p_eot, 50256, rng.integers(0, 50256, 5_000_000)).astype(np.uint16)
        toks[2_499_999:2_500_001] = 50256  # EOTs on both sides of a chunk edge, too
        got, want = kernels.doc_bounds(toks, 50256), R.doc_bounds_ref(toks, 50256)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


def test_length_histogram_matches_reference():
    rng = np.random.default_rng(2)
    lengths = np.concatenate([[0, 1, 2, 3, 4, 1023, 1024, 2**45], rng.integers(0, 10**6, 10_000)]).astype(np.int64)
    assert np.array_equal(kernels.length_histogram(lengths), R.length_histogram_ref(lengths))
    assert kernels.length_histogram(np.array([1024], np.int64))[11] == 1  # [1024, 2048) is bin 11

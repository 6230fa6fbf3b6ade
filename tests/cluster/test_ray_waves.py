"""RayExecutor's waves on the two-node cluster: never more tasks in flight than the cluster has
CPUs (ray.cluster_resources()), whatever window map is given."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="ray is not installed: pip install 'fwpipe[ray]'")

from fwpipe.executors.ray import RayExecutor  # noqa: E402

pytestmark = pytest.mark.slow
UNITS = 12
HOLD_S = 3.0  # unit 0 holds its CPU this long: every task sent meanwhile has time to start


def _mark_started(i: int, d: str) -> int:
    (Path(d) / f"started-{i}").write_text("")
    if i == 0:
        time.sleep(HOLD_S)
    return i


def test_a_wave_is_at_most_the_cluster_cpus(ray_cluster, tmp_path):
    """Unit 0 is slow and the rest instant: when unit 0's result comes back, the tasks started
    are the tasks sent, which must be at most the cluster's CPUs (4), not the window (100)."""
    ray_cluster.ensure_worker()
    cpus = int(ray.cluster_resources()["CPU"])
    assert cpus == 4  # 2 nodes of 2 CPUs (conftest.NODE_ARGS)
    with RayExecutor(ray_cluster.address) as ex:
        results = ex.map(_mark_started, [(i, str(tmp_path)) for i in range(UNITS)], window=100)
        assert next(results) == 0
        started = len(list(tmp_path.glob("started-*")))
        assert ex.workers == cpus and 1 <= started <= cpus
        assert list(results) == list(range(1, UNITS))  # and in unit order, all of them
    assert len(list(tmp_path.glob("started-*"))) == UNITS

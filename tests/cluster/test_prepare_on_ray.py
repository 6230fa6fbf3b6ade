"""`fwpipe prepare` on a real two-node Ray cluster: every output file is the local run's bytes,
with units pinned to both nodes, with a node lost mid-run, and after the driver is killed and
rerun (the finished units verified by their markers and skipped).

The input: the 1,400 real FineWeb documents in 14 parquet files of 100 rows, so that prepare
has 14 units (a unit never spans two files) without a test-only flag; --dedup near, so the
dedup engine's signature units run on the cluster too.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

ray = pytest.importorskip("ray", reason="ray is not installed: pip install 'fwpipe[ray]'")

from fwpipe.cli import main  # noqa: E402
from fwpipe.executors.ray import RayExecutor  # noqa: E402
from fwpipe.pipeline.prepare import PrepareOptions, prepare  # noqa: E402
from tests.cluster.helpers import SlowUnits, kill_cli_after, wait_for_files  # noqa: E402
from tests.corpus import dir_digest  # noqa: E402

pytestmark = pytest.mark.slow
FILES = 14
MARKERS = ".work/units*/**/unit.json"  # a unit's completion marker, written last (--dedup's first pass: units1/f*/u*)
OPTS = PrepareOptions(shard_tokens=300_000, val_fraction=0.05, dedup="near")
CLI_OPTS = ["--shard-tokens", "300000", "--val-fraction", "0.05", "--dedup", "near"]


@pytest.fixture(scope="module")
def inputs(sample1400, tmp_path_factory) -> list[Path]:
    t = pq.read_table(sample1400)
    d = tmp_path_factory.mktemp("in")
    paths = []
    for i in range(FILES):
        paths.append(d / f"part{i:02d}.parquet")
        pq.write_table(t.slice(i * 100, 100), paths[-1])
    return paths


@pytest.fixture(scope="module")
def local(inputs, tmp_path_factory) -> tuple[dict[str, str], int]:
    """The reference: sha256 of every output file of a run in this process, and the tokens it tokenized."""
    out = tmp_path_factory.mktemp("local") / "ds"
    s = prepare(inputs, out, options=OPTS, workers=1, progress=False)
    return dir_digest(out), s["tokens_this_run"]


def _units_done(out: Path) -> int:
    return len(list(out.glob(MARKERS)))


def test_prepare_units_run_on_both_nodes_and_give_the_local_bytes(ray_cluster, inputs, local, tmp_path):
    nodes = [ray_cluster.head, ray_cluster.ensure_worker()]
    with RayExecutor(ray_cluster.address, node_ids=nodes, soft=False) as ex:
        prepare(inputs, tmp_path / "ds", options=OPTS, executor=ex, progress=False)
    assert set(ex.unit_nodes) == set(nodes) and ex.unit_nodes[:FILES] == [nodes[i % 2] for i in range(FILES)]
    assert dir_digest(tmp_path / "ds") == local[0]


def test_prepare_with_a_killed_driver_rerun_reuses_units_and_gives_the_local_bytes(
    ray_cluster, inputs, local, tmp_path
):
    ray_cluster.ensure_worker()
    out = tmp_path / "ds"
    args = ["prepare", *map(str, inputs), "-o", str(out), *CLI_OPTS, "--ray"]
    kill_cli_after(args, ray_cluster.address, out, MARKERS, 2)
    done = _units_done(out)
    assert 2 <= done < FILES
    r = CliRunner().invoke(main, [*args[:-1], "--json", str(tmp_path / "s.json"), "--ray-address", ray_cluster.address])
    assert r.exit_code == 0, r.output
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["resumed"] and s["tokens_this_run"] < local[1]  # the finished units were verified, not tokenized again
    assert dir_digest(out) == local[0]


def test_prepare_with_a_node_lost_mid_run_gives_the_local_bytes(ray_cluster, inputs, local, tmp_path):
    worker = ray_cluster.ensure_worker()
    node = ray_cluster.workers()[0]
    out = tmp_path / "ds"
    ex = SlowUnits(ray_cluster.address, node_ids=[worker], soft=True)
    failed: list = []
    run = threading.Thread(target=lambda: _run(failed, inputs, out, ex))
    run.start()
    done = wait_for_files(out, MARKERS, 1, run)
    ray_cluster.cluster.remove_node(node, allow_graceful=False)
    run.join(timeout=180)
    try:
        assert not failed and 1 <= done < FILES
        assert worker in ex.unit_nodes and ray_cluster.head in ex.unit_nodes
        assert dir_digest(out) == local[0]
    finally:
        ray_cluster.ensure_worker()


def _run(failed: list, inputs, out, ex) -> None:
    try:
        prepare(inputs, out, options=OPTS, executor=ex, progress=False)
    except Exception as e:  # noqa: BLE001 - reported by the test's assertion
        failed.append(e)

"""`fwpipe audit` on a real two-node Ray cluster: the same bytes as a run in one process, with
units on both nodes, with a node lost mid-run, and after the driver is killed and rerun.

The dataset: real FineWeb documents with planted exact and edited copies, in 18 shards, so the
signature stage has 18 units (one per shard: a unit never spans two shards). --num-perm 1024
makes each unit ~2x the work of the default. The driver keeps at most 2 units per CPU in flight
(8 here) and takes results in unit order, so a driver killed once 2 units are written leaves
most units undone; the node test slows each unit down by a sleep before it (SlowUnits) so that
units are surely running on the node when it goes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import threading
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

ray = pytest.importorskip("ray", reason="ray is not installed: pip install 'fwpipe[ray]'")

from fwpipe.audit import audit
from fwpipe.cli import main
from fwpipe.errors import ClusterError, ShardFormatError
from fwpipe.executors.ray import RayExecutor, alive_nodes, raise_unseen, remove_probes, write_probes
from fwpipe.shards import open_tokens
from fwpipe.tokenizer import encode
from tests.cluster.helpers import SlowUnits, kill_cli_after, wait_for_files
from tests.corpus import edit_words, write_fwpipe

pytestmark = pytest.mark.slow  # a Ray cluster: ~10 s to start, then real tasks

NUM_PERM = 1024
OPTS = {"num_perm": NUM_PERM}
UNITS = 18
KEYS = "fwpipe-dedup-*/keys.*"  # a signature unit's file in the scratch directory, there only once whole


@pytest.fixture(scope="module")
def dataset(sample1400, tmp_path_factory) -> Path:
    texts = [t for t in pl.read_parquet(sample1400, columns=["text"])["text"].to_list() if len(t.split()) >= 60][:500]
    rng = random.Random(11)
    docs = [encode(t) for t in texts]
    docs += [encode(edit_words(texts[i], 0.01, rng)) for i in range(0, 500, 5)]  # 100 near copies
    docs += [docs[i] for i in range(0, 500, 20)]  # 25 exact copies
    rng.shuffle(docs)
    train, val = docs[:500], docs[500:]
    shards = {"train": [train[i::16] for i in range(16)], "val": [val[0::2], val[1::2]]}
    return write_fwpipe(tmp_path_factory.mktemp("ds") / "fwpipe", shards)


def outputs(ds: Path, report: dict) -> tuple[str, dict]:
    """(sha256 of clusters.parquet, the report without its timing), as JSON would carry it."""
    r = json.loads(json.dumps(report, default=str))
    r.pop("seconds")
    return hashlib.sha256((ds / "clusters.parquet").read_bytes()).hexdigest(), r


@pytest.fixture(scope="module")
def local(dataset, tmp_path_factory) -> tuple[str, dict]:
    """The reference: every unit in this process."""
    got = outputs(dataset, audit(dataset, tmp_dir=tmp_path_factory.mktemp("scratch"), **OPTS))
    assert (
        got[1]["near_duplicates"]["clusters"] >= 50
    )  # the planted copies were found: the bytes compared below mean something
    return got


def fresh(ds: Path) -> None:
    (ds / "clusters.parquet").unlink(missing_ok=True)  # so each run must write it again


def test_a_killed_driver_rerun_reuses_units_and_gives_the_local_bytes(ray_cluster, dataset, local, tmp_path, caplog):
    """First of the tests, so that this process has no idle Ray workers yet (~120 MB each) while
    the killed driver's are up. The CLI in a process of its own connects with --ray and RAY_ADDRESS and is killed (SIGKILL) once two
    units are written; the rerun (here, in this process) skips them and writes the local bytes."""
    ray_cluster.ensure_worker()
    fresh(dataset)
    scratch, report = tmp_path / "scratch", tmp_path / "audit.json"
    args = [
        "audit",
        "--ray",
        str(dataset),
        "--num-perm",
        str(NUM_PERM),
        "--tmp-dir",
        str(scratch),
        "--json",
        str(report),
    ]
    # --ray is a flag (DATASET after it is the dataset): the driver finds the cluster through RAY_ADDRESS
    kill_cli_after(args, ray_cluster.address, scratch, KEYS, 2)
    done = len(list(scratch.glob(KEYS)))
    assert 2 <= done < UNITS and not report.exists()
    with caplog.at_level(logging.INFO, logger="fwpipe.dedup.engine"):
        r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    reused = [m for m in caplog.messages if m.endswith(f" of {UNITS} signature units already done")]
    assert len(reused) == 1 and int(reused[0].split()[1]) >= done
    assert outputs(dataset, json.loads(report.read_text())) == local


def test_units_run_on_both_nodes_and_give_the_local_bytes(ray_cluster, dataset, local, tmp_path):
    nodes = [ray_cluster.head, ray_cluster.ensure_worker()]
    fresh(dataset)
    with RayExecutor(ray_cluster.address, node_ids=nodes, soft=False) as ex:
        got = outputs(dataset, audit(dataset, tmp_dir=tmp_path, executor=ex, **OPTS))
    assert ex.unit_nodes[:UNITS] == [nodes[i % 2] for i in range(UNITS)]  # pinned, and each result records where it ran
    rest = ex.unit_nodes[UNITS:]  # then the quality units (audit's second map), pinned the same way
    assert rest and rest == [nodes[i % 2] for i in range(len(rest))]
    assert ray.is_initialized()  # the executor did not shut down the session it found
    assert got == local
    assert list(tmp_path.iterdir()) == []  # scratch and the storage probes are gone


def test_a_unit_failing_on_bad_input_is_one_error_line(ray_cluster, tmp_path, monkeypatch):
    """A shard truncated after the driver indexed it: the unit that maps it raises ShardFormatError
    on a node; the run stops with that one line, not Ray's traceback."""
    from fwpipe.executors import ray as raycluster

    ds = write_fwpipe(
        tmp_path / "ds",
        {
            "train": [[encode(f"document {i} of shard {k}") for i in range(20)] for k in range(3)],
            "val": [[encode("a val document")]],
        },
    )
    victim = ds / "train_000001.bin"
    real = raycluster.check_shared_storage

    def truncate_then_check(*a, **k):  # runs on the driver right before the units are sent
        os.truncate(victim, victim.stat().st_size // 2)
        real(*a, **k)

    monkeypatch.setattr(raycluster, "check_shared_storage", truncate_then_check)
    r = CliRunner().invoke(
        main, ["audit", str(ds), "--tmp-dir", str(tmp_path / "scratch"), f"--ray={ray_cluster.address}"]
    )
    assert r.exit_code == 1
    assert r.output.count("\n") == 1 and "Traceback" not in r.output and "RayTaskError" not in r.output
    assert r.output.startswith(f"Error: {victim}: ") and "the shard changed while it was read; rerun once" in r.output
    with RayExecutor(ray_cluster.address) as ex:  # the exception itself is the unit's, rebuilt from (message, hint)
        with pytest.raises(ShardFormatError) as e:
            list(ex.map(open_tokens, [((str(victim), 0, 10**6, "<u2"),)]))
    assert type(e.value) is ShardFormatError and e.value.hint == "rerun once nothing else writes the dataset"


def test_a_directory_one_node_does_not_see_is_one_error_line(ray_cluster, tmp_path):
    """One machine cannot give a node a disk of its own, so the failure is made between the two
    halves of the check: every node writes its probe, then the worker's probe is removed, as if
    it had gone to that node's local disk. The check names the directory and a node that misses it."""
    ray_cluster.ensure_worker()
    nodes = alive_nodes()
    assert len(nodes) == 2
    names = write_probes(tmp_path, nodes)
    worker = next(n for n in nodes if n["NodeID"] != ray_cluster.head)
    (tmp_path / names[worker["NodeID"]]).unlink()
    with pytest.raises(ClusterError) as e:
        raise_unseen(tmp_path, nodes, names)
    msg = f"Error: {e.value.message}; {e.value.hint}"
    assert msg.startswith(
        f"Error: {tmp_path} is not the same directory on every node: the driver does not see {tmp_path}/.fwpipe-probe-"
    )
    assert msg.endswith(
        "; put OUT (and --tmp-dir) on storage every node mounts at the same path (NFS, a cluster filesystem)"
    )
    remove_probes(tmp_path, nodes, names)
    assert list(tmp_path.iterdir()) == []


def test_a_directory_a_node_cannot_write_is_one_error_line(ray_cluster, tmp_path):
    """A directory that does not exist where the units run (here: nowhere but in the message)."""
    from fwpipe.executors.ray import check_shared_storage

    with pytest.raises(ClusterError, match=f"cannot write in {tmp_path}/gone on the driver"):
        check_shared_storage([tmp_path / "gone"])


def test_a_node_with_another_fwpipe_is_one_error_line(ray_cluster, tmp_path, monkeypatch):
    """The nodes run the installed fwpipe; this driver pretends to be another version."""
    import fwpipe
    from fwpipe.executors.ray import check_shared_storage

    installed = fwpipe.__version__
    monkeypatch.setattr(fwpipe, "__version__", "0.0.0-other")
    want = (
        rf"^node [0-9a-f]{{12}} \(.*\) runs fwpipe {installed}, the driver 0.0.0-other \(hint: install the same fwpipe"
    )
    with pytest.raises(ClusterError, match=want):
        check_shared_storage([tmp_path])
    assert list(tmp_path.iterdir()) == []  # refused before any probe was written


def test_a_node_lost_mid_run_gives_the_local_bytes(ray_cluster, dataset, local, tmp_path):
    worker = ray_cluster.ensure_worker()
    node = ray_cluster.workers()[0]
    fresh(dataset)
    result: dict = {}
    # every unit pinned (softly) to the worker: those that ran on the head were moved there when it went
    ex = SlowUnits(ray_cluster.address, node_ids=[worker], soft=True)
    run = threading.Thread(target=lambda: result.update(r=audit(dataset, tmp_dir=tmp_path, executor=ex, **OPTS)))
    run.start()
    done = wait_for_files(tmp_path, KEYS, 1, run)
    ray_cluster.cluster.remove_node(node, allow_graceful=False)  # as a machine that fails: no notice
    run.join(timeout=120)
    try:
        assert "r" in result and 1 <= done < UNITS  # the node went while units were left
        assert worker in ex.unit_nodes and ray_cluster.head in ex.unit_nodes
        assert outputs(dataset, result["r"]) == local
    finally:
        ray_cluster.ensure_worker()  # the other tests want two nodes

"""A real multi-node Ray cluster on this machine, started once for every test here.

ray.cluster_utils.Cluster: a head and one more node (each its own raylet and worker processes),
2 logical CPUs and a 150 MB object store each (Ray's default store is 30% of RAM per node), no
dashboard. This test process is a driver connected to the head; the CLI tests start their
own drivers with `--ray=ADDRESS`, `--ray-address ADDRESS` or `--ray` and RAY_ADDRESS. Only what the fixture started is shut down: never `ray stop`,
which kills every Ray process on the machine.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass

import pytest

try:
    import ray
except ImportError:  # the tests skip themselves, saying so (pytest.importorskip in each module)
    ray = None

NODE_ARGS = {"num_cpus": 2, "object_store_memory": 150 * 2**20}
# a node that dies without notice is declared dead after 3 missed health checks 0.5 s apart (Ray's
# default: 5 x 3 s), so that its tasks are retried elsewhere within the test's time
HEAD_ARGS = {
    **NODE_ARGS,
    "include_dashboard": False,
    "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 3},
}


@dataclass
class RayCluster:
    cluster: object  # ray.cluster_utils.Cluster
    address: str
    start_seconds: float

    @property
    def head(self) -> str:
        return self.cluster.head_node.node_id

    def workers(self) -> list:
        return list(self.cluster.worker_nodes)

    def ensure_worker(self) -> str:
        """The other node's id, adding one if a test removed it."""
        if not self.cluster.worker_nodes:
            self.cluster.add_node(**NODE_ARGS)
            self.cluster.wait_for_nodes()
        return self.workers()[0].node_id


@pytest.fixture(scope="session")
def ray_cluster():
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # macOS/Windows: Ray refuses multi-node clusters without it
    from ray.cluster_utils import Cluster

    t0 = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args=HEAD_ARGS)
    cluster.add_node(**NODE_ARGS)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level=logging.WARNING, log_to_driver=False)
    handle = RayCluster(cluster, cluster.address, time.perf_counter() - t0)
    # removing a node kills its raylet: this driver must hang off the head's
    assert ray._private.worker.global_worker.node._raylet_socket_name == cluster.head_node._raylet_socket_name
    print(f"\nray cluster: 2 nodes up and connected in {handle.start_seconds:.1f} s", file=sys.stderr)
    try:
        yield handle
    finally:
        ray.shutdown()
        cluster.shutdown()

"""Work units as Ray core tasks (base.py's Executor), and the check that every node sees
the output and scratch directories.

Why plain tasks and not Ray Data: a unit here is a numbered piece of input whose outputs have
fixed names and are written by the unit itself (atomically, the file is its completion
marker). Ray Data cuts its input into blocks whose boundaries depend on the cluster's size and
timing, and names the files it writes after them, so neither the bytes nor the names would be
the same from one run to the next; `import ray.data` alone also costs ~2.3 s. Tasks over our
own units keep the outputs byte-identical to an inline run, whatever the nodes.

Faults: a task lost with its node (or its worker process) is run again elsewhere, up to
MAX_RETRIES times (Ray's `max_retries`); a unit that raises (an FwpipeError for bad input, or
a bug) is never retried (`retry_exceptions=False`): the run fails with that error, unwrapped
from Ray's RayTaskError so the CLI prints its usual one line. A killed driver loses its tasks;
a rerun skips the units whose outputs are there.

`import ray` happens only in this module, and only when an executor or a check is made:
ray is an optional extra (`pip install 'fwpipe[ray]'`).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections import deque
from collections.abc import Iterable, Sequence
from pathlib import Path

from fwpipe.errors import ClusterError, DependencyError, FwpipeError
from fwpipe.executors.base import ExecutorBase

log = logging.getLogger(__name__)
MAX_RETRIES = 3  # runs of a task lost with its node or worker before the run fails
STORAGE_HINT = "put OUT (and --tmp-dir) on storage every node mounts at the same path (NFS, a cluster filesystem)"
PROBE_PREFIX = ".fwpipe-probe-"


def _ray():
    try:
        import ray
    except ImportError as e:
        raise DependencyError("--ray needs the ray package, which is not installed", "pip install 'fwpipe[ray]'") from e
    return ray


def _run_unit(fn, *args):
    """A unit, run as a task: (the node it ran on, its result)."""
    import ray

    return ray.get_runtime_context().get_node_id(), fn(*args)


class RayExecutor(ExecutorBase):
    """Units as Ray tasks, one CPU each, at most map's `window` in flight (default 2 per cluster CPU:
    enough to keep every CPU busy while the driver takes results in unit order).

    address: a cluster's `HOST:PORT`, or None/"" for RAY_ADDRESS or, without it, ray.init()'s
    default (a cluster started on this machine, else a new local one). node_ids pins unit i to
    node node_ids[i % len(node_ids)] (soft: a lost node's units go elsewhere); without it Ray
    places them. unit_nodes records, in unit order, the node each result came from.
    """

    remote = True

    def __init__(self, address: str | None = None, *, node_ids: Sequence[str] | None = None, soft: bool = True):
        ray = _ray()
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.node_ids = list(node_ids) if node_ids else None
        self.soft = soft
        self.unit_nodes: list[str] = []
        self._started = False
        if not ray.is_initialized():
            _check_reachable(self.address)
            try:
                ray.init(address=self.address, logging_level=logging.WARNING, log_to_driver=False)
            except (ConnectionError, TimeoutError, ValueError) as e:
                raise ClusterError(
                    f"cannot connect to the Ray cluster at {self.address or 'auto'}: {e}",
                    "start one with `ray start --head --port 6379`, then pass --ray HEAD:6379",
                ) from e
            self._started = True  # ours to shut down; a session the caller opened is theirs
        self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._task = ray.remote(_run_unit)
        log.info("ray: %d CPUs on %d nodes", self.workers, len(alive_nodes()))

    def map(self, fn, units, *, window=None):
        ray = _ray()
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        inflight: deque = deque()
        try:
            for i, args in enumerate(units):
                opts = {"num_cpus": 1, "max_retries": MAX_RETRIES, "retry_exceptions": False}
                if self.node_ids:
                    opts["scheduling_strategy"] = NodeAffinitySchedulingStrategy(
                        self.node_ids[i % len(self.node_ids)], soft=self.soft
                    )
                inflight.append(self._task.options(**opts).remote(fn, *args))
                if len(inflight) >= (window or 2 * self.workers):
                    yield self._result(inflight.popleft())
            while inflight:
                yield self._result(inflight.popleft())
        finally:
            for ref in inflight:  # a failed or abandoned map: the rest need not run
                try:
                    ray.cancel(ref)
                except Exception:  # noqa: BLE001 - the error that stopped the map is the one to report
                    pass

    def _result(self, ref):
        ray = _ray()
        try:
            node, result = ray.get(ref)
        except ray.exceptions.RayTaskError as e:
            cause = getattr(e, "cause", None)
            if isinstance(cause, FwpipeError):
                raise cause from None  # the unit's own one-line error, not Ray's traceback around it
            raise
        except ray.exceptions.RayError as e:  # the worker or node lost more than MAX_RETRIES times, an object lost
            raise ClusterError(
                f"a Ray task failed for good: {str(e).splitlines()[0]}",
                "check the cluster with `ray status`; a rerun keeps the finished units",
            ) from e
        self.unit_nodes.append(node)
        return result

    def check_storage(self, write_dirs, read_files=()):
        check_shared_storage(write_dirs, read_files)

    def close(self) -> None:
        if self._started:
            _ray().shutdown()  # only the session this executor started; never `ray stop`
            self._started = False


CONNECT_TIMEOUT_S = 30.0  # a head that has not answered gRPC's preface by then is not one


def _check_reachable(address: str | None) -> None:
    """Fail in seconds when nothing listens at HOST:PORT: ray.init() retries a dead address for minutes."""
    host, sep, port = (address or "").rpartition(":")
    if not sep or "://" in address or not port.isdigit():
        return  # no address (ray.init() finds or starts one), "auto", or a ray:// client address: Ray's to judge
    try:
        sock = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
    except OSError as e:
        raise ClusterError(
            f"no Ray cluster answers at {address}: {e.strerror or e}",
            "start its head with `ray start --head --port 6379` there, or pass the head's HOST:PORT",
        ) from e
    if os.environ.get("RAY_USE_TLS", "0") not in ("", "0"):
        sock.close()
        return  # a TLS head answers the preface below only after a handshake: Ray's to judge
    # Ray's head (GCS) is a gRPC server: to HTTP/2's connection preface it answers with a SETTINGS
    # frame at once. A port that answers otherwise (an HTTP/1 server, a database) or not at all
    # would keep ray.init() retrying for minutes.
    why = None
    try:
        sock.settimeout(connect_timeout_s())
        sock.sendall(
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
        )  # preface + empty SETTINGS
        head = b""
        while len(head) < 9:
            chunk = sock.recv(9 - len(head))
            if not chunk:
                break
            head += chunk
        if len(head) < 9 or head[3] != 0x04:
            why = (
                "it does not speak gRPC ("
                + (f"it answered {head[:12]!r}" if head else "it closed the connection")
                + ")"
            )
    except TimeoutError:
        why = f"it did not answer within {connect_timeout_s():g} s"
    except OSError as e:
        why = f"{e.strerror or e}"
    finally:
        sock.close()
    if why:
        raise ClusterError(
            f"{address} is not a Ray cluster's head: {why}",
            "pass the head's GCS address (HOST:PORT printed by `ray start --head`; default port 6379)",
        )


def connect_timeout_s() -> float:
    """How long a head may take to answer (FWPIPE_RAY_CONNECT_TIMEOUT_S, default 30)."""
    try:
        return float(os.environ.get("FWPIPE_RAY_CONNECT_TIMEOUT_S", CONNECT_TIMEOUT_S))
    except ValueError:
        return CONNECT_TIMEOUT_S


def alive_nodes() -> list[dict]:
    """The alive nodes that can run units (those with CPUs), as ray.nodes() describes them."""
    return [n for n in _ray().nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0]


# ------------------------------------------------------------------ shared storage


def _write_probe(d: str, name: str) -> str | None:
    from fwpipe.atomic import write_bytes

    try:
        write_bytes(Path(d) / name, [name.encode()])
    except (FwpipeError, OSError) as e:
        return getattr(e, "message", str(e))
    return None


def _unseen(d: str, names: list[str], files: dict[str, int]) -> list[str]:
    """The probes in d this machine cannot read back, and the read_files it sees otherwise than the driver."""
    out = []
    for name in names:
        try:
            ok = (Path(d) / name).read_bytes() == name.encode()
        except OSError:
            ok = False
        if not ok:
            out.append(f"{d}/{name}")
    for path, size in files.items():
        try:
            got = os.path.getsize(path)
        except OSError:
            got = None
        if got != size:
            out.append(path)
    return out


def _fwpipe_version() -> str:
    from fwpipe import __version__

    return __version__


def _remove_probe(d: str, name: str) -> None:
    try:
        os.unlink(Path(d) / name)
    except OSError:
        pass


def _on_each(nodes: list[dict], fn, args: list[tuple]) -> list:
    """fn(*args[i]) on nodes[i], pinned there (not soft: the point is that node), results in node order."""
    ray = _ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    task = ray.remote(fn)
    refs = [
        task.options(
            num_cpus=0, max_retries=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
        ).remote(*a)
        for n, a in zip(nodes, args)
    ]
    out = []
    for n, ref in zip(nodes, refs):
        try:
            out.append(ray.get(ref))
        except ray.exceptions.RayError as e:  # fwpipe missing there (the task cannot be unpickled), the node lost
            raise ClusterError(
                f"node {_node_name(n)} cannot run fwpipe's tasks: {str(e).strip().splitlines()[-1][:200]}",
                "install the same fwpipe and ray on every node (pip install 'fwpipe[ray]')",
            ) from e
    return out


def _node_name(n: dict) -> str:
    return f"{n['NodeID'][:12]} ({n.get('NodeManagerAddress', '?')})"


def write_probes(d: str | Path, nodes: list[dict]) -> dict[str, str]:
    """A probe file in d from the driver and from every node: {node id or "driver": file name}."""
    token = uuid.uuid4().hex[:8]
    names = {
        "driver": f"{PROBE_PREFIX}{token}-driver",
        **{n["NodeID"]: f"{PROBE_PREFIX}{token}-{n['NodeID'][:12]}" for n in nodes},
    }
    failed = _write_probe(str(d), names["driver"])
    if failed:
        raise ClusterError(f"cannot write in {d} on the driver: {failed}", STORAGE_HINT)
    for n, failed in zip(nodes, _on_each(nodes, _write_probe, [(str(d), names[n["NodeID"]]) for n in nodes])):
        if failed:
            remove_probes(d, nodes, names)
            raise ClusterError(f"{d}: node {_node_name(n)} cannot write there ({failed})", STORAGE_HINT)
    return names


def raise_unseen(d: str | Path, nodes: list[dict], names: dict[str, str], files: dict[str, int] | None = None) -> None:
    """ClusterError unless the driver and every node read back every probe in d (and see files as the driver does)."""
    everyone = list(names.values())
    seen_by = [("the driver", _unseen(str(d), everyone, {}))]
    missing = _on_each(nodes, _unseen, [(str(d), everyone, files or {})] * len(nodes))
    seen_by += [(f"node {_node_name(n)}", miss) for n, miss in zip(nodes, missing)]
    for who, missing in seen_by:
        if missing:
            raise ClusterError(
                f"{d} is not the same directory on every node: {who} does not see {missing[0]}"
                f"{f' and {len(missing) - 1} more' if len(missing) > 1 else ''}",
                STORAGE_HINT,
            )


def remove_probes(d: str | Path, nodes: list[dict], names: dict[str, str]) -> None:
    _remove_probe(str(d), names["driver"])
    try:  # each node removes its own: on a node-local disk only it can
        _on_each(nodes, _remove_probe, [(str(d), names[n["NodeID"]]) for n in nodes])
    except Exception:  # noqa: BLE001 - a probe left behind (a node lost meanwhile) is a small file, not worth failing the run
        log.warning("could not remove every storage probe in %s", d)


def check_shared_storage(write_dirs: Iterable[str | Path], read_files: Iterable[str | Path] = ()) -> None:
    """Raise ClusterError (one line: which directory, which node) unless every alive node runs
    the driver's fwpipe, and it and the driver can write a file in each of write_dirs and read
    back what the others wrote there, and see each of read_files with the size the driver sees.
    The probes are removed after."""
    from fwpipe import __version__

    nodes, write_dirs = alive_nodes(), list(write_dirs)
    for n, version in zip(nodes, _on_each(nodes, _fwpipe_version, [()] * len(nodes))):
        if version != __version__:  # other code could write other bytes
            raise ClusterError(
                f"node {_node_name(n)} runs fwpipe {version}, the driver {__version__}",
                "install the same fwpipe on every node",
            )
    files = {str(p): os.path.getsize(p) for p in read_files}
    for d in write_dirs:
        names = write_probes(d, nodes)
        try:
            raise_unseen(d, nodes, names, files)
            files = {}  # checked once, with the first directory
        finally:
            remove_probes(d, nodes, names)
    if files:
        raise_unseen_files(nodes, files)
    log.info("ray: %d nodes see %s", len(nodes), ", ".join(map(str, write_dirs)) or "the inputs")


def raise_unseen_files(nodes: list[dict], files: dict[str, int]) -> None:
    for n, missing in zip(nodes, _on_each(nodes, _unseen, [("", [], files)] * len(nodes))):
        if missing:
            raise ClusterError(f"node {_node_name(n)} does not see {missing[0]} as the driver does", STORAGE_HINT)

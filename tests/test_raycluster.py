"""--ray without ray installed: one line saying what to install (the cluster itself: tests/cluster)."""

from __future__ import annotations

import sys

import pytest
from click.testing import CliRunner

from fwpipe.cli import main


@pytest.mark.parametrize("args", [["--ray"], ["--ray=10.0.0.1:6379"], ["--ray-address", "10.0.0.1:6379"]])
def test_ray_not_installed_is_one_error_line(monkeypatch, args):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as on a plain install
    r = CliRunner().invoke(main, ["audit", "data/fineweb", *args])
    assert r.exit_code == 1
    assert r.output == "Error: --ray needs the ray package, which is not installed; pip install 'fwpipe[ray]'\n"


@pytest.mark.parametrize("command", ["audit", "prepare"])
@pytest.mark.parametrize(
    ("args", "ray", "address"),
    [
        (["--ray", "DS"], True, None),
        (["DS", "--ray=h:1"], False, "h:1"),
        (["--ray-address", "h:1", "DS"], False, "h:1"),
    ],
)
def test_ray_is_a_flag_and_its_address_an_option(command, args, ray, address):
    """`--ray DATASET` is the default cluster and DATASET (it was once read as the address)."""
    cmd = main.commands[command]
    ctx = cmd.make_context(command, list(args))
    given = ctx.params["dataset"] if command == "audit" else ctx.params["inputs"][0]
    assert given == "DS" and ctx.params["ray"] is ray and ctx.params["ray_address"] == address


def test_an_empty_ray_address_is_a_usage_error():
    r = CliRunner().invoke(main, ["audit", "DS", "--ray="])
    assert r.exit_code == 1 and r.output.count("\n") == 1 and "HOST:PORT" in r.output and "--ray-address" in r.output


def test_importing_fwpipe_does_not_import_ray():
    """In a process of its own: re-importing modules here would leave this one's fwpipe.executors.ray
    two module objects."""
    import subprocess

    code = "import sys; sys.modules['ray'] = None; import fwpipe.cli, fwpipe.executors, fwpipe.executors.ray, fwpipe.dedup.engine"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr  # only making an executor or a check imports ray


def test_an_address_where_no_cluster_listens_is_one_error_line_in_seconds(tmp_path):
    pytest.importorskip("ray", reason="ray is not installed: pip install 'fwpipe[ray]'")
    import socket
    import subprocess

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # a process of its own: this one may already be connected to the cluster tests' Ray
    r = subprocess.run(
        [sys.executable, "-m", "fwpipe", "audit", str(tmp_path), f"--ray=127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1
    assert r.stderr.startswith(
        f"Error: no Ray cluster answers at 127.0.0.1:{port}: Connection refused; start its head with"
    )
    assert r.stderr.count("\n") == 1


@pytest.mark.parametrize("server", ["http", "silent"])
def test_a_port_that_answers_but_is_not_ray_is_one_error_line_in_seconds(tmp_path, server):
    """Before: ray.init() retried such a port for minutes. Now gRPC's preface gets no SETTINGS
    frame back: one line, within FWPIPE_RAY_CONNECT_TIMEOUT_S (1 s here) for a silent port."""
    pytest.importorskip("ray", reason="ray is not installed: pip install 'fwpipe[ray]'")
    import os
    import socket
    import subprocess
    import threading
    import time

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]
    held = []

    def serve():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            held.append(c)
            if server == "http":
                c.recv(1024)
                c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    threading.Thread(target=serve, daemon=True).start()
    try:
        t0 = time.monotonic()
        r = subprocess.run(
            [sys.executable, "-m", "fwpipe", "audit", str(tmp_path), "--ray-address", f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "FWPIPE_RAY_CONNECT_TIMEOUT_S": "1"},
        )
        took = time.monotonic() - t0
    finally:
        srv.close()
        for c in held:
            c.close()
    assert r.returncode == 1, r.stderr
    assert r.stderr.startswith(f"Error: 127.0.0.1:{port} is not a Ray cluster's head: "), r.stderr
    assert (
        "does not speak gRPC (it answered b'HTTP/1.1 '" if server == "http" else "did not answer within 1 s"
    ) in r.stderr
    assert r.stderr.count("\n") == 1 and took < 30

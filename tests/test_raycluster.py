"""--ray without ray installed: one line saying what to install (the cluster itself: tests/cluster)."""

from __future__ import annotations

import sys

import pytest
from click.testing import CliRunner

from fwpipe.cli import main


@pytest.mark.parametrize("args", [["--ray"], ["--ray", "10.0.0.1:6379"]])
def test_ray_not_installed_is_one_error_line(monkeypatch, args):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as on a plain install
    r = CliRunner().invoke(main, ["audit", "data/fineweb", *args])
    assert r.exit_code == 1
    assert r.output == "Error: --ray needs the ray package, which is not installed; pip install 'fwpipe[ray]'\n"


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
    r = subprocess.run([sys.executable, "-m", "fwpipe", "audit", str(tmp_path), "--ray", f"127.0.0.1:{port}"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr.startswith(f"Error: no Ray cluster answers at 127.0.0.1:{port}: Connection refused; start its head with")
    assert r.stderr.count("\n") == 1

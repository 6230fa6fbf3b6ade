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


def test_importing_the_package_does_not_import_ray(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    for name in [m for m in sys.modules if m == "fwpipe.raycluster"]:
        monkeypatch.delitem(sys.modules, name)
    import fwpipe.raycluster  # noqa: F401 - only making an executor or a check imports ray

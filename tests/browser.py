"""Headless Chromium for the page tests: the DOM after parsing, and a screenshot checked not blank.

Debian's `chromium` package (.ci/run installs it); where it is absent the tests skip and say so.
Flags keep it offline and quiet: no first-run, sync, component updates or background network.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip(
            "chromium is not installed (apt-get install -y chromium; .ci/run does it): the pages are not checked in a browser"
        )
    return exe


def _run(args: list[str], tmp: Path) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            [chromium(), *FLAGS, f"--user-data-dir={tmp / 'chromium-profile'}", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    except subprocess.TimeoutExpired:  # seen when text from the data ran as a script: alert() blocks headless Chromium
        pytest.fail(f"chromium did not finish {args[-1]} in 60 s: a dialog from a script in the page (unescaped data?)")


def dump_dom(page: Path, tmp: Path) -> str:
    """The page's DOM as Chromium serialises it after parsing (what a user's browser builds)."""
    return _run(["--dump-dom", page.resolve().as_uri()], tmp).stdout


def screenshot(page: Path, tmp: Path, height: int = 2000) -> np.ndarray:
    """The page rendered at 1200 x height, as an (h, w, channels) float array in [0, 1]."""
    import matplotlib.image

    png = tmp / (page.stem + ".png")
    _run([f"--screenshot={png}", f"--window-size=1200,{height}", page.resolve().as_uri()], tmp)
    return matplotlib.image.imread(png)


def assert_not_blank(img: np.ndarray) -> None:
    """A rendered page has text and colour: enough non-white pixels, and more than one grey."""
    rgb = img[..., :3]
    ink = (rgb < 0.9).any(axis=-1).mean()
    colour = (rgb.max(axis=-1) - rgb.min(axis=-1) > 0.15).mean()  # pixels that are not grey
    assert rgb.std() > 0.05 and ink > 0.02, f"screenshot looks blank: std {rgb.std():.3f}, {ink:.1%} non-white pixels"
    assert colour > 0.002, f"screenshot has no colour ({colour:.2%} coloured pixels): cards or charts did not render"
